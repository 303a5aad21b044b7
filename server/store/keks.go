package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"trustee.dev/trustee/server/audit"
	"trustee.dev/trustee/server/keyring"
)

// KEK states, as kept in kek_versions.
const (
	KEKCurrent  = "current"
	KEKRetiring = "retiring"
	KEKRetired  = "retired"
)

// KEK is a key-encryption key version and how many deposits it wraps.
type KEK struct {
	ID       string
	State    string
	Created  time.Time
	Deposits int64
}

// CurrentKEK returns the key new deposits are wrapped with, or "" when no
// version is recorded (the file keyring's current key wraps).
func (s *Store) CurrentKEK(ctx context.Context) (string, error) {
	var id string
	err := s.pool.QueryRow(ctx, `SELECT kek_id FROM kek_versions WHERE state = 'current'`).Scan(&id)
	if noRows(err) {
		return "", nil
	}
	return id, err
}

// KEKs lists the recorded versions, and every other key some deposit is
// still wrapped with (state ""), with their deposit counts.
func (s *Store) KEKs(ctx context.Context) ([]KEK, error) {
	rows, err := s.pool.Query(ctx, `SELECT coalesce(v.kek_id, d.kek_id), coalesce(v.state, ''), coalesce(v.created_at, 'epoch'), coalesce(d.n, 0)
		FROM kek_versions v FULL JOIN (SELECT kek_id, count(*) AS n FROM deposits GROUP BY kek_id) d ON d.kek_id = v.kek_id
		ORDER BY 3, 1`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (KEK, error) {
		var k KEK
		err := r.Scan(&k.ID, &k.State, &k.Created, &k.Deposits)
		return k, err
	})
}

// UsableKEKs lists the recorded versions that are not retired (without
// deposit counts).
func (s *Store) UsableKEKs(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT kek_id FROM kek_versions WHERE state <> 'retired' ORDER BY created_at`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// MakeCurrentKEK records id as the current key: the previous current one,
// if any, becomes retiring. It is a no-op when id is current already.
func (s *Store) MakeCurrentKEK(ctx context.Context, id string) error {
	return s.audited(ctx, func(tx pgx.Tx) ([]audit.Event, error) {
		if _, err := tx.Exec(ctx, `LOCK TABLE kek_versions IN EXCLUSIVE MODE`); err != nil {
			return nil, err
		}
		var state string
		err := tx.QueryRow(ctx, `SELECT state FROM kek_versions WHERE kek_id = $1`, id).Scan(&state)
		switch {
		case err == nil && state == KEKCurrent:
			return nil, nil
		case err == nil:
			return nil, fmt.Errorf("key %s was current before (%s); a key is never made current twice", id, state)
		case !noRows(err):
			return nil, err
		}
		var previous []string
		rows, err := tx.Query(ctx, `UPDATE kek_versions SET state = 'retiring' WHERE state = 'current' RETURNING kek_id`)
		if err == nil {
			previous, err = pgx.CollectRows(rows, pgx.RowTo[string])
		}
		if err != nil {
			return nil, err
		}
		if _, err = tx.Exec(ctx, `INSERT INTO kek_versions(kek_id, state) VALUES ($1, 'current')`, id); err != nil {
			return nil, err
		}
		return []audit.Event{audit.Change(ctx, audit.ActionHSMKey, KEKObject(id), KEKCurrent,
			map[string]any{"retiring": nonNil(previous)})}, nil
	})
}

// KEKObject is how audit records name a key-encryption key version.
func KEKObject(id string) string { return "kek:" + id }

// RetireKEK marks a retiring key retired once no deposit uses it.
func (s *Store) RetireKEK(ctx context.Context, id string) error {
	return s.audited(ctx, func(tx pgx.Tx) ([]audit.Event, error) {
		tag, err := tx.Exec(ctx, `UPDATE kek_versions SET state = 'retired', retired_at = now()
			WHERE kek_id = $1 AND state = 'retiring' AND NOT EXISTS (SELECT 1 FROM deposits WHERE kek_id = $1)`, id)
		if err != nil {
			return nil, err
		}
		if tag.RowsAffected() == 0 {
			return nil, fmt.Errorf("key %s is not retiring or still wraps deposits", id)
		}
		return []audit.Event{audit.Change(ctx, audit.ActionHSMKey, KEKObject(id), KEKRetired, nil)}, nil
	})
}

// Rewrapped is one deposit's data key wrapped anew.
type Rewrapped struct {
	Owner, Name string
	OldKEK      string
	Sealed      keyring.Sealed // KeyID and WrappedKey set
}

// ErrNothingToRewrap ends a re-wrap: every deposit uses the current key.
var ErrNothingToRewrap = errors.New("every deposit is wrapped with the current key")

// RewrapBatch takes up to limit deposits not wrapped with current, passes
// each (owner, name, KEK ID, wrapped key) to rewrap and stores the result,
// in one transaction. A row changed meanwhile (deleted, or re-wrapped by
// someone else) is left as it is. It returns how many rows it changed, or
// ErrNothingToRewrap.
func (s *Store) RewrapBatch(ctx context.Context, current string, limit int,
	rewrap func(owner, name, kekID string, wrapped []byte) ([]byte, error)) (int, error) {
	changed := 0
	err := s.audited(ctx, func(tx pgx.Tx) ([]audit.Event, error) {
		rows, err := tx.Query(ctx, `SELECT owner, name, kek_id, wrapped_key FROM deposits
			WHERE kek_id <> $1 LIMIT $2 FOR UPDATE SKIP LOCKED`, current, limit)
		if err != nil {
			return nil, err
		}
		type row struct {
			owner, name, kek string
			wrapped          []byte
		}
		batch, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
			var x row
			err := r.Scan(&x.owner, &x.name, &x.kek, &x.wrapped)
			return x, err
		})
		if err != nil {
			return nil, err
		}
		if len(batch) == 0 {
			return nil, ErrNothingToRewrap
		}
		owners, names, olds, wrapped := make([]string, len(batch)), make([]string, len(batch)), make([]string, len(batch)), make([][]byte, len(batch))
		from := map[string]int{}
		for i, r := range batch {
			w, err := rewrap(r.owner, r.name, r.kek, r.wrapped)
			if err != nil {
				return nil, fmt.Errorf("deposit %q of %s: %w", r.name, r.owner, err)
			}
			owners[i], names[i], olds[i], wrapped[i] = r.owner, r.name, r.kek, w
			from[r.kek]++
		}
		tag, err := tx.Exec(ctx, `UPDATE deposits d SET kek_id = $5, wrapped_key = u.w
			FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[]) AS u(o, n, k, w)
			WHERE d.owner = u.o AND d.name = u.n AND d.kek_id = u.k`, owners, names, olds, wrapped, current)
		if err != nil {
			return nil, err
		}
		changed = int(tag.RowsAffected())
		return []audit.Event{audit.Change(ctx, audit.ActionHSMRewrap, KEKObject(current), audit.OutcomeOK,
			map[string]any{"deposits": changed, "from": from})}, nil
	})
	return changed, err
}

// CountNotCurrent counts the deposits not wrapped with current.
func (s *Store) CountNotCurrent(ctx context.Context, current string) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM deposits WHERE kek_id <> $1`, current).Scan(&n)
	return n, err
}
