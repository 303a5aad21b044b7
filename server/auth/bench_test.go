package auth

import (
	"context"
	"strings"
	"testing"
	"time"
)

func BenchmarkTokenVerify(b *testing.B) {
	tokens, err := NewTokens([]byte(strings.Repeat("k", 32)))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	tok, _, err := tokens.Issue(testFpr, 0, now)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tokens.Verify(tok, now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseAuthorization(b *testing.B) {
	h := "KTS-PGP fingerprint=" + testFpr + ", timestamp=1700000000, nonce=" + testNonce + ", signature=" + strings.Repeat("iHUEABYIAB0WIQ", 10) + "AA=="
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseAuthorization(h); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthenticateEd25519 is a whole signed-request check with
// in-memory stores (which grow by one nonce per iteration).
func BenchmarkAuthenticateEd25519(b *testing.B) {
	f := newFixture(b)
	a, _ := testKeys(b)
	reqs := make([]Request, 0, 4096)
	for range cap(reqs) {
		reqs = append(reqs, signed(b, a, "PUT", "/v1/deposits/db", []byte("body"), f.now))
	}
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == len(reqs) {
			f.nonces.expires = nil // start over
			i = 0
		}
		if _, err := f.a.Authenticate(ctx, reqs[i]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
