package store

import (
	"context"
	"crypto/rand"
	"fmt"
	"math/big"
	"time"

	"github.com/jackc/pgx/v5"

	"trustee.dev/trustee/server/audit"
)

// Organization is a tenant: its clients register with its name and auth code.
type Organization struct {
	UUID       string
	Name       string
	Contacts   []string
	AuthHash   string // "" when no code is required
	Creation   time.Time
	Expiration time.Time
	State      int
}

// AddOrganization creates an organization, or adds contacts to an existing
// one (the reference tool's `add` does both). created reports which.
func (s *Store) AddOrganization(ctx context.Context, name string, contacts []string, authHash string) (o Organization, created bool, err error) {
	err = s.audited(ctx, func(tx pgx.Tx) ([]audit.Event, error) {
		var made []audit.Event
		o, made, err = lockOrCreateOrg(ctx, tx, name, contacts, authHash)
		if created = made != nil; created || err != nil {
			return made, err
		}
		before := o.Contacts
		o, err = scanOrg(tx.QueryRow(ctx, `UPDATE organizations
			SET contacts = contacts || ARRAY(SELECT c FROM unnest($2::text[]) c WHERE NOT c = ANY(contacts))
			WHERE name = $1 RETURNING `+orgColumns, name, contacts))
		if err != nil {
			return nil, err
		}
		return []audit.Event{orgContacts(ctx, o, before, nil)}, nil
	})
	return o, created, err
}

// lockOrCreateOrg locks the organization name, or creates it with
// contacts and authHash, returning the audit event of its creation (nil
// when it existed).
func lockOrCreateOrg(ctx context.Context, tx pgx.Tx, name string, contacts []string, authHash string) (Organization, []audit.Event, error) {
	o, err := scanOrg(tx.QueryRow(ctx, `SELECT `+orgColumns+` FROM organizations WHERE name = $1 FOR UPDATE`, name))
	if !noRows(err) {
		return o, nil, err
	}
	uuid, err := newUUID()
	if err != nil {
		return o, nil, err
	}
	o, err = scanOrg(tx.QueryRow(ctx, `INSERT INTO organizations(uuid, name, contacts, auth_hash)
		VALUES ($1, $2, $3, $4) RETURNING `+orgColumns, uuid, name, contacts, authHash))
	if err != nil {
		return o, nil, err
	}
	return o, []audit.Event{orgCreated(ctx, o)}, nil
}

// OrgObject is how audit records name an organization.
func OrgObject(name string) string { return "org:" + name }

func orgCreated(ctx context.Context, o Organization) audit.Event {
	return audit.Change(ctx, audit.ActionOrgCreate, OrgObject(o.Name), audit.OutcomeOK, map[string]any{
		"uuid": o.UUID, "contacts": nonNil(o.Contacts), "auth_code": authCodeState(o.AuthHash)})
}

func orgContacts(ctx context.Context, o Organization, before []string, extra map[string]any) audit.Event {
	d := map[string]any{"contacts": nonNil(o.Contacts), "before": nonNil(before)}
	for k, v := range extra {
		d[k] = v
	}
	return audit.Change(ctx, audit.ActionOrgContacts, OrgObject(o.Name), audit.OutcomeOK, d)
}

// authCodeState says whether a hash stands for an auth code, never the
// code: "none" or "set".
func authCodeState(hash string) string {
	if hash == "" {
		return "none"
	}
	return "set"
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Organizations lists every organization by name.
func (s *Store) Organizations(ctx context.Context) ([]Organization, error) {
	return readAgain(ctx, func() ([]Organization, error) {
		rows, err := s.pool.Query(ctx, `SELECT `+orgColumns+` FROM organizations ORDER BY name`)
		if err != nil {
			return nil, err
		}
		return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Organization, error) { return scanOrg(r) })
	})
}

// Organization returns one organization by name.
func (s *Store) Organization(ctx context.Context, name string) (Organization, error) {
	o, err := readAgain(ctx, func() (Organization, error) {
		return scanOrg(s.pool.QueryRow(ctx, `SELECT `+orgColumns+` FROM organizations WHERE name = $1`, name))
	})
	if noRows(err) {
		return o, fmt.Errorf("organization %q: %w", name, ErrNotFound)
	}
	return o, err
}

// SetExpiration sets when an organization expires: from then on its clients
// can neither register nor authenticate.
func (s *Store) SetExpiration(ctx context.Context, name string, expires time.Time) error {
	return s.audited(ctx, func(tx pgx.Tx) ([]audit.Event, error) {
		tag, err := tx.Exec(ctx, `UPDATE organizations SET expiration = $2 WHERE name = $1`, name, expires)
		if err != nil {
			return nil, err
		}
		if tag.RowsAffected() == 0 {
			return nil, fmt.Errorf("organization %q: %w", name, ErrNotFound)
		}
		return []audit.Event{audit.Change(ctx, audit.ActionOrgExpiration, OrgObject(name), audit.OutcomeOK,
			map[string]any{"expires": expires.UTC().Format(time.RFC3339)})}, nil
	})
}

// SetAuthHash replaces an organization's auth code hash. Its audit record
// says whether a code is required, never the code or its hash.
func (s *Store) SetAuthHash(ctx context.Context, name, hash string) error {
	return s.audited(ctx, func(tx pgx.Tx) ([]audit.Event, error) {
		tag, err := tx.Exec(ctx, `UPDATE organizations SET auth_hash = $2 WHERE name = $1`, name, hash)
		if err != nil {
			return nil, err
		}
		if tag.RowsAffected() == 0 {
			return nil, fmt.Errorf("organization %q: %w", name, ErrNotFound)
		}
		return []audit.Event{audit.Change(ctx, audit.ActionOrgAuthCode, OrgObject(name), audit.OutcomeOK,
			map[string]any{"auth_code": authCodeState(hash)})}, nil
	})
}

const orgColumns = `uuid, name, contacts, auth_hash, creation, expiration, state`

func scanOrg(row pgx.Row) (Organization, error) {
	var o Organization
	err := row.Scan(&o.UUID, &o.Name, &o.Contacts, &o.AuthHash, &o.Creation, &o.Expiration, &o.State)
	return o, err
}

// newUUID returns a 43-character base62 identifier, the shape the
// reference tool shows (256 bits of randomness).
func newUUID() (string, error) {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	b := make([]byte, 43)
	max := big.NewInt(int64(len(alphabet)))
	for i := range b {
		n, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", err
		}
		b[i] = alphabet[n.Int64()]
	}
	return string(b), nil
}
