package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"trustee.dev/trustee/server/audit"
)

// NeverExpires is the expiration of an organization that does not expire:
// the schema's default.
var NeverExpires = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)

// PutOrganization creates an organization with contacts and authHash, or
// sets an existing one's contacts to exactly contacts; its auth code stays.
// An existing organization that has expired by now is taken back into use
// (it never expires again); a later expiration stays. It returns the
// organization, whether it was created, and the contacts it had before.
func (s *Store) PutOrganization(ctx context.Context, name string, contacts []string, authHash string, now time.Time) (o Organization, created bool, before []string, err error) {
	put := func(tx pgx.Tx) ([]audit.Event, error) {
		var events []audit.Event
		o, events, err = lockOrCreateOrg(ctx, tx, name, contacts, authHash)
		if created, before = events != nil, nil; created || err != nil {
			return events, err
		}
		created, before = false, o.Contacts
		expired := !o.Expiration.After(now)
		o, err = scanOrg(tx.QueryRow(ctx, `UPDATE organizations
			SET contacts = $2, expiration = CASE WHEN expiration <= $3 THEN $4 ELSE expiration END
			WHERE name = $1 RETURNING `+orgColumns, name, contacts, now, NeverExpires))
		if err != nil {
			return nil, err
		}
		var extra map[string]any
		if expired {
			extra = map[string]any{"taken_back_into_use": true}
		}
		return []audit.Event{orgContacts(ctx, o, before, extra)}, nil
	}
	err = s.audited(ctx, put)
	if isUniqueViolation(err) {
		// Created at the same moment by another request: update that one.
		err = s.audited(ctx, put)
	}
	return o, created, before, err
}

// ExpireOrganization makes an organization expire at t, unless it already
// expires earlier.
func (s *Store) ExpireOrganization(ctx context.Context, name string, t time.Time) error {
	return s.audited(ctx, func(tx pgx.Tx) ([]audit.Event, error) {
		var expires time.Time
		err := tx.QueryRow(ctx, `UPDATE organizations SET expiration = LEAST(expiration, $2) WHERE name = $1 RETURNING expiration`, name, t).Scan(&expires)
		if noRows(err) {
			return nil, fmt.Errorf("organization %q: %w", name, ErrNotFound)
		}
		if err != nil {
			return nil, err
		}
		return []audit.Event{audit.Change(ctx, audit.ActionOrgRetire, OrgObject(name), audit.OutcomeOK,
			map[string]any{"expires": expires.UTC().Format(time.RFC3339)})}, nil
	})
}

// ClientCounts counts an organization's clients by state.
func (s *Store) ClientCounts(ctx context.Context, orgName string) (map[ClientState]int, error) {
	return readAgain(ctx, func() (map[ClientState]int, error) {
		rows, err := s.pool.Query(ctx, `SELECT c.state, count(*) FROM clients c JOIN organizations o ON o.uuid = c.org_uuid
			WHERE o.name = $1 GROUP BY c.state`, orgName)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		counts := map[ClientState]int{}
		for rows.Next() {
			var state string
			var n int
			if err := rows.Scan(&state, &n); err != nil {
				return nil, err
			}
			counts[ClientState(state)] = n
		}
		return counts, rows.Err()
	})
}
