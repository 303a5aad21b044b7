package auth

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func FuzzParseAuthorization(f *testing.F) {
	good := "KTS-PGP fingerprint=" + testFpr + ", timestamp=1700000000, nonce=" + testNonce + ", signature=" + testSigB64
	for _, seed := range []string{
		good,
		"KTS-PGP signature=" + testSigRaw + ",nonce=" + testNonce + ",timestamp=0,fingerprint=" + testFpr,
		"kts-pgp fingerprint=\"" + testFpr + "\", timestamp=\"1\", nonce=\"" + testNonce + "\", signature=\"" + testSigB64 + "\"",
		"KTS-Session " + strings.Repeat("A", 82),
		"KTS-Session", "KTS-PGP", "", " ", "Bearer x", "KTS-PGP ,", "KTS-PGP a=b",
		good + ", nonce=" + testNonce, good + ",", strings.Replace(good, "=", "", 1),
		"KTS-PGP fingerprint=" + testFpr + ", timestamp=01, nonce=" + testNonce + ", signature=QQ",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		c, err := ParseAuthorization(header)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrNoCredentials) {
				t.Fatalf("error %v wraps neither ErrMalformed nor ErrNoCredentials", err)
			}
			return
		}
		again, err := ParseAuthorization(c.header())
		if err != nil {
			t.Fatalf("re-rendered %q does not parse: %v", c.header(), err)
		}
		if !reflect.DeepEqual(c, again) {
			t.Fatalf("round trip changed credentials:\n%#v\n%#v", c, again)
		}
		switch c.Scheme {
		case SchemeSignature:
			if len(c.Fingerprint) != 40 || c.Fingerprint != strings.ToUpper(c.Fingerprint) || len(c.Signature) == 0 || c.Token != "" {
				t.Fatalf("bad signature credentials %#v", c)
			}
		case SchemeSession:
			if c.Token == "" || c.Fingerprint != "" || c.Signature != nil {
				t.Fatalf("bad session credentials %#v", c)
			}
		default:
			t.Fatalf("scheme %v", c.Scheme)
		}
	})
}
