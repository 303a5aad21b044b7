package store

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// Replication is what an active's database says of its passive's standby.
type Replication struct {
	// Paired reports that commits wait for a synchronous standby
	// (synchronous_standby_names is set).
	Paired bool
	// SyncState is the standby's sync_state while it streams; nil when it
	// is not streaming.
	SyncState *string
	// LagBytes is how far the standby's replay is behind the active's WAL;
	// nil when it is not connected.
	LagBytes *int64
}

// Replication reads the state of the standby named standby
// (application_name) from an active's database.
func (s *Store) Replication(ctx context.Context, standby string) (Replication, error) {
	var r Replication
	var names string
	err := s.pool.QueryRow(ctx, `SELECT current_setting('synchronous_standby_names'),
		(SELECT sync_state FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming' LIMIT 1),
		(SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint FROM pg_stat_replication WHERE application_name = $1 LIMIT 1)`,
		standby).Scan(&names, &r.SyncState, &r.LagBytes)
	r.Paired = names != ""
	return r, err
}

// SyncStandbyAttached reports whether commits wait for a synchronous
// standby (paired), and whether the standby named standby streams as one.
func (s *Store) SyncStandbyAttached(ctx context.Context, standby string) (paired, attached bool, err error) {
	var names string
	err = s.pool.QueryRow(ctx, `SELECT current_setting('synchronous_standby_names'),
		EXISTS (SELECT 1 FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming' AND sync_state IN ('sync', 'quorum'))`,
		standby).Scan(&names, &attached)
	return names != "", attached, err
}

// Standby is what a passive's database says of its replay.
type Standby struct {
	// InRecovery reports that the database is a standby.
	InRecovery bool
	// WALReceiver is the WAL receiver's status; nil when none runs.
	WALReceiver *string
	// SecondsSinceReplay is the age of the last replayed commit; nil
	// before any.
	SecondsSinceReplay *float64
}

// Standby reads a passive database's replay position.
func (s *Store) Standby(ctx context.Context) (Standby, error) {
	var st Standby
	err := s.pool.QueryRow(ctx, `SELECT pg_is_in_recovery(),
		(SELECT status FROM pg_stat_wal_receiver LIMIT 1),
		extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8`).Scan(&st.InRecovery, &st.WALReceiver, &st.SecondsSinceReplay)
	return st, err
}

// PostmasterStatus reads, on conn, when its database server started and
// its WAL receiver's status (nil when none runs): what tells a standby
// that restarted and still replays from one that streams again.
func PostmasterStatus(ctx context.Context, conn *pgx.Conn) (started string, receiver *string, err error) {
	err = conn.QueryRow(ctx, `SELECT pg_postmaster_start_time()::text, (SELECT status FROM pg_stat_wal_receiver LIMIT 1)`).Scan(&started, &receiver)
	return started, receiver, err
}
