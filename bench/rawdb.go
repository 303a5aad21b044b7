package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// openRaw opens a pool of n connections to dsn for the PostgreSQL anchors:
// the database itself, without the server.
func openRaw(ctx context.Context, dsn string, n int) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("database connection string: %w", err)
	}
	cfg.MaxConns = int32(n)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// rawDB measures PostgreSQL itself with rows shaped like sealed deposits.
type rawDB struct {
	db               *pgxpool.Pool
	wrapped, sealed  []byte
	prefill, workers int
	round            int
	tag              string
}

func newRawDB(ctx context.Context, db *pgxpool.Pool, o Options, payload []byte) (*rawDB, error) {
	r := &rawDB{db: db, wrapped: make([]byte, 60), sealed: make([]byte, len(payload)+28), prefill: o.Prefill, workers: o.Workers}
	rand.Read(r.wrapped)
	rand.Read(r.sealed)
	tag := make([]byte, 4)
	rand.Read(tag)
	r.tag = hex.EncodeToString(tag)
	if _, err := db.Exec(ctx, `CREATE TABLE IF NOT EXISTS bench_raw (owner text NOT NULL, name text NOT NULL,
		kek_id text NOT NULL, wrapped_key bytea NOT NULL, ciphertext bytea NOT NULL, size integer NOT NULL,
		created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (owner, name))`); err != nil {
		return nil, err
	}
	for w := 0; w < o.Workers; w++ {
		for i := 0; i < o.Prefill; i++ {
			if err := r.insertRow(ctx, r.owner(w), "p-"+strconv.Itoa(i)); err != nil {
				return nil, err
			}
		}
	}
	return r, nil
}

func (r *rawDB) owner(w int) string { return fmt.Sprintf("%s-%02d", r.tag, w) }

func (r *rawDB) insertRow(ctx context.Context, owner, name string) error {
	return r.insertInto(ctx, r.db, owner, name)
}

func (r *rawDB) insertInto(ctx context.Context, db *pgxpool.Pool, owner, name string) error {
	_, err := db.Exec(ctx, `INSERT INTO bench_raw(owner, name, kek_id, wrapped_key, ciphertext, size)
		VALUES ($1, $2, $3, $4, $5, $6)`, owner, name, "file-bench", r.wrapped, r.sealed, len(r.sealed)-28)
	return err
}

func (r *rawDB) insert(ctx context.Context, w, seq int) error {
	return r.insertRow(ctx, r.owner(w), fmt.Sprintf("w-%d-%d", r.round, seq))
}

func (r *rawDB) selectRow(ctx context.Context, w, seq int) error {
	var kek string
	var wrapped, sealed []byte
	return r.db.QueryRow(ctx, `SELECT kek_id, wrapped_key, ciphertext FROM bench_raw WHERE owner = $1 AND name = $2`,
		r.owner(w), "p-"+strconv.Itoa(seq%r.prefill)).Scan(&kek, &wrapped, &sealed)
}

func (r *rawDB) drop(ctx context.Context) {
	r.db.Exec(ctx, `DROP TABLE IF EXISTS bench_raw`)
}

// waitReplayed waits until every standby has replayed the active's WAL.
func waitReplayed(ctx context.Context, db *pgxpool.Pool) error {
	deadline := time.Now().Add(time.Minute)
	for {
		var behind int64
		err := db.QueryRow(ctx, `SELECT coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)), 0)::bigint
			FROM pg_stat_replication`).Scan(&behind)
		if err != nil || behind == 0 {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the standby is still %d bytes behind after a minute", behind)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// settle has PostgreSQL write out and vacuum what the put runs left before
// the fixed-rate window, so that the latency measured there is the get
// path's and not that of flushing the writes before it (which run with
// every put, audit records included, and land on whatever runs next). A
// server that refuses (an account that may not CHECKPOINT) is measured as
// it is, and the run says so.
func settle(ctx context.Context, out io.Writer, db *pgxpool.Pool) {
	for _, q := range []string{"VACUUM (ANALYZE)", "CHECKPOINT"} {
		if _, err := db.Exec(ctx, q); err != nil {
			fmt.Fprintf(out, "  (could not run %s before the fixed-rate window: %v)\n", q, err)
		}
	}
}
