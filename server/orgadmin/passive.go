package orgadmin

import (
	"errors"
	"fmt"
	"net"
	"net/url"

	"github.com/jackc/pgx/v5/pgconn"
)

// PassiveError is a change refused because it was made on the passive of a
// pair, whose database is a read-only standby.
type PassiveError struct {
	// Active names the active server, as the passive's configuration does.
	Active string
	err    error
}

func (e *PassiveError) Error() string {
	if e.Active == "" {
		return "this server is the passive of its pair, whose database is a read-only copy of the active's: run it on the active"
	}
	return fmt.Sprintf("this server is the passive of its pair, whose database is a read-only copy of the active's: run it on the active (%s)", e.Active)
}

func (e *PassiveError) Unwrap() error { return e.err }

// readOnlySQLTransaction is PostgreSQL's SQLSTATE for a write on a
// standby.
const readOnlySQLTransaction = "25006"

// OnPassive turns a write refused by the passive's read-only database into
// a PassiveError that names the active by the passive's ACTIVE_URL (or
// ACTIVE_DB): what to do, said once, instead of PostgreSQL's words. Other
// errors are returned as they are.
func OnPassive(err error, activeURL, activeDB string) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != readOnlySQLTransaction {
		return err
	}
	return &PassiveError{Active: ActiveHost(activeURL, activeDB), err: err}
}

// Passive is the error of a change refused on the passive before it is
// tried.
func Passive(activeURL, activeDB string) error {
	return &PassiveError{Active: ActiveHost(activeURL, activeDB)}
}

// ActiveHost names the active server of a passive's configuration: the
// host of ACTIVE_URL, or else that of ACTIVE_DB; "" when neither says.
func ActiveHost(activeURL, activeDB string) string {
	if u, err := url.Parse(activeURL); err == nil && u.Hostname() != "" {
		return u.Hostname()
	}
	if host, _, err := net.SplitHostPort(activeDB); err == nil && host != "" {
		return host
	}
	return ""
}
