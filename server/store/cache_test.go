package store_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"trustee.dev/trustee/server/keyring"
	"trustee.dev/trustee/server/store"
)

// eventually polls cond for up to 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5 s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newCache(t *testing.T, s *store.Store) *store.Cache {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	c := store.NewCache(ctx, s, store.NewBatcher(ctx, s, 1, 16), 1<<20, slog.New(slog.NewTextHandler(io.Discard, nil)))
	eventually(t, "cache live", c.Live)
	return c
}

// TestCacheStaysCoherent runs two caches over one database, as two servers
// would, and checks that deletions and client state changes made anywhere
// reach both.
func TestCacheStaysCoherent(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	fp := activeClient(t, context.Background(), s)
	a, b := newCache(t, s), newCache(t, s)
	d := keyring.Sealed{KeyID: "k", WrappedKey: []byte("w"), Ciphertext: []byte("original")}
	if _, err := a.PutDeposit(ctx, fp, "x", d, 8); err != nil {
		t.Fatal(err)
	}
	// A hit does not read the database: a change made behind the cache's
	// back is not seen.
	if _, err := s.Pool().Exec(ctx, `UPDATE deposits SET ciphertext = 'changed'`); err != nil {
		t.Fatal(err)
	}
	if got, err := a.GetDeposit(ctx, fp, "x"); err != nil || string(got.Ciphertext) != "original" {
		t.Fatalf("cached get = %q, %v", got.Ciphertext, err)
	}
	if got, _ := b.GetDeposit(ctx, fp, "x"); string(got.Ciphertext) != "changed" {
		t.Fatalf("cold cache get = %q", got.Ciphertext)
	}
	// A deletion through b reaches a.
	if err := b.DeleteDeposit(ctx, fp, "x"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "deletion seen by the other cache", func() bool {
		_, err := a.GetDeposit(ctx, fp, "x")
		return errors.Is(err, store.ErrNotFound)
	})
	// A client disabled by an administrator is refused by both.
	if _, err := a.PutDeposit(ctx, fp, "y", d, 8); err != nil {
		t.Fatal(err)
	}
	b.GetDeposit(ctx, fp, "y")
	if _, err := s.SetClientState(ctx, fp, store.StateDisabled); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*store.Cache{a, b} {
		eventually(t, "disabled client refused", func() bool {
			_, err := c.GetDeposit(ctx, fp, "y")
			return errors.Is(err, store.ErrClientNotActive)
		})
	}
	if _, err := s.SetClientState(ctx, fp, store.StateActive); err != nil {
		t.Fatal(err)
	}
	eventually(t, "re-enabled client served", func() bool {
		_, err := a.GetDeposit(ctx, fp, "y")
		return err == nil
	})
}

// TestCacheOffWithoutListener checks that the cache stands aside while it
// cannot hear invalidations, and comes back.
func TestCacheOffWithoutListener(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	fp := activeClient(t, context.Background(), s)
	c := newCache(t, s)
	d := keyring.Sealed{KeyID: "k", WrappedKey: []byte("w"), Ciphertext: []byte("original")}
	if _, err := c.PutDeposit(ctx, fp, "x", d, 8); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pool().Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND query LIKE 'LISTEN%'`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pool().Exec(ctx, `UPDATE deposits SET ciphertext = 'changed'`); err != nil {
		t.Fatal(err)
	}
	// Whether the listener is down or already back, the change is seen:
	// the cache is emptied whenever the listener reconnects.
	eventually(t, "change seen after the listener dropped", func() bool {
		got, err := c.GetDeposit(ctx, fp, "x")
		return err == nil && string(got.Ciphertext) == "changed"
	})
	eventually(t, "cache live again", c.Live)
}

// activeClient adds organization acme and an active client of it, as the
// actor in ctx, and returns the client's fingerprint.
func activeClient(t *testing.T, ctx context.Context, s *store.Store) string {
	t.Helper()
	if _, _, err := s.AddOrganization(ctx, "acme", []string{"a@example.com"}, ""); err != nil {
		t.Fatal(err)
	}
	fp := "0123456789ABCDEF0123456789ABCDEF01234567"
	if err := s.RegisterClient(ctx, store.Client{Fingerprint: fp, OrgName: "acme", KeyID: "x", PublicKey: []byte("k"), State: store.StateActive}); err != nil {
		t.Fatal(err)
	}
	return fp
}

func TestBatcherServesConcurrentRequests(t *testing.T) {
	s := open(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fp := activeClient(t, context.Background(), s)
	b := store.NewBatcher(ctx, s, 1, 8)
	const n = 64
	errs := make(chan error, 2*n)
	for i := range n {
		go func() {
			name := "k" + string(rune('A'+i%26)) + string(rune('a'+i/26))
			errs <- errOf(b.PutDeposit(ctx, fp, name, keyring.Sealed{KeyID: "k", WrappedKey: []byte("w"), Ciphertext: []byte(name)}, 1))
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// The same name twice in flight: exactly one wins.
	for range 2 {
		go func() {
			errs <- errOf(b.PutDeposit(ctx, fp, "twice", keyring.Sealed{KeyID: "k", WrappedKey: []byte("w"), Ciphertext: []byte("c")}, 1))
		}()
	}
	e1, e2 := <-errs, <-errs
	if (e1 == nil) == (e2 == nil) || !(errors.Is(e1, store.ErrExists) || errors.Is(e2, store.ErrExists)) {
		t.Fatalf("two puts of one name: %v, %v", e1, e2)
	}
	for i := range n {
		go func() {
			name := "k" + string(rune('A'+i%26)) + string(rune('a'+i/26))
			got, err := b.GetDeposit(ctx, fp, name)
			if err == nil && string(got.Ciphertext) != name {
				err = errors.New("wrong deposit " + string(got.Ciphertext) + " for " + name)
			}
			errs <- err
		}()
		go func() {
			_, err := b.GetDeposit(ctx, fp, "missing")
			if !errors.Is(err, store.ErrNotFound) {
				err = errors.New("missing deposit: " + errorString(err))
			} else {
				err = nil
			}
			errs <- err
		}()
	}
	for range 2 * n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	unknown := "FFFF456789ABCDEF0123456789ABCDEF01234567"
	if _, err := b.PutDeposit(ctx, unknown, "x", keyring.Sealed{KeyID: "k"}, 1); !errors.Is(err, store.ErrUnknownClient) {
		t.Fatalf("put by unknown client: %v", err)
	}
}

func errorString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// errOf is the error of a put, for tests that need only that.
func errOf(_ time.Time, err error) error { return err }
