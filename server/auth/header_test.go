package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"reflect"
	"strings"
	"testing"
)

const (
	testFpr   = "4EDC4EDC4EDC4EDC4EDC4EDC4EDC4EDC4EDC4EDC"
	testNonce = "abcdefghijklmnop_-0123"
)

var (
	testSig    = []byte{0x88, 0x75, 0x04, 0x00, 0x16, 0x08, 0x00, 0x1d, 0xfe, 0xff}
	testSigB64 = base64.StdEncoding.EncodeToString(testSig) // 10 bytes: padded
	testSigRaw = strings.TrimRight(testSigB64, "=")
)

func TestParseAuthorizationGood(t *testing.T) {
	want := Credentials{Scheme: SchemeSignature, Fingerprint: testFpr, Timestamp: 1700000000, Nonce: testNonce, Signature: testSig}
	for _, h := range []string{
		"KTS-PGP fingerprint=" + testFpr + ", timestamp=1700000000, nonce=" + testNonce + ", signature=" + testSigB64,
		"KTS-PGP fingerprint=" + testFpr + ",timestamp=1700000000,nonce=" + testNonce + ",signature=" + testSigRaw,
		"KTS-PGP signature=" + testSigB64 + ", nonce=" + testNonce + ", timestamp=1700000000, fingerprint=" + testFpr,
		"  kts-pgp   fingerprint=" + testFpr + " ,  timestamp=1700000000 ,\tnonce=" + testNonce + ", signature=" + testSigB64 + "  ",
		"KTS-PGP\tfingerprint=\"" + testFpr + "\", Timestamp=\"1700000000\", NONCE = " + testNonce + ", signature=\"" + testSigB64 + "\"",
	} {
		got, err := ParseAuthorization(h)
		if err != nil {
			t.Errorf("ParseAuthorization(%q): %v", h, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("ParseAuthorization(%q) = %#v, want %#v", h, got, want)
		}
	}

	tok := strings.Repeat("aB0_-", 16) + "xy"
	for _, h := range []string{"KTS-Session " + tok, "kts-session  " + tok + " "} {
		got, err := ParseAuthorization(h)
		if err != nil || !reflect.DeepEqual(got, Credentials{Scheme: SchemeSession, Token: tok}) {
			t.Errorf("ParseAuthorization(%q) = %#v, %v", h, got, err)
		}
	}
	if _, err := ParseAuthorization("KTS-PGP fingerprint=" + testFpr + ", timestamp=0, nonce=" + testNonce + ", signature=" + testSigB64); err != nil {
		t.Errorf("timestamp 0: %v", err)
	}
}

func TestParseAuthorizationBad(t *testing.T) {
	fp, ts, nc, sg := "fingerprint="+testFpr, "timestamp=1700000000", "nonce="+testNonce, "signature="+testSigB64
	join := func(params ...string) string { return "KTS-PGP " + strings.Join(params, ", ") }
	for _, tc := range []struct {
		name, header, text string
	}{
		{"unknown scheme", "Bearer abc", "unsupported scheme"},
		{"basic", "Basic dXNlcjpwYXNz", "unsupported scheme"},
		{"scheme only", "KTS-PGP", "no parameters"},
		{"scheme glued", "KTS-PGPfingerprint=" + testFpr, "unsupported scheme"},
		{"too long", join(fp, ts, nc, "signature="+strings.Repeat("A", maxHeaderLen)), "longer than"},
		{"missing fingerprint", join(ts, nc, sg), "missing parameter fingerprint"},
		{"missing timestamp", join(fp, nc, sg), "missing parameter timestamp"},
		{"missing nonce", join(fp, ts, sg), "missing parameter nonce"},
		{"missing signature", join(fp, ts, nc), "missing parameter signature"},
		{"duplicate", join(fp, ts, nc, sg, nc), "more than once"},
		{"duplicate with bad value", join(fp, ts, nc, sg, "nonce=x"), "more than once"},
		{"unknown parameter", join(fp, ts, nc, sg, "realm=x"), `unknown parameter "realm"`},
		{"long unknown parameter", join(fp, ts, nc, sg, "abcdefghijklmnopqrstuvwxyz=x"), "name not shown"},
		{"empty parameter", join(fp, ts, "", nc, sg), "empty parameter"},
		{"trailing comma", join(fp, ts, nc, sg) + ",", "empty parameter"},
		{"no equals", join(fp, ts, nc, sg, "flag"), "no '='"},
		{"fingerprint short", join("fingerprint="+testFpr[1:], ts, nc, sg), "40 hex"},
		{"fingerprint long", join("fingerprint="+testFpr+"0", ts, nc, sg), "40 hex"},
		{"fingerprint not hex", join("fingerprint="+strings.Repeat("G", 40), ts, nc, sg), "40 hex"},
		{"fingerprint with spaces", join("fingerprint=4EDC 4EDC 4EDC 4EDC 4EDC 4EDC 4EDC 4EDC 4EDC 4EDC", ts, nc, sg), "40 hex"},
		{"fingerprint empty", join("fingerprint=", ts, nc, sg), "40 hex"},
		{"fingerprint lower case", join("fingerprint="+strings.ToLower(testFpr), ts, nc, sg), "upper case"},
		{"fingerprint mixed case", join("fingerprint="+testFpr[:1]+strings.ToLower(testFpr[1:2])+testFpr[2:], ts, nc, sg), "upper case"},
		{"timestamp empty", join(fp, "timestamp=", nc, sg), "timestamp"},
		{"timestamp negative", join(fp, "timestamp=-1", nc, sg), "timestamp"},
		{"timestamp plus", join(fp, "timestamp=+1700000000", nc, sg), "timestamp"},
		{"timestamp leading zero", join(fp, "timestamp=01700000000", nc, sg), "leading zeros"},
		{"timestamp fraction", join(fp, "timestamp=1700000000.5", nc, sg), "timestamp"},
		{"timestamp millis overflow", join(fp, "timestamp=1234567890123456789", nc, sg), "timestamp"},
		{"timestamp hex", join(fp, "timestamp=0x10", nc, sg), "timestamp"},
		{"nonce short", join(fp, ts, "nonce=abcdefghijklmno", sg), "nonce must be 16 to 64"},
		{"nonce long", join(fp, ts, "nonce="+strings.Repeat("a", 65), sg), "nonce must be 16 to 64"},
		{"nonce bad chars", join(fp, ts, "nonce=abcdefghijklmnop+/", sg), "nonce must be"},
		{"nonce empty", join(fp, ts, "nonce=", sg), "nonce must be"},
		{"signature empty", join(fp, ts, nc, "signature="), "signature must be"},
		{"signature url alphabet", join(fp, ts, nc, "signature=iHUEABYIAB3-_w"), "signature must be"},
		{"signature bad padding", join(fp, ts, nc, "signature="+testSigRaw+"="), "signature must be"},
		{"signature too much padding", join(fp, ts, nc, "signature="+testSigRaw+"==="), "signature must be"},
		{"signature inner padding", join(fp, ts, nc, "signature=iH=UEABYIAB3+/w"), "signature must be"},
		{"signature impossible length", join(fp, ts, nc, "signature=iHUEA"), "signature must be"},
		{"signature non-zero trailing bits", join(fp, ts, nc, "signature=iHV="), "signature must be"},
		{"signature with newline", join(fp, ts, nc, "signature=iHUE\nABYIAB3+/w=="), "signature must be"},
		{"signature too large", join(fp, ts, nc, "signature="+strings.Repeat("AAAA", maxSignatureLen/3+2)), "at most"},
		{"unbalanced quote", join("fingerprint=\""+testFpr, ts, nc, sg), "40 hex"},
		{"session empty", "KTS-Session", "needs a token"},
		{"session spaces", "KTS-Session abc def", "not a token"},
		{"session bad chars", "KTS-Session abc+def", "not a token"},
		{"session too long", "KTS-Session " + strings.Repeat("a", maxTokenLen+1), "not a token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseAuthorization(tc.header)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %#v, %v; want ErrMalformed", c, err)
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Errorf("error %q does not mention %q", err, tc.text)
			}
			if strings.Contains(err.Error(), testNonce) || strings.Contains(err.Error(), testSigRaw) {
				t.Errorf("error %q shows a secret", err)
			}
		})
	}
	for _, h := range []string{"", "   ", "\t"} {
		if _, err := ParseAuthorization(h); err != ErrNoCredentials {
			t.Errorf("ParseAuthorization(%q) = %v, want ErrNoCredentials", h, err)
		}
	}
}

func TestCredentialsHideSecrets(t *testing.T) {
	c := Credentials{Scheme: SchemeSignature, Fingerprint: testFpr, Timestamp: 1, Nonce: testNonce, Signature: testSig}
	s := Credentials{Scheme: SchemeSession, Token: "secret-token-value"}
	for _, out := range []string{sprint(c), sprint(&c), sprint(s), sprint([]Credentials{c, s})} {
		if strings.Contains(out, testNonce) || strings.Contains(out, testSigRaw) || strings.Contains(out, "secret-token-value") ||
			strings.Contains(out, "136") { // 0x88, as a byte slice would print
			t.Errorf("printed credentials show a secret: %s", out)
		}
	}
}

// TestCanonicalRequestGolden pins the exact bytes a client signs.
func TestCanonicalRequestGolden(t *testing.T) {
	body := sha256.Sum256([]byte(`{"secret":"c2VjcmV0"}`))
	got := CanonicalRequest("put", "/v1/deposits/my%20key", "z=1&a=b%2Fc&a=%41&m", 1700000000, testNonce, body)
	want := "KTS-PGP-V1\n" +
		"PUT\n" +
		"/v1/deposits/my%20key\n" +
		"a=b%2Fc&a=A&m=&z=1\n" +
		"1700000000\n" +
		testNonce + "\n" +
		"762fca21b3c78f7a3215f050099aff44b03ded9f1d8cce3edbfb4f6d1d4b866d" // printf '%s' "$body" | sha256sum
	if string(got) != want {
		t.Fatalf("canonical request:\n%q\nwant\n%q", got, want)
	}

	got = CanonicalRequest("GET", "", "", 42, testNonce, sha256.Sum256(nil))
	want = "KTS-PGP-V1\nGET\n/\n\n42\n" + testNonce + "\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	if string(got) != want {
		t.Fatalf("canonical request:\n%q\nwant\n%q", got, want)
	}
	if bytes.HasSuffix(got, []byte("\n")) {
		t.Fatal("canonical request ends with a newline")
	}
	// A query with spaces and a sorted query already canonical.
	if got := CanonicalRequest("GET", "/", "q=a+b&q=c%20d", 1, testNonce, [32]byte{}); !bytes.Contains(got, []byte("\nq=a+b&q=c+d\n")) {
		t.Fatalf("query not canonical: %q", got)
	}
}

func TestOneHeader(t *testing.T) {
	good := "KTS-Session abc"
	for _, c := range []struct {
		name    string
		values  []string
		want    string
		refused bool
	}{
		{"none", nil, "", false},
		{"one", []string{good}, good, false},
		{"two equal", []string{good, good}, "", true},
		{"two different", []string{good, "KTS-Session other"}, "", true},
		{"one empty and one set", []string{"", good}, "", true},
	} {
		got, err := OneHeader(c.values)
		if c.refused {
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "exactly one") {
				t.Errorf("%s: err %v, want ErrMalformed saying to send exactly one", c.name, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %q, %v; want %q", c.name, got, err, c.want)
		}
	}
}
