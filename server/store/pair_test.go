package store_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"trustee.dev/trustee/server/pg/pgtest"
	"trustee.dev/trustee/server/store"
)

// A database without a standby: not paired, nothing attached, not in
// recovery.
func TestReplicationWithoutStandby(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	r, err := s.StandbyReplication(ctx, "passive")
	if err != nil {
		t.Fatal(err)
	}
	if r != (store.StandbyReplication{}) {
		t.Errorf("replication %+v: want no standby", r)
	}
	st, err := s.Standby(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.InRecovery || st.WALReceiver != nil {
		t.Errorf("standby %+v: want a primary without a WAL receiver", st)
	}
}

func TestFillDeposits(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	if err := s.FillDeposits(ctx, 0, 10, 40); err != nil {
		t.Fatal(err)
	}
	if err := s.FillDeposits(ctx, 10, 25, 40); err != nil {
		t.Fatal(err)
	}
	var n, size int
	if err := s.Pool().QueryRow(ctx, `SELECT count(*), min(size) FROM deposits WHERE owner = repeat('B', 40)
		AND length(ciphertext) = 40`).Scan(&n, &size); err != nil {
		t.Fatal(err)
	}
	if n != 25 || size != 40 {
		t.Errorf("%d deposits of %d bytes, want 25 of 40", n, size)
	}
}

func TestPostmasterStatusOfAPrimary(t *testing.T) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	started, receiver, err := store.PostmasterStatus(ctx, conn)
	if err != nil || started == "" || receiver != nil {
		t.Errorf("PostmasterStatus = %q, %v, %v: want a start time and no WAL receiver", started, receiver, err)
	}
}
