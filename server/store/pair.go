package store

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// StandbyReplication is what the active's PostgreSQL says of its
// synchronous standby.
type StandbyReplication struct {
	// Paired: synchronous_standby_names is set, so commits wait for the
	// standby.
	Paired bool
	// Attached: the standby streams, in SyncState (pg_stat_replication's
	// sync_state).
	Attached  bool
	SyncState string
	// LagBytes is the WAL the standby has yet to replay.
	LagBytes int64
}

// StandbyReplication reads the replication state of the standby whose
// application_name is standby.
func (s *Store) StandbyReplication(ctx context.Context, standby string) (StandbyReplication, error) {
	var names string
	var syncState *string
	var lag *int64
	err := s.pool.QueryRow(ctx, `SELECT current_setting('synchronous_standby_names'),
		(SELECT sync_state FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming' LIMIT 1),
		(SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint FROM pg_stat_replication WHERE application_name = $1 LIMIT 1)`,
		standby).Scan(&names, &syncState, &lag)
	if err != nil {
		return StandbyReplication{}, err
	}
	r := StandbyReplication{Paired: names != ""}
	if syncState != nil {
		r.Attached, r.SyncState = true, *syncState
	}
	if lag != nil {
		r.LagBytes = *lag
	}
	return r, nil
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
