package keyring_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"trustee.dev/trustee/server/keyring"
)

// otherKeys stands for an HSM's keys: a second file keyring whose IDs carry
// the HSM prefix, able to wrap with a named key.
type otherKeys struct{ *keyring.FileKeyring }

func (o otherKeys) WrapWith(ctx context.Context, id string, dataKey, aad []byte) ([]byte, error) {
	_, w, err := o.FileKeyring.Wrap(ctx, dataKey, aad)
	return w, err
}

func (o otherKeys) Unwrap(ctx context.Context, id string, wrapped, aad []byte) ([]byte, error) {
	return o.FileKeyring.Unwrap(ctx, o.FileKeyring.CurrentKeyID(), wrapped, aad)
}

func newFile(t *testing.T) *keyring.FileKeyring {
	t.Helper()
	p := filepath.Join(t.TempDir(), "keyring.json")
	if err := keyring.CreateFile(p); err != nil {
		t.Fatal(err)
	}
	kr, err := keyring.LoadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func TestSetWrapsWithTheCurrentKeyAndUnwrapsWhereEachKeyLives(t *testing.T) {
	ctx := context.Background()
	file := newFile(t)
	set := keyring.NewSet(file, otherKeys{newFile(t)})
	aad := []byte("owner/name")

	old, err := keyring.Seal(ctx, set, []byte("sealed by the file keyring"), aad)
	if err != nil || old.KeyID != file.CurrentKeyID() {
		t.Fatalf("Seal = %+v, %v; want the file keyring's current key", old, err)
	}
	if err := set.SetCurrent("hsm:kts-kek-1"); err != nil {
		t.Fatal(err)
	}
	fresh, err := keyring.Seal(ctx, set, []byte("sealed in the HSM"), aad)
	if err != nil || fresh.KeyID != "hsm:kts-kek-1" {
		t.Fatalf("Seal after SetCurrent = %+v, %v", fresh, err)
	}
	for _, s := range []keyring.Sealed{old, fresh} {
		if _, err := keyring.Open(ctx, set, s, aad); err != nil {
			t.Fatalf("Open of a deposit wrapped by %s: %v", s.KeyID, err)
		}
	}
	// Rewrap moves the old deposit to the current key; it still opens.
	id, w, err := set.Rewrap(ctx, old.KeyID, old.WrappedKey, aad)
	if err != nil || id != "hsm:kts-kek-1" {
		t.Fatalf("Rewrap = %s, %v", id, err)
	}
	old.KeyID, old.WrappedKey = id, w
	if pt, err := keyring.Open(ctx, set, old, aad); err != nil || string(pt) != "sealed by the file keyring" {
		t.Fatalf("Open after Rewrap = %q, %v", pt, err)
	}
	if err := set.SetCurrent(""); err != nil || set.CurrentKeyID() != file.CurrentKeyID() {
		t.Fatalf("SetCurrent(\"\") = %v; current %s", err, set.CurrentKeyID())
	}
}

func TestSetWithoutHSMRefusesHSMKeys(t *testing.T) {
	set := keyring.NewSet(newFile(t), nil)
	if err := set.SetCurrent("hsm:kts-kek-1"); err == nil || !strings.Contains(err.Error(), "HSM_MODULE") {
		t.Fatalf("SetCurrent of an HSM key without an HSM = %v", err)
	}
	_, err := set.Unwrap(context.Background(), "hsm:kts-kek-1", []byte("x"), nil)
	if err == nil || !strings.Contains(err.Error(), "no HSM configured") || errors.Is(err, keyring.ErrOpen) {
		t.Fatalf("Unwrap of an HSM-wrapped key without an HSM = %v", err)
	}
}
