package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"trustee.dev/trustee/server/keyring"
	"trustee.dev/trustee/server/store"
)

func TestKEKVersionsAndRewrap(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	if cur, err := s.CurrentKEK(ctx); err != nil || cur != "" {
		t.Fatalf("CurrentKEK of a new database = %q, %v; want none", cur, err)
	}
	if _, _, err := s.AddOrganization(ctx, "acme", []string{"a@example.com"}, ""); err != nil {
		t.Fatal(err)
	}
	fp := "0123456789ABCDEF0123456789ABCDEF01234567"
	if err := s.RegisterClient(ctx, store.Client{Fingerprint: fp, OrgName: "acme", KeyID: "k", PublicKey: []byte("k"), State: store.StateActive}); err != nil {
		t.Fatal(err)
	}
	for i := range 1200 {
		if _, err := s.PutDeposit(ctx, fp, fmt.Sprint("d", i), keyring.Sealed{KeyID: "file-1", WrappedKey: []byte("old"), Ciphertext: []byte("c")}, 1); err != nil {
			t.Fatal(err)
		}
	}

	if err := s.MakeCurrentKEK(ctx, "hsm:kts-kek-1"); err != nil {
		t.Fatal(err)
	}
	if err := s.MakeCurrentKEK(ctx, "hsm:kts-kek-1"); err != nil {
		t.Fatalf("making the current key current again: %v", err)
	}
	if n, err := s.CountNotCurrent(ctx, "hsm:kts-kek-1"); err != nil || n != 1200 {
		t.Fatalf("CountNotCurrent = %d, %v", n, err)
	}
	// A failing re-wrap changes nothing.
	boom := errors.New("HSM away")
	if _, err := s.RewrapBatch(ctx, "hsm:kts-kek-1", 500, func(_, _, _ string, _ []byte) ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("RewrapBatch with a failing re-wrap = %v", err)
	}
	total := 0
	for {
		n, err := s.RewrapBatch(ctx, "hsm:kts-kek-1", 500, func(owner, name, kek string, wrapped []byte) ([]byte, error) {
			if owner != fp || kek != "file-1" || string(wrapped) != "old" {
				return nil, fmt.Errorf("re-wrap got %s %s %s %q", owner, name, kek, wrapped)
			}
			return []byte("new " + name), nil
		})
		if errors.Is(err, store.ErrNothingToRewrap) {
			break
		}
		if err != nil || n > 500 {
			t.Fatalf("RewrapBatch = %d, %v", n, err)
		}
		total += n
	}
	if total != 1200 {
		t.Fatalf("re-wrapped %d deposits, want 1200", total)
	}
	d, err := s.GetDeposit(ctx, fp, "d7")
	if err != nil || d.KeyID != "hsm:kts-kek-1" || string(d.WrappedKey) != "new d7" {
		t.Fatalf("after re-wrap d7 = %+v, %v", d, err)
	}

	// Rotation: the old current key retires only once no deposit uses it.
	if err := s.MakeCurrentKEK(ctx, "hsm:kts-kek-2"); err != nil {
		t.Fatal(err)
	}
	if err := s.RetireKEK(ctx, "hsm:kts-kek-1"); err == nil {
		t.Fatal("a key that still wraps deposits was retired")
	}
	if err := s.MakeCurrentKEK(ctx, "hsm:kts-kek-1"); err == nil {
		t.Fatal("a retiring key was made current again")
	}
	for {
		if _, err := s.RewrapBatch(ctx, "hsm:kts-kek-2", 1000, func(_, _, _ string, _ []byte) ([]byte, error) { return []byte("v2"), nil }); err != nil {
			if !errors.Is(err, store.ErrNothingToRewrap) {
				t.Fatal(err)
			}
			break
		}
	}
	if err := s.RetireKEK(ctx, "hsm:kts-kek-1"); err != nil {
		t.Fatal(err)
	}
	if usable, err := s.UsableKEKs(ctx); err != nil || len(usable) != 1 || usable[0] != "hsm:kts-kek-2" {
		t.Fatalf("UsableKEKs = %v, %v", usable, err)
	}
	keks, err := s.KEKs(ctx)
	if err != nil || len(keks) != 2 || keks[0].ID != "hsm:kts-kek-1" || keks[0].State != store.KEKRetired ||
		keks[1].State != store.KEKCurrent || keks[1].Deposits != 1200 {
		t.Fatalf("KEKs = %+v, %v", keks, err)
	}
}
