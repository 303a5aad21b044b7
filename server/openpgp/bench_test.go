package openpgp

import (
	"strings"
	"testing"
)

// benchRequest is a canonical request of about 200 bytes.
var benchRequest = []byte("KTS-PGP-V1\nPUT\n/v1/deposits/backup-key-2024\nversion=3\n1700000000\nQ2h1Y2tOb3JyaXNSb3VuZGhvdXNlS2ljaw\n" + strings.Repeat("ab", 32))

func benchVerify(b *testing.B, kt KeyType) {
	k := testKey(b, kt)
	p, err := ParsePublic(k.Public().Armor())
	if err != nil {
		b.Fatal(err)
	}
	sig, err := k.SignDetached(benchRequest)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := p.VerifyDetached(benchRequest, sig); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyEd25519(b *testing.B) { benchVerify(b, Ed25519) }

func BenchmarkVerifyRSA4096(b *testing.B) { benchVerify(b, RSA4096) }

func BenchmarkSignEd25519(b *testing.B) {
	k := testKey(b, Ed25519)
	for b.Loop() {
		if _, err := k.SignDetached(benchRequest); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParsePublicEd25519(b *testing.B) {
	a := testKey(b, Ed25519).Public().Armor()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParsePublic(a); err != nil {
			b.Fatal(err)
		}
	}
}
