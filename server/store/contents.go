package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Contents counts what a database holds.
type Contents struct {
	SchemaVersion int
	Organizations int64
	Clients       int64
	Deposits      int64
}

// ReadContents counts the rows of a database through conn, such as one
// just loaded from a backup, and checks that its schema is one this binary
// can serve: not newer than its own migrations. A database without the
// schema (no server has started on it yet) counts as empty.
func ReadContents(ctx context.Context, conn *pgx.Conn) (Contents, error) {
	var c Contents
	var migrated bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&migrated); err != nil || !migrated {
		return c, err // a database no server has started on yet: empty
	}
	err := conn.QueryRow(ctx, `SELECT (SELECT coalesce(max(version), 0) FROM schema_migrations),
		(SELECT count(*) FROM organizations), (SELECT count(*) FROM clients), (SELECT count(*) FROM deposits)`).
		Scan(&c.SchemaVersion, &c.Organizations, &c.Clients, &c.Deposits)
	if err != nil {
		return c, fmt.Errorf("not a Trustee database: %w", err)
	}
	ms, err := migrations()
	if err != nil {
		return c, err
	}
	if latest := ms[len(ms)-1].version; c.SchemaVersion > latest {
		return c, fmt.Errorf("the database has schema version %d, newer than this kts knows (%d): use the kts version that made it", c.SchemaVersion, latest)
	}
	return c, nil
}
