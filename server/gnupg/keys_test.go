package gnupg_test

import (
	"context"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"trustee.dev/trustee/server/gnupg"
)

// fpr returns the fingerprint of a key in upper-case hex.
func fpr(e *openpgp.Entity) string {
	return strings.ToUpper(hex.EncodeToString(e.PrimaryKey.Fingerprint))
}

func fingerprints(el openpgp.EntityList) map[string]bool {
	m := make(map[string]bool)
	for _, e := range el {
		m[fpr(e)] = true
	}
	return m
}

func TestPublicKeysComeFromTheAccountsGnuPGKeyring(t *testing.T) {
	k := keyring(t)
	el, err := gnupg.PublicKeys(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	got := fingerprints(el)
	for _, want := range []string{k.john, k.richard, k.old, k.signOnly, k.revoked} {
		if !got[want] {
			t.Errorf("key %s missing from %v", want, got)
		}
	}
	for _, e := range el {
		if e.PrivateKey != nil {
			t.Errorf("gpg --export gave secret key material for %s", gnupg.Describe(e))
		}
	}
}

func TestPublicKeysFromAnEmptyKeyringSayHowToImportAKey(t *testing.T) {
	t.Setenv("GNUPGHOME", tempHome(t))
	_, err := gnupg.PublicKeys(context.Background(), "")
	if err == nil {
		t.Fatal("no error for an empty keyring")
	}
	for _, want := range []string{"no public keys", "gpg --import FILE", "key file"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestWithoutGPGPublicKeysSayHowToInstallIt(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := gnupg.PublicKeys(context.Background(), "")
	if err == nil || !strings.Contains(err.Error(), "not installed") || !strings.Contains(err.Error(), "key file") {
		t.Fatalf("error %v does not say that gpg is missing and a key file would do", err)
	}
}

func TestPublicKeysFromAKeyFile(t *testing.T) {
	k := keyring(t)
	concatenated := append(append([]byte{}, k.johnPublic...), k.richardPublic...)
	for _, tc := range []struct {
		name    string
		content []byte
		want    []string
	}{
		{"armored", k.johnPublic, []string{k.john}},
		{"binary", k.johnPublicBinary, []string{k.john}},
		{"two keys in one block", k.bothPublic, []string{k.john, k.richard}},
		{"two armored blocks", concatenated, []string{k.john, k.richard}},
		{"secret key export", k.johnSecret, []string{k.john}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			el, err := gnupg.PublicKeys(context.Background(), writeFile(t, "key.asc", tc.content))
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range el {
				if e.PrivateKey != nil {
					t.Errorf("secret key material returned for %s", gnupg.Describe(e))
				}
			}
			got := fingerprints(el)
			if len(got) != len(tc.want) {
				t.Errorf("got keys %v, want %v", got, tc.want)
			}
			for _, want := range tc.want {
				if !got[want] {
					t.Errorf("key %s missing from %v", want, got)
				}
			}
		})
	}
}

func TestPublicKeysFromABadKeyFileFail(t *testing.T) {
	for _, tc := range []struct {
		name, content, want string
	}{
		{"empty", "", "empty"},
		{"text", "this is not a key\n", "neither an armored"},
		{"signature", "-----BEGIN PGP SIGNATURE-----\n\nwsBcBAABCAAQBQJ\n-----END PGP SIGNATURE-----\n", "PGP"},
		{"garbage binary", "\x99\x00\x01\x02garbage", "no readable OpenPGP key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := gnupg.PublicKeys(context.Background(), writeFile(t, "key", []byte(tc.content)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v does not say %q", err, tc.want)
			}
		})
	}
	_, err := gnupg.PublicKeys(context.Background(), "/nonexistent/key.asc")
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing key file: error %v does not wrap os.ErrNotExist", err)
	}
}

// spaced writes a fingerprint in groups of four, as gpg shows it.
func spaced(digits string) string {
	var groups []string
	for i := 0; i < len(digits); i += 4 {
		groups = append(groups, digits[i:i+4])
	}
	return strings.Join(groups, " ")
}

func TestFindRecipientNamesTheKeyAsGPGDoes(t *testing.T) {
	k := keyring(t)
	el, err := gnupg.PublicKeys(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ query, want string }{
		{"John Doe", k.john},
		{"john doe", k.john},
		{"Key Trustee Backup", k.john},
		{"john.doe@example.com", k.john},
		{"JOHN.DOE@EXAMPLE.COM", k.john},
		{"<john.doe@example.com>", k.john},
		{"=John Doe (Key Trustee Backup) <john.doe@example.com>", k.john},
		{k.john, k.john},
		{strings.ToLower(k.john), k.john},
		{spaced(k.john), k.john},
		{"0x" + k.john, k.john},
		{keyID(k.john), k.john},
		{"0x" + keyID(k.john), k.john},
		{k.john[32:], k.john}, // short key ID
		{keyID(k.johnSub), k.john},
		{k.johnSub, k.john},
		{k.johnSub + "!", k.john},
		{"Richard", k.richard},
		{"richard.doe@example.com", k.richard},
		{keyID(k.richardSub), k.richard},
	} {
		e, err := gnupg.FindRecipient(el, tc.query, time.Now())
		if err != nil {
			t.Errorf("FindRecipient(%q): %v", tc.query, err)
			continue
		}
		if got := fpr(e); got != tc.want {
			t.Errorf("FindRecipient(%q) = %s, want %s", tc.query, got, tc.want)
		}
	}
}

func TestFindRecipientRefusesAnAmbiguousQuery(t *testing.T) {
	k := keyring(t)
	el, err := gnupg.PublicKeys(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = gnupg.FindRecipient(el, "Doe", time.Now())
	if err == nil {
		t.Fatal("no error for a query matching two keys")
	}
	if errors.Is(err, gnupg.ErrNoRecipient) {
		t.Errorf("ambiguity reported as ErrNoRecipient: %v", err)
	}
	for _, want := range []string{"ambiguous", k.john, "John Doe (Key Trustee Backup)", k.richard, "Richard Doe", "fingerprint"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

func TestFindRecipientReportsAQueryThatFindsNothing(t *testing.T) {
	keyring(t)
	el, err := gnupg.PublicKeys(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, query := range []string{
		"nobody@example.com",
		"doe@example.com", // an address must match exactly
		"<john.doe@example>",
		"<>",
		"0123456789ABCDEF0123456789ABCDEF01234567",
		"0123456789ABCDEF",
		"DEADBEEF",
		"Mallory",
	} {
		_, err := gnupg.FindRecipient(el, query, time.Now())
		if !errors.Is(err, gnupg.ErrNoRecipient) {
			t.Errorf("FindRecipient(%q): error %v, want ErrNoRecipient", query, err)
			continue
		}
		if !strings.Contains(err.Error(), query) || !strings.Contains(err.Error(), "gpg --import") {
			t.Errorf("FindRecipient(%q): error %q does not name the query and how to import the key", query, err)
		}
	}
	if _, err := gnupg.FindRecipient(el, "  ", time.Now()); !errors.Is(err, gnupg.ErrNoRecipient) {
		t.Errorf("empty query: error %v, want ErrNoRecipient", err)
	}
	if _, err := gnupg.FindRecipient(nil, "John Doe", time.Now()); !errors.Is(err, gnupg.ErrNoRecipient) {
		t.Errorf("no keys: error %v, want ErrNoRecipient", err)
	}
}

func TestFindRecipientSkipsKeysThatCannotEncrypt(t *testing.T) {
	k := keyring(t)
	el, err := gnupg.PublicKeys(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ query, fpr, why string }{
		{"old@example.com", k.old, "expired on 2020-01-02"},
		{"Revoked Key", k.revoked, "revoked"},
		// What `gpg --quick-gen-key UID rsa2048 default never` makes: a
		// signing key, without an encryption subkey.
		{"sign.only@example.com", k.signOnly, "no valid encryption subkey"},
	} {
		_, err := gnupg.FindRecipient(el, tc.query, time.Now())
		if !errors.Is(err, gnupg.ErrNoRecipient) {
			t.Errorf("FindRecipient(%q): error %v, want ErrNoRecipient", tc.query, err)
			continue
		}
		for _, want := range []string{tc.query, tc.fpr, tc.why} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("FindRecipient(%q): error %q does not say %q", tc.query, err, want)
			}
		}
	}
	// Unusable keys do not make a query ambiguous: "Key" matches John Doe
	// (Key Trustee Backup), Old Key and Revoked Key.
	if e, err := gnupg.FindRecipient(el, "Key", time.Now()); err != nil || fpr(e) != k.john {
		t.Errorf("FindRecipient(Key) = %v, %v; want John Doe", e, err)
	}
}

func TestFindRecipientJudgesKeysAtTheTimeGiven(t *testing.T) {
	k := keyring(t)
	el, err := gnupg.PublicKeys(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	then := time.Date(2020, 1, 1, 12, 0, 0, 0, time.UTC) // within the old key's day of life
	if e, err := gnupg.FindRecipient(el, "old@example.com", then); err != nil || fpr(e) != k.old {
		t.Errorf("FindRecipient(old@example.com) in 2020: %v, %v", e, err)
	}
	if _, err := gnupg.FindRecipient(el, k.john, then); !errors.Is(err, gnupg.ErrNoRecipient) || !strings.Contains(err.Error(), "future") {
		t.Errorf("FindRecipient before the key was made: error %v, want ErrNoRecipient about the future", err)
	}
}

func TestDescribeNamesFingerprintAndUserID(t *testing.T) {
	k := keyring(t)
	got := gnupg.Describe(entity(t, k.john))
	want := k.john + ` "John Doe (Key Trustee Backup) <john.doe@example.com>"`
	if got != want {
		t.Errorf("Describe = %s, want %s", got, want)
	}
	if got := gnupg.Describe(nil); got == "" {
		t.Error("Describe(nil) is empty")
	}
}
