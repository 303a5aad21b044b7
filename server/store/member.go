package store

import "context"

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
