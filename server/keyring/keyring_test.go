package keyring

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func newTestKeyring(t *testing.T) *FileKeyring {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keyring.json")
	if err := CreateFile(path); err != nil {
		t.Fatal(err)
	}
	kr, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func TestSealOpenRoundTrip(t *testing.T) {
	ctx := context.Background()
	kr := newTestKeyring(t)
	for _, size := range []int{0, 1, 256, 1 << 20} {
		plain := bytes.Repeat([]byte{0xA5}, size)
		s, err := Seal(ctx, kr, plain, []byte("owner/name"))
		if err != nil {
			t.Fatal(err)
		}
		if size >= 16 && bytes.Contains(s.Ciphertext, plain[:16]) {
			t.Fatalf("ciphertext contains plaintext")
		}
		got, err := Open(ctx, kr, s, []byte("owner/name"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, plain) {
			t.Fatalf("size %d: round trip mismatch", size)
		}
	}
}

func TestOpenRefusesTampering(t *testing.T) {
	ctx := context.Background()
	kr := newTestKeyring(t)
	s, err := Seal(ctx, kr, []byte("secret key material"), []byte("A/k1"))
	if err != nil {
		t.Fatal(err)
	}
	flip := func(b []byte) []byte { c := bytes.Clone(b); c[len(c)-1] ^= 1; return c }
	cases := map[string]struct {
		s   Sealed
		aad string
	}{
		"moved to another row":  {s, "B/k1"},
		"ciphertext altered":    {Sealed{s.KeyID, s.WrappedKey, flip(s.Ciphertext)}, "A/k1"},
		"wrapped key altered":   {Sealed{s.KeyID, flip(s.WrappedKey), s.Ciphertext}, "A/k1"},
		"truncated ciphertext":  {Sealed{s.KeyID, s.WrappedKey, s.Ciphertext[:5]}, "A/k1"},
		"wrapped under another": {Sealed{kr.current, wrappedByAnotherKEK(t, ctx, kr.current), s.Ciphertext}, "A/k1"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := Open(ctx, kr, c.s, []byte(c.aad)); !errors.Is(err, ErrOpen) {
				t.Fatalf("Open = %v, want ErrOpen", err)
			}
		})
	}
	if _, err := Open(ctx, kr, Sealed{"file-unknown", s.WrappedKey, s.Ciphertext}, []byte("A/k1")); err == nil {
		t.Fatal("unknown key ID accepted")
	}
}

// wrappedByAnotherKEK wraps a data key with another keyring's KEK that
// claims the given key ID.
func wrappedByAnotherKEK(t *testing.T, ctx context.Context, keyID string) []byte {
	other := newTestKeyring(t)
	other.keys[keyID] = other.keys[other.current]
	other.current = keyID
	_, w, err := other.Wrap(ctx, make([]byte, 32), []byte("A/k1"))
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestKeyringFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keyring.json")
	if err := CreateFile(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
	before, _ := os.ReadFile(path)
	if err := CreateFile(path); err == nil {
		t.Fatal("CreateFile overwrote an existing keyring")
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("keyring changed by refused CreateFile")
	}

	bad := map[string]string{
		"not json":        "nope",
		"short key":       `{"current":"a","keys":[{"id":"a","key":"AAAA"}]}`,
		"missing current": `{"current":"b","keys":[{"id":"a","key":"` + b64(32) + `"}]}`,
	}
	for name, content := range bad {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, "bad.json")
			if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := LoadFile(p); err == nil {
				t.Fatal("LoadFile accepted a bad keyring")
			}
		})
	}
	if _, err := LoadFile(filepath.Join(dir, "missing.json")); err == nil {
		t.Fatal("LoadFile accepted a missing file")
	}
}

func b64(n int) string {
	const a = "AAAA"
	s := ""
	for i := 0; i < (n+2)/3; i++ {
		s += a
	}
	return s[:((n+2)/3)*4]
}
