package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"trustee.dev/trustee/server/audit"
	"trustee.dev/trustee/server/keyring"
)

// DepositInfo describes a deposit without its contents.
type DepositInfo struct {
	Name    string
	Size    int
	Created time.Time
}

// clientState turns the state column of a query joined on clients into the
// store's errors.
func clientState(fingerprint string, state *string) error {
	switch {
	case state == nil:
		return fmt.Errorf("client %s: %w", fingerprint, ErrUnknownClient)
	case ClientState(*state) != StateActive:
		return fmt.Errorf("client %s is %s: %w", fingerprint, *state, ErrClientNotActive)
	}
	return nil
}

// PutDeposit stores a new sealed deposit for an active client and returns
// its creation time as stored. It never replaces an existing deposit of the
// same name (ErrExists). The deposit and its audit record commit together.
func (s *Store) PutDeposit(ctx context.Context, owner, name string, d keyring.Sealed, size int) (time.Time, error) {
	var created *time.Time
	err := s.audited(ctx, func(tx pgx.Tx) ([]audit.Event, error) {
		var state *string
		err := tx.QueryRow(ctx, `WITH c AS (SELECT state FROM clients WHERE fingerprint = $1),
			ins AS (
				INSERT INTO deposits(owner, name, kek_id, wrapped_key, ciphertext, size)
				SELECT $1, $2, $3, $4, $5, $6 FROM c WHERE c.state = 'active'
				ON CONFLICT (owner, name) DO NOTHING RETURNING created_at)
			SELECT (SELECT state FROM c), (SELECT created_at FROM ins)`,
			owner, name, d.KeyID, d.WrappedKey, d.Ciphertext, size).Scan(&state, &created)
		if err != nil {
			return nil, err
		}
		if err := clientState(owner, state); err != nil {
			return nil, err
		}
		if created == nil {
			return nil, fmt.Errorf("deposit %q: %w", name, ErrExists)
		}
		return []audit.Event{depositCreated(ctx, owner, name, size)}, nil
	})
	if err != nil {
		return time.Time{}, err
	}
	return *created, nil
}

// DepositObject is how audit records name a deposit: its owner's
// fingerprint and its name.
func DepositObject(owner, name string) string { return "deposit:" + owner + "/" + name }

func depositCreated(ctx context.Context, owner, name string, size int) audit.Event {
	return audit.Change(ctx, audit.ActionDepositCreate, DepositObject(owner, name), audit.OutcomeOK, map[string]any{"size": size})
}

// GetDeposit returns an active client's sealed deposit.
func (s *Store) GetDeposit(ctx context.Context, owner, name string) (keyring.Sealed, error) {
	return readAgain(ctx, func() (keyring.Sealed, error) { return s.getDeposit(ctx, owner, name) })
}

func (s *Store) getDeposit(ctx context.Context, owner, name string) (keyring.Sealed, error) {
	var state, kekID *string
	var d keyring.Sealed
	err := s.pool.QueryRow(ctx, `SELECT c.state, d.kek_id, d.wrapped_key, d.ciphertext
		FROM clients c LEFT JOIN deposits d ON d.owner = c.fingerprint AND d.name = $2
		WHERE c.fingerprint = $1`, owner, name).Scan(&state, &kekID, &d.WrappedKey, &d.Ciphertext)
	if noRows(err) {
		return d, clientState(owner, nil)
	}
	if err != nil {
		return d, err
	}
	if err := clientState(owner, state); err != nil {
		return d, err
	}
	if kekID == nil {
		return d, fmt.Errorf("deposit %q: %w", name, ErrNotFound)
	}
	d.KeyID = *kekID
	return d, nil
}

// DeleteDeposit removes an active client's deposit; the deletion and its
// audit record commit together.
func (s *Store) DeleteDeposit(ctx context.Context, owner, name string) error {
	return s.audited(ctx, func(tx pgx.Tx) ([]audit.Event, error) {
		var state *string
		var deleted bool
		var notified any
		err := tx.QueryRow(ctx, `WITH c AS (SELECT state FROM clients WHERE fingerprint = $1),
			del AS (DELETE FROM deposits d USING c WHERE d.owner = $1 AND d.name = $2 AND c.state = 'active' RETURNING 1)
			SELECT (SELECT state FROM c), EXISTS (SELECT 1 FROM del),
				pg_notify('`+invalidateChannel+`', 'd:' || $1::text || '/' || $2::text)`, owner, name).Scan(&state, &deleted, &notified)
		if err != nil {
			return nil, err
		}
		if err := clientState(owner, state); err != nil {
			return nil, err
		}
		if !deleted {
			return nil, fmt.Errorf("deposit %q: %w", name, ErrNotFound)
		}
		return []audit.Event{audit.Change(ctx, audit.ActionDepositDelete, DepositObject(owner, name), audit.OutcomeOK, nil)}, nil
	})
}

// ListDeposits returns an active client's own deposits by name.
func (s *Store) ListDeposits(ctx context.Context, owner string) ([]DepositInfo, error) {
	return readAgain(ctx, func() ([]DepositInfo, error) { return s.listDeposits(ctx, owner) })
}

func (s *Store) listDeposits(ctx context.Context, owner string) ([]DepositInfo, error) {
	rows, err := s.pool.Query(ctx, `SELECT c.state, d.name, d.size, d.created_at
		FROM clients c LEFT JOIN deposits d ON d.owner = c.fingerprint
		WHERE c.fingerprint = $1 ORDER BY d.name`, owner)
	if err != nil {
		return nil, err
	}
	var state *string
	out := []DepositInfo{}
	for rows.Next() {
		var name *string
		var size *int
		var created *time.Time
		if err := rows.Scan(&state, &name, &size, &created); err != nil {
			rows.Close()
			return nil, err
		}
		if name != nil {
			out = append(out, DepositInfo{Name: *name, Size: *size, Created: *created})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if err := clientState(owner, state); err != nil {
		return nil, err
	}
	return out, nil
}
