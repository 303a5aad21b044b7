// Package store keeps organizations, clients, deposits and used nonces in
// PostgreSQL through a pgx pool. The schema is created and upgraded by
// embedded, versioned migrations (Migrate).
//
// Deposit queries check the owning client's state in the same statement, so
// a disabled client is refused by the very query that would serve it.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Sentinel errors returned by Store methods.
var (
	ErrNotFound        = errors.New("not found")
	ErrExists          = errors.New("already exists")
	ErrUnknownClient   = errors.New("unknown client")
	ErrClientNotActive = errors.New("client is not active")
	// ErrNotReady means the database may not be read yet (see OpenChecked).
	ErrNotReady = errors.New("database not ready")
)

// Store is the PostgreSQL-backed state of a server.
type Store struct {
	pool *pgxpool.Pool
}

// Open connects to the database named by dsn. maxConns ≤ 0 keeps pgx's
// default pool size.
func Open(ctx context.Context, dsn string, maxConns int32) (*Store, error) {
	return OpenChecked(ctx, dsn, maxConns, nil)
}

// OpenChecked is Open with a check run on every new connection before it
// is used; a connection that fails it is not used.
func OpenChecked(ctx context.Context, dsn string, maxConns int32, check func(context.Context, *pgx.Conn) error) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("database connection string: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	cfg.AfterConnect = check
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to PostgreSQL at %s:%d: %w (is it running? try `kts db status`)",
			cfg.ConnConfig.Host, cfg.ConnConfig.Port, err)
	}
	return &Store{pool: pool}, nil
}

// Close releases the pool.
func (s *Store) Close() { s.pool.Close() }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// UseNonce records a nonce of a signed request. It reports false when the
// same client already used the nonce (a replay).
func (s *Store) UseNonce(ctx context.Context, fingerprint, nonce string, expires time.Time) (bool, error) {
	tag, err := s.pool.Exec(ctx, `INSERT INTO used_nonces(fingerprint, nonce, expires_at) VALUES ($1, $2, $3)
		ON CONFLICT DO NOTHING`, fingerprint, nonce, expires)
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}

// PruneNonces deletes nonces whose requests can no longer pass the
// timestamp check.
func (s *Store) PruneNonces(ctx context.Context, now time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM used_nonces WHERE expires_at < $1`, now)
	return tag.RowsAffected(), err
}

// PruneNoncesEvery prunes expired nonces every interval until ctx ends.
func (s *Store) PruneNoncesEvery(ctx context.Context, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if _, err := s.PruneNonces(ctx, now); err != nil && ctx.Err() == nil {
				log.Warn("prune nonces", "err", err)
			}
		}
	}
}

func noRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }

// ConnectionLost reports errors that mean the connection to PostgreSQL broke
// or the server is shutting down, crashed or is starting up, as opposed to a
// failed statement.
func ConnectionLost(err error) bool {
	var pe *pgconn.PgError
	var ne net.Error
	switch {
	case errors.As(err, &ne), errors.Is(err, io.ErrUnexpectedEOF), pgconn.SafeToRetry(err):
		return true
	case errors.As(err, &pe):
		// Class 08: connection exception; 57P01-57P03: shutdown, crash, starting up.
		return strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03"
	}
	return false
}

// readAgain runs a read-only query and, when the pooled connection it used
// had been closed by a database restart (the pool pings only connections
// idle for more than a second), runs it once more: the failed connection
// has left the pool, and a read is safe to repeat.
func readAgain[T any](ctx context.Context, read func() (T, error)) (T, error) {
	v, err := read()
	if err != nil && ctx.Err() == nil && ConnectionLost(err) {
		return read()
	}
	return v, err
}

// InRecovery reports whether the database is a standby (a passive's),
// which refuses changes.
func (s *Store) InRecovery(ctx context.Context) (bool, error) {
	var standby bool
	err := s.pool.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&standby)
	return standby, err
}
