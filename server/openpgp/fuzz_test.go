package openpgp

import (
	"bytes"
	"testing"
)

func FuzzParsePublic(f *testing.F) {
	good := testKey(f, Ed25519).Public().Armor()
	bin := dearmoredTB(f, good)
	priv, err := testKey(f, Ed25519).Armor()
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range [][]byte{
		good, bin, priv, nil, []byte("garbage"),
		good[:len(good)/2], bin[:len(bin)/2],
		append(bytes.Clone(bin), bin...),
		[]byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n-----END PGP PUBLIC KEY BLOCK-----\n"),
		{0x99, 0x00, 0x01, 0x04}, {0x98}, {0xc6, 0xff},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePublic(data)
		if err != nil {
			if p != nil {
				t.Fatal("key and error both returned")
			}
			return
		}
		if !fprRE.MatchString(p.Fingerprint()) {
			t.Fatalf("fingerprint %q is not 40 upper-case hex", p.Fingerprint())
		}
		if _, err := ParsePublic(p.Armor()); err != nil {
			t.Fatalf("re-parsing our own armor: %v", err)
		}
	})
}

func dearmoredTB(tb testing.TB, a []byte) []byte {
	tb.Helper()
	t, ok := tb.(*testing.T)
	if ok {
		return dearmored(t, a)
	}
	b, err := dearmor(a)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
