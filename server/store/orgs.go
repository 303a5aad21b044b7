package store

import (
	"context"
	"crypto/rand"
	"fmt"
	"math/big"
	"time"

	"github.com/jackc/pgx/v5"
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
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		o, err = scanOrg(tx.QueryRow(ctx, `SELECT `+orgColumns+` FROM organizations WHERE name = $1 FOR UPDATE`, name))
		if noRows(err) {
			created = true
			uuid, err := newUUID()
			if err != nil {
				return err
			}
			o, err = scanOrg(tx.QueryRow(ctx, `INSERT INTO organizations(uuid, name, contacts, auth_hash)
				VALUES ($1, $2, $3, $4) RETURNING `+orgColumns, uuid, name, contacts, authHash))
			return err
		}
		if err != nil {
			return err
		}
		o, err = scanOrg(tx.QueryRow(ctx, `UPDATE organizations
			SET contacts = contacts || ARRAY(SELECT c FROM unnest($2::text[]) c WHERE NOT c = ANY(contacts))
			WHERE name = $1 RETURNING `+orgColumns, name, contacts))
		return err
	})
	return o, created, err
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
	tag, err := s.pool.Exec(ctx, `UPDATE organizations SET expiration = $2 WHERE name = $1`, name, expires)
	if err == nil && tag.RowsAffected() == 0 {
		return fmt.Errorf("organization %q: %w", name, ErrNotFound)
	}
	return err
}

// SetAuthHash replaces an organization's auth code hash.
func (s *Store) SetAuthHash(ctx context.Context, name, hash string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE organizations SET auth_hash = $2 WHERE name = $1`, name, hash)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("organization %q: %w", name, ErrNotFound)
	}
	return nil
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
