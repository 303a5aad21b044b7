package store_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"trustee.dev/trustee/server/keyring"
	"trustee.dev/trustee/server/pg/pgtest"
	"trustee.dev/trustee/server/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func open(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), pgtest.DSN(t), 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMigrateIsIdempotentAndSafeConcurrently(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- s.Migrate(ctx) }()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	v, err := s.SchemaVersion(ctx)
	if err != nil || v != 5 {
		t.Fatalf("SchemaVersion = %d, %v", v, err)
	}
	// A database migrated by a newer binary is refused, not downgraded.
	if _, err := s.Pool().Exec(ctx, `INSERT INTO schema_migrations(version, name) VALUES (999, 'future')`); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err == nil {
		t.Fatal("Migrate accepted a newer schema")
	}
}

func TestOrganizations(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	o, created, err := s.AddOrganization(ctx, "disaster-recov", []string{"finn@example.com", "jake@example.com"}, "h1")
	if err != nil || !created || len(o.UUID) != 43 || o.State != 0 || o.Expiration.Year() != 9999 {
		t.Fatalf("add: %+v %v %v", o, created, err)
	}
	o2, created, err := s.AddOrganization(ctx, "disaster-recov", []string{"jake@example.com", "marceline@example.com"}, "ignored")
	if err != nil || created || o2.UUID != o.UUID || o2.AuthHash != "h1" {
		t.Fatalf("add again: %+v %v %v", o2, created, err)
	}
	if want := []string{"finn@example.com", "jake@example.com", "marceline@example.com"}; len(o2.Contacts) != 3 || o2.Contacts[2] != want[2] {
		t.Fatalf("contacts %v, want %v", o2.Contacts, want)
	}
	if err := s.SetAuthHash(ctx, "nosuch", "x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("SetAuthHash on unknown org: %v", err)
	}
	if _, err := s.Organization(ctx, "nosuch"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Organization(nosuch): %v", err)
	}
}

func TestClientsAndDeposits(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	if _, _, err := s.AddOrganization(ctx, "acme", []string{"a@example.com"}, ""); err != nil {
		t.Fatal(err)
	}
	fp := "0123456789ABCDEF0123456789ABCDEF01234567"
	c := store.Client{Fingerprint: fp, OrgName: "acme", KeyID: "255E/" + fp, PublicKey: []byte("k"), State: store.StatePending}
	if err := s.RegisterClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := s.RegisterClient(ctx, c); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second RegisterClient: %v", err)
	}
	c.Fingerprint, c.OrgName = "F123456789ABCDEF0123456789ABCDEF01234567", "nosuch"
	if err := s.RegisterClient(ctx, c); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("RegisterClient in unknown org: %v", err)
	}
	sealed := keyring.Sealed{KeyID: "k1", WrappedKey: []byte("w"), Ciphertext: []byte("c")}
	if _, err := s.PutDeposit(ctx, fp, "d", sealed, 1); !errors.Is(err, store.ErrClientNotActive) {
		t.Fatalf("pending client put: %v", err)
	}
	if prev, err := s.SetClientState(ctx, fp, store.StateActive); err != nil || prev != store.StatePending {
		t.Fatalf("enable: %v %v", prev, err)
	}
	if _, err := s.PutDeposit(ctx, fp, "d", sealed, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutDeposit(ctx, fp, "d", sealed, 1); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second put: %v", err)
	}
	got, err := s.GetDeposit(ctx, fp, "d")
	if err != nil || got.KeyID != "k1" || string(got.Ciphertext) != "c" {
		t.Fatalf("get: %+v %v", got, err)
	}
	if _, err := s.GetDeposit(ctx, fp, "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get missing: %v", err)
	}
	unknown := "AAAA456789ABCDEF0123456789ABCDEF01234567"
	if _, err := s.GetDeposit(ctx, unknown, "d"); !errors.Is(err, store.ErrUnknownClient) {
		t.Fatalf("get by unknown client: %v", err)
	}
	if list, err := s.ListDeposits(ctx, fp); err != nil || len(list) != 1 || list[0].Name != "d" || list[0].Size != 1 {
		t.Fatalf("list: %+v %v", list, err)
	}
	if _, err := s.SetClientState(ctx, fp, store.StateDisabled); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"get":    func() error { _, err := s.GetDeposit(ctx, fp, "d"); return err }(),
		"list":   func() error { _, err := s.ListDeposits(ctx, fp); return err }(),
		"delete": s.DeleteDeposit(ctx, fp, "d"),
	} {
		if !errors.Is(err, store.ErrClientNotActive) {
			t.Errorf("disabled client %s: %v", name, err)
		}
	}
	s.SetClientState(ctx, fp, store.StateActive)
	if err := s.DeleteDeposit(ctx, fp, "d"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteDeposit(ctx, fp, "d"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := s.SetClientState(ctx, unknown, store.StateActive); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("enable unknown: %v", err)
	}
}

func TestNonces(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	now := time.Now()
	fresh, err := s.UseNonce(ctx, "FP", "n1", now.Add(time.Minute))
	if err != nil || !fresh {
		t.Fatalf("first use: %v %v", fresh, err)
	}
	if fresh, _ := s.UseNonce(ctx, "FP", "n1", now.Add(time.Minute)); fresh {
		t.Fatal("replayed nonce reported fresh")
	}
	if fresh, _ := s.UseNonce(ctx, "OTHER", "n1", now.Add(time.Minute)); !fresh {
		t.Fatal("another client's same nonce refused")
	}
	if n, err := s.PruneNonces(ctx, now.Add(2*time.Minute)); err != nil || n != 2 {
		t.Fatalf("prune: %d %v", n, err)
	}
}

// A read whose pooled connection was closed by the database (a restart, an
// administrator) is answered on a fresh connection; the pool pings only
// connections idle for more than a second, so without this the first read
// after a quick restart failed.
func TestReadsSurviveConnectionsClosedByTheDatabase(t *testing.T) {
	dsn := pgtest.DSN(t)
	s, err := store.Open(context.Background(), dsn, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	fp := "0123456789ABCDEF0123456789ABCDEF01234567"
	if _, _, err := s.AddOrganization(ctx, "acme", []string{"a@example.com"}, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.RegisterClient(ctx, store.Client{Fingerprint: fp, OrgName: "acme", KeyID: "255E/" + fp, PublicKey: []byte("k"), State: store.StateActive}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutDeposit(ctx, fp, "d", keyring.Sealed{KeyID: "k1", WrappedKey: []byte("w"), Ciphertext: []byte("c")}, 1); err != nil {
		t.Fatal(err)
	}
	batcher := store.NewBatcher(ctx, s, 1, 8)
	reads := map[string]func() error{
		"client":          func() error { _, err := s.Client(ctx, fp); return err },
		"clients":         func() error { _, err := s.Clients(ctx, ""); return err },
		"deposit":         func() error { _, err := s.GetDeposit(ctx, fp, "d"); return err },
		"batched deposit": func() error { _, err := batcher.GetDeposit(ctx, fp, "d"); return err },
		"deposits":        func() error { _, err := s.ListDeposits(ctx, fp); return err },
		"organization":    func() error { _, err := s.Organization(ctx, "acme"); return err },
		"organizations":   func() error { _, err := s.Organizations(ctx); return err },
	}
	for name, read := range reads {
		if err := read(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var closed int
		if err := admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&closed); err != nil || closed == 0 {
			t.Fatalf("closing the pool's connections: %d closed, %v", closed, err)
		}
		if err := read(); err != nil {
			t.Errorf("%s right after its connection was closed: %v", name, err)
		}
	}
}
