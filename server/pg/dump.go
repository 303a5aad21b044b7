package pg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Dump writes a plain-SQL dump of database to w: pg_dump reads it in one
// snapshot, so it is consistent however long it runs and whatever is
// written meanwhile. It works on the passive's read-only standby too. The
// dump names no owner and grants no privileges, so it loads into an empty
// database as any role that may create tables there (`psql -f`, or Load).
func (i *Instance) Dump(ctx context.Context, password, database string, w io.Writer) error {
	cmd, err := i.client(ctx, password, "pg_dump", "--format=plain", "--no-owner", "--no-privileges",
		"--encoding=UTF8", "--dbname="+database)
	if err != nil {
		return err
	}
	cmd.Stdout = w
	if err := runClient(cmd); err != nil {
		return fmt.Errorf("dump database %q from %s:%d: %w", database, i.connectHost(), i.port(), err)
	}
	return nil
}

// Load runs the SQL read from sql (such as a Dump) in database with psql,
// in one transaction that stops at the first error: the database gets all
// of it or none of it.
func (i *Instance) Load(ctx context.Context, password, database string, sql io.Reader) error {
	cmd, err := i.client(ctx, password, "psql", "--no-psqlrc", "--quiet", "--single-transaction",
		"--set=ON_ERROR_STOP=1", "--output=/dev/null", "--file=-", "--dbname="+database)
	if err != nil {
		return err
	}
	cmd.Stdin = sql
	if err := runClient(cmd); err != nil {
		return fmt.Errorf("load SQL into database %q on %s:%d: %w", database, i.connectHost(), i.port(), err)
	}
	return nil
}

// client prepares a PostgreSQL client program that connects as User with
// password over TCP to Host: without TLS over loopback, and beyond it with
// TLS set, verifying the server's certificate against TLS.CAFile and its
// host name (verify-full). It runs as the caller: it only needs the
// network. The password travels in the environment, which only the
// caller's account can read, never on the command line.
func (i *Instance) client(ctx context.Context, password, name string, args ...string) (*exec.Cmd, error) {
	bin, err := i.ResolveBinDir()
	if err != nil {
		return nil, err
	}
	ssl := []string{"PGSSLMODE=disable"}
	if ca, ok := i.clientCA(); ok {
		if ca == "" {
			return nil, fmt.Errorf("%s reaches PostgreSQL at %s over TLS, but no CA certificate file verifies its certificate", name, i.connectHost())
		}
		ssl = []string{"PGSSLMODE=verify-full", "PGSSLROOTCERT=" + tlsPath(ca)}
	}
	cmd := exec.CommandContext(ctx, filepath.Join(bin, name), append(args,
		"--host="+i.connectHost(), "--port="+strconv.Itoa(i.port()), "--username="+i.user(), "--no-password")...)
	cmd.Env = append(append(append([]string(nil), childEnv...), "PGPASSWORD="+password,
		"PGAPPNAME=kts-"+name, "PGCONNECT_TIMEOUT=10"), ssl...)
	cmd.Dir = "/"
	cmd.WaitDelay = 5 * time.Second
	return cmd, nil
}

// runClient runs cmd and makes its error carry the program's last words.
func runClient(cmd *exec.Cmd) error {
	var stderr bytes.Buffer
	cmd.Stderr = &limitedWriter{w: &stderr, n: 4096}
	if err := cmd.Run(); err != nil {
		if msg := withoutContext(stderr.String()); msg != "" {
			return fmt.Errorf("%s: %w: %s", filepath.Base(cmd.Path), err, msg)
		}
		return fmt.Errorf("%s: %w", filepath.Base(cmd.Path), err)
	}
	return nil
}

// withoutContext drops the CONTEXT lines of PostgreSQL messages: for a
// failed COPY they quote the row, and rows carry wrapped keys.
func withoutContext(msg string) string {
	var keep []string
	for _, line := range strings.Split(strings.TrimSpace(msg), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "CONTEXT:") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}

// limitedWriter keeps the first n bytes written to it and drops the rest.
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}

// Replace loads the SQL read from sql into a new database and, when check
// accepts what was loaded, puts that database in place of database, in one
// transaction. Until then nothing changes: a load that fails, or a check
// that returns an error, leaves database as it was. The old database is
// dropped afterwards. Replace refuses while anyone else is connected to
// database (a running kts server must be stopped first). It needs a
// writable cluster: not the passive's standby.
func (i *Instance) Replace(ctx context.Context, password, database string, sql io.Reader, check func(context.Context, *pgx.Conn) error) error {
	conn, err := pgx.Connect(ctx, i.ConnString("postgres", password))
	if err != nil {
		return fmt.Errorf("replace database %q: %w", database, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := refuseIfInUse(ctx, conn, database); err != nil {
		return err
	}
	staging, old := database+"_restoring", database+"_replaced"
	ident := func(s string) string { return pgx.Identifier{s}.Sanitize() }
	for _, stmt := range []string{"DROP DATABASE IF EXISTS " + ident(staging), "DROP DATABASE IF EXISTS " + ident(old),
		"CREATE DATABASE " + ident(staging) + " OWNER " + ident(i.user())} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("replace database %q: %s: %w", database, stmt, err)
		}
	}
	dropStaging := func(err error) error {
		_, dropErr := conn.Exec(context.WithoutCancel(ctx), "DROP DATABASE IF EXISTS "+ident(staging)+" WITH (FORCE)")
		return errors.Join(err, dropErr)
	}
	if err := i.Load(ctx, password, staging, sql); err != nil {
		return dropStaging(err)
	}
	if err := checkDatabase(ctx, i.ConnString(staging, password), check); err != nil {
		return dropStaging(err)
	}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, database).Scan(&exists); err != nil {
			return err
		}
		if exists {
			if _, err := tx.Exec(ctx, "ALTER DATABASE "+ident(database)+" RENAME TO "+ident(old)); err != nil {
				return inUse(err, database)
			}
		}
		_, err := tx.Exec(ctx, "ALTER DATABASE "+ident(staging)+" RENAME TO "+ident(database))
		return err
	})
	if err != nil {
		return dropStaging(fmt.Errorf("replace database %q: %w", database, err))
	}
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(old)+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("database %q was replaced, but dropping the old one (%s) failed: %w; drop it by hand", database, old, err)
	}
	return nil
}

// refuseIfInUse fails when other clients are connected to database.
// PostgreSQL's own workers (autovacuum) do not count: the rename ends them.
// Sessions of a client that just went away end a moment later, so it looks
// again for a few seconds before it refuses.
func refuseIfInUse(ctx context.Context, conn *pgx.Conn, database string) error {
	var n int
	var apps string
	for deadline := time.Now().Add(3 * time.Second); ; {
		err := conn.QueryRow(ctx, `SELECT count(*), coalesce(string_agg(DISTINCT nullif(application_name, ''), ', '), '')
			FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'`, database).Scan(&n, &apps)
		if err != nil {
			return err
		}
		if n == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n > 0 {
		if apps != "" {
			apps = " (" + apps + ")"
		}
		return fmt.Errorf("%w: %d sessions%s are connected to database %q; stop the kts server (PostgreSQL keeps running) and try again",
			ErrInUse, n, apps, database)
	}
	return nil
}

// ErrInUse means a database could not be replaced because it is in use.
var ErrInUse = errors.New("database in use")

// inUse turns PostgreSQL's "being accessed by other users" into ErrInUse.
func inUse(err error, database string) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "55006" { // object_in_use
		return fmt.Errorf("%w: someone connected to database %q meanwhile; stop the kts server and try again", ErrInUse, database)
	}
	return err
}

// checkDatabase runs check on a connection to the database at dsn.
func checkDatabase(ctx context.Context, dsn string, check func(context.Context, *pgx.Conn) error) error {
	if check == nil {
		return nil
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return check(ctx, conn)
}
