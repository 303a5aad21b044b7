package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"trustee.dev/trustee/server/audit"
)

// ClientState is a client's standing with its organization.
type ClientState string

// Client states. A pending client waits for an administrator; only active
// clients may use deposits.
const (
	StatePending  ClientState = "pending"
	StateActive   ClientState = "active"
	StateDisabled ClientState = "disabled"
)

// Client is a registered client, named by its OpenPGP fingerprint.
type Client struct {
	Fingerprint string
	OrgName     string
	KeyID       string // e.g. 4096R/<fingerprint>
	PublicKey   []byte // armored
	State       ClientState
	Registered  time.Time
	SourceAddr  string
	OrgExpires  time.Time // the organization's expiration
}

// RegisterClient stores a new client of the named organization, with the
// audit record of its registration (outcome: its state).
func (s *Store) RegisterClient(ctx context.Context, c Client) error {
	return s.audited(ctx, func(tx pgx.Tx) ([]audit.Event, error) {
		// A fingerprint already registered is told apart without provoking
		// a unique violation (which PostgreSQL would log as an error).
		var orgFound, inserted bool
		err := tx.QueryRow(ctx, `WITH o AS (SELECT uuid FROM organizations WHERE name = $2),
			ins AS (INSERT INTO clients(fingerprint, org_uuid, key_id, public_key, state, source_addr)
				SELECT $1, uuid, $3, $4, $5, $6 FROM o
				ON CONFLICT (fingerprint) DO NOTHING RETURNING 1)
			SELECT EXISTS (SELECT 1 FROM o), EXISTS (SELECT 1 FROM ins)`,
			c.Fingerprint, c.OrgName, c.KeyID, c.PublicKey, string(c.State), c.SourceAddr).Scan(&orgFound, &inserted)
		switch {
		case isUniqueViolation(err) || err == nil && !inserted && orgFound:
			return nil, fmt.Errorf("client %s: %w", c.Fingerprint, ErrExists)
		case err != nil:
			return nil, err
		case !orgFound:
			return nil, fmt.Errorf("organization %q: %w", c.OrgName, ErrNotFound)
		}
		return []audit.Event{audit.Change(ctx, audit.ActionClientRegister, ClientObject(c.Fingerprint), string(c.State),
			map[string]any{"org": c.OrgName, "key_id": c.KeyID})}, nil
	})
}

// ClientObject is how audit records name a client.
func ClientObject(fingerprint string) string { return "client:" + fingerprint }

// Client returns a client by fingerprint.
func (s *Store) Client(ctx context.Context, fingerprint string) (Client, error) {
	return readAgain(ctx, func() (Client, error) { return s.client(ctx, fingerprint) })
}

func (s *Store) client(ctx context.Context, fingerprint string) (Client, error) {
	var c Client
	var state string
	err := s.pool.QueryRow(ctx, `SELECT c.fingerprint, o.name, c.key_id, c.public_key, c.state, c.registered_at, c.source_addr, o.expiration
		FROM clients c JOIN organizations o ON o.uuid = c.org_uuid WHERE c.fingerprint = $1`, fingerprint).
		Scan(&c.Fingerprint, &c.OrgName, &c.KeyID, &c.PublicKey, &state, &c.Registered, &c.SourceAddr, &c.OrgExpires)
	if noRows(err) {
		return c, fmt.Errorf("client %s: %w", fingerprint, ErrNotFound)
	}
	c.State = ClientState(state)
	return c, err
}

// SetClientState moves a client to a new state and returns the previous
// one; the change and its audit record commit together.
func (s *Store) SetClientState(ctx context.Context, fingerprint string, state ClientState) (ClientState, error) {
	var prev string
	err := s.audited(ctx, func(tx pgx.Tx) ([]audit.Event, error) {
		var org string
		err := tx.QueryRow(ctx, `WITH upd AS (
				UPDATE clients c SET state = $2 FROM clients old
				WHERE c.fingerprint = $1 AND old.fingerprint = c.fingerprint RETURNING old.state, c.org_uuid)
			SELECT upd.state, o.name FROM upd JOIN organizations o ON o.uuid = upd.org_uuid,
				pg_notify('`+invalidateChannel+`', 'c:' || $1::text)`, fingerprint, string(state)).Scan(&prev, &org)
		if noRows(err) {
			return nil, fmt.Errorf("client %s: %w", fingerprint, ErrNotFound)
		}
		if err != nil {
			return nil, err
		}
		return []audit.Event{audit.Change(ctx, audit.ActionClientState, ClientObject(fingerprint), audit.OutcomeOK,
			map[string]any{"org": org, "from": prev, "to": string(state)})}, nil
	})
	return ClientState(prev), err
}

// Clients lists clients by organization and fingerprint; orgName "" lists all.
func (s *Store) Clients(ctx context.Context, orgName string) ([]Client, error) {
	return readAgain(ctx, func() ([]Client, error) { return s.clients(ctx, orgName) })
}

func (s *Store) clients(ctx context.Context, orgName string) ([]Client, error) {
	rows, err := s.pool.Query(ctx, `SELECT c.fingerprint, o.name, c.key_id, c.state, c.registered_at, c.source_addr
		FROM clients c JOIN organizations o ON o.uuid = c.org_uuid
		WHERE $1 = '' OR o.name = $1 ORDER BY o.name, c.fingerprint`, orgName)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Client
	for rows.Next() {
		var c Client
		var state string
		if err := rows.Scan(&c.Fingerprint, &c.OrgName, &c.KeyID, &state, &c.Registered, &c.SourceAddr); err != nil {
			return nil, err
		}
		c.State = ClientState(state)
		out = append(out, c)
	}
	return out, rows.Err()
}
