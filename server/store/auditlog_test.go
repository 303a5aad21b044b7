package store_test

import (
	"context"
	"testing"

	"trustee.dev/trustee/server/audit"
	"trustee.dev/trustee/server/pg/pgtest"
	"trustee.dev/trustee/server/store"
)

// The audit chain read over a connection of its own, as kts audit verify
// and export read it.
func TestAuditLogReadsTheChain(t *testing.T) {
	ctx := audit.WithActor(context.Background(), admin)
	dsn := pgtest.DSN(t)

	fresh, err := store.OpenAuditLog(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := fresh.Exists(ctx); err != nil || ok {
		t.Errorf("Exists before the schema = %v, %v: want false", ok, err)
	}
	fresh.Close(ctx)

	s, err := store.Open(ctx, dsn, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"acme", "globex"} {
		if _, _, err := s.AddOrganization(ctx, name, []string{"a@example.com"}, ""); err != nil {
			t.Fatal(err)
		}
	}
	l, err := store.OpenAuditLog(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(ctx)
	if ok, err := l.Exists(ctx); err != nil || !ok {
		t.Fatalf("Exists = %v, %v: want true", ok, err)
	}
	var seqs []int64
	if err := l.Records(ctx, 2, func(r audit.Record) error { seqs = append(seqs, r.Seq); return nil }); err != nil {
		t.Fatal(err)
	}
	sum, err := l.Verify(ctx, &audit.Verifier{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Records < 2 || len(seqs) != int(sum.Records)-1 || seqs[0] != 2 {
		t.Errorf("verified %d records; read %v from record 2", sum.Records, seqs)
	}
}
