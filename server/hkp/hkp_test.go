package hkp

import (
	"errors"
	"testing"
	"time"

	"trustee.dev/trustee/server/openpgp"
)

const fpr = "4EDC46882386C827E20DEEA2D850ACA33BEDB0D1"

func TestParseSearch(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Search
		bad  bool
	}{
		{in: "0x" + fpr, want: Search{Fingerprint: fpr}},
		{in: "0X4edc46882386c827e20deea2d850aca33bedb0d1", want: Search{Fingerprint: fpr}},
		{in: fpr, want: Search{Fingerprint: fpr}},
		{in: "0xD850ACA33BEDB0D1", want: Search{KeyID: "D850ACA33BEDB0D1"}},
		{in: "0x3bedb0d1", want: Search{KeyID: "3BEDB0D1"}},
		{in: "Key Trustee", want: Search{Text: "Key Trustee"}},
		{in: "<kts@example.com>", want: Search{Text: "<kts@example.com>"}},
		{in: "3BEDB0D1", want: Search{Text: "3BEDB0D1"}}, // a key ID is marked by 0x
		{in: "", bad: true},
		{in: "  ", bad: true},
		{in: "0x1234", bad: true},
		{in: "0xnothex", bad: true},
	} {
		got, err := ParseSearch(c.in)
		if c.bad {
			if !errors.Is(err, ErrBadSearch) {
				t.Errorf("ParseSearch(%q) = %+v, %v; want ErrBadSearch", c.in, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseSearch(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
}

func TestMatches(t *testing.T) {
	k := openpgp.Summary{Fingerprint: fpr, UserIDs: []string{"Key Trustee Server <kts@example.com>"}}
	for _, c := range []struct {
		q    Search
		want bool
	}{
		{Search{Fingerprint: fpr}, true},
		{Search{Fingerprint: "0" + fpr[1:]}, false},
		{Search{KeyID: "D850ACA33BEDB0D1"}, true},
		{Search{KeyID: "3BEDB0D1"}, true},
		{Search{KeyID: "4EDC4688"}, false}, // the start is not a key ID
		{Search{Text: "key trustee"}, true},
		{Search{Text: "KTS@EXAMPLE.COM"}, true},
		{Search{Text: "other"}, false},
	} {
		if got := c.q.Matches(k); got != c.want {
			t.Errorf("%+v matches: %v, want %v", c.q, got, c.want)
		}
	}
}

func TestIndex(t *testing.T) {
	created := time.Unix(1700000000, 0)
	keys := []openpgp.Summary{
		{Fingerprint: fpr, Algorithm: 22, Bits: 255, Created: created, UserIDs: []string{"Key Trustee <kts@example.com>", "a:b 100% Ünï"}},
		{Fingerprint: "0" + fpr[1:], Algorithm: 1, Bits: 4096, Created: created, Expires: created.Add(time.Hour), Revoked: true, Expired: true},
	}
	want := "info:1:2\n" +
		"pub:" + fpr + ":22:255:1700000000::\n" +
		"uid:Key Trustee <kts@example.com>:1700000000::\n" +
		"uid:a%3Ab 100%25 %C3%9Cn%C3%AF:1700000000::\n" +
		"pub:0" + fpr[1:] + ":1:4096:1700000000:1700003600:re\n"
	if got := string(Index(keys)); got != want {
		t.Fatalf("Index:\n%s\nwant:\n%s", got, want)
	}
	if got := string(Index(nil)); got != "info:1:0\n" {
		t.Fatalf("empty index: %q", got)
	}
}
