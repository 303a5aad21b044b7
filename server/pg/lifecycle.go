package pg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// maxSocketPath is the longest Unix socket path PostgreSQL accepts
// (sizeof(sockaddr_un.sun_path) - 1 on Linux).
const maxSocketPath = 107

// logTailLines is how much of the server log a failed Start reports.
const logTailLines = 20

// Init creates the cluster in DataDir: it runs initdb with User as the
// superuser (whose password is password), SCRAM authentication, UTF8
// encoding and data checksums; writes Trustee's configuration; then starts
// the server, creates DefaultDatabase owned by User, and stops it again.
//
// Init refuses a DataDir that already holds a cluster (ErrAlreadyInitialized)
// or any other file: callers that want idempotence check Initialized first.
// Init creates an active's cluster only: a passive's is a copy of the
// active's, made by InitStandby.
func (i *Instance) Init(ctx context.Context, password string) error {
	if i.role() == RolePassive {
		return errors.New("a passive's PostgreSQL cluster is a copy of the active's: seed it with InitStandby, not Init")
	}
	if err := i.checkReplication(); err != nil {
		return err
	}
	if password == "" {
		return errors.New("the PostgreSQL superuser password must not be empty")
	}
	if strings.ContainsAny(password, "\x00\r\n") {
		return errors.New("the PostgreSQL superuser password must not contain line breaks or NUL bytes")
	}
	dir, err := i.dataDir()
	if err != nil {
		return err
	}
	if i.Initialized() {
		return fmt.Errorf("%w: %s (use it as is, or remove it to start over)", ErrAlreadyInitialized, dir)
	}
	if err := i.checkSocketPath(dir); err != nil {
		return err
	}
	r, err := i.runner()
	if err != nil {
		return err
	}
	if err := prepareDataDir(dir, r.acct); err != nil {
		return err
	}

	pwfile, err := writeSecretFile("initdb", password+"\n", r.acct)
	if err != nil {
		return err
	}
	defer os.Remove(pwfile)
	args := []string{
		"--pgdata=" + dir,
		"--username=" + i.user(),
		"--pwfile=" + pwfile,
		"--auth=scram-sha-256",
		"--encoding=UTF8",
		"--locale=C",
		"--data-checksums",
		"--no-instructions",
	}
	if i.NoSync {
		args = append(args, "--no-sync")
	}
	out, err := r.run(ctx, "initdb", args...)
	os.Remove(pwfile)
	if err != nil {
		return fmt.Errorf("initdb in %s failed: %w\n%s", dir, err, out)
	}

	incomplete := func(err error) error {
		return fmt.Errorf("the new cluster in %s is incomplete (remove that directory and initialize again): %w", dir, err)
	}
	if err := i.Start(ctx); err != nil { // writes the configuration

		return incomplete(err)
	}
	// No passive can be attached yet (it is copied from this cluster
	// later), so this commit must not wait for one.
	err = i.createDatabase(ctx, password, DefaultDatabase, true)
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if stopErr := i.Stop(stopCtx); stopErr != nil {
		err = errors.Join(err, stopErr)
	}
	if err != nil {
		return incomplete(err)
	}
	return nil
}

// prepareDataDir creates dir (mode 0700) and its parents, refuses a
// non-empty dir, hands dir to the run-as account and checks that account
// can reach it.
func prepareDataDir(dir string, acct *account) error {
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("create parent of PostgreSQL data directory: %w", err)
	}
	if err := acct.checkReach(parent); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create PostgreSQL data directory: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("PostgreSQL data directory: %w", err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("PostgreSQL data directory %s is not empty but holds no cluster: "+
			"empty it or choose another directory", dir)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("PostgreSQL data directory: %w", err)
	}
	return acct.chown(dir)
}

// writeSecretFile puts content in a new 0600 temporary file readable by
// the run-as account, for the PostgreSQL program prog. The caller removes
// it.
func writeSecretFile(prog, content string, acct *account) (string, error) {
	f, err := os.CreateTemp("", "trustee-"+prog+"-*")
	if err != nil {
		return "", fmt.Errorf("create temporary password file for %s: %w", prog, err)
	}
	path := f.Name()
	err = acct.chown(path)
	if err == nil {
		err = acct.checkReach(filepath.Dir(path))
	}
	if err == nil {
		_, err = f.WriteString(content)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return "", fmt.Errorf("temporary password file for %s (set TMPDIR to change its directory): %w", prog, err)
	}
	return path, nil
}

// checkSocketPath makes sure PostgreSQL can create its Unix socket in dir.
func (i *Instance) checkSocketPath(dir string) error {
	sock := filepath.Join(dir, ".s.PGSQL."+strconv.Itoa(i.port()))
	if len(sock) > maxSocketPath {
		return fmt.Errorf("PostgreSQL data directory path %s is too long: its Unix socket path would exceed %d bytes; "+
			"choose a shorter path", dir, maxSocketPath)
	}
	return nil
}

// Start starts the server with pg_ctl and waits until it accepts
// connections. It rewrites Trustee's configuration first, so Host, Port,
// NoSync and the replication fields take effect. Start is a no-op when the
// server is already running. If the server does not come up, the error
// includes the end of its log.
//
// Start refuses to run a passive's data directory as the active and the
// other way round: the pair must never hold two primaries.
func (i *Instance) Start(ctx context.Context) error {
	dir, err := i.dataDir()
	if err != nil {
		return err
	}
	if !i.Initialized() {
		return fmt.Errorf("%w: %s (initialize it first)", ErrNotInitialized, dir)
	}
	st, err := i.Status(ctx)
	if err != nil {
		return err
	}
	if st.Running {
		return nil
	}
	if err := i.checkSocketPath(dir); err != nil {
		return err
	}
	r, err := i.runner()
	if err != nil {
		return err
	}
	if err := r.acct.checkReach(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := i.checkRoleMatchesData(dir); err != nil {
		return err
	}
	if err := i.writeConfig(dir, r.acct); err != nil {
		return err
	}
	logPath := filepath.Join(dir, LogFile)
	var logStart int64
	if fi, err := os.Stat(logPath); err == nil {
		logStart = fi.Size()
	}
	out, err := r.run(ctx, "pg_ctl", "start", "--wait", "--timeout="+waitSeconds(ctx),
		"--pgdata="+dir, "--log="+logPath)
	if err != nil {
		return fmt.Errorf("start PostgreSQL in %s on port %d: %w\n%s\nlast lines of %s:\n%s",
			dir, i.port(), err, out, logPath, logTail(logPath, logStart, logTailLines))
	}
	return nil
}

// Stop shuts the server down (fast mode: open transactions are rolled back)
// and waits for it to exit. Stop is a no-op when the server is not running.
func (i *Instance) Stop(ctx context.Context) error {
	st, err := i.Status(ctx)
	if err != nil || !st.Running {
		return err
	}
	r, err := i.runner()
	if err != nil {
		return err
	}
	out, err := r.run(ctx, "pg_ctl", "stop", "--mode=fast", "--wait", "--timeout="+waitSeconds(ctx),
		"--pgdata="+st.DataDir)
	if err != nil {
		if st, serr := i.Status(ctx); serr == nil && !st.Running {
			return nil // it stopped anyway
		}
		return fmt.Errorf("stop PostgreSQL in %s: %w\n%s", st.DataDir, err, out)
	}
	return nil
}

// Status reports whether the server is running, from its postmaster.pid.
func (i *Instance) Status(ctx context.Context) (Status, error) {
	dir, err := i.dataDir()
	if err != nil {
		return Status{}, err
	}
	st := Status{DataDir: dir, Port: i.port()}
	data, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("PostgreSQL status: %w", err)
	}
	// Lines: PID, data directory, start time, port, socket directory,
	// listen address, shared memory key, status.
	lines := strings.Split(string(data), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(lines[0]))
	if err != nil {
		return st, fmt.Errorf("PostgreSQL status: invalid PID in %s", filepath.Join(dir, "postmaster.pid"))
	}
	if pid < 0 {
		pid = -pid // a single-user backend
	}
	if !processAlive(pid) {
		return st, nil
	}
	st.Running, st.PID = true, pid
	if len(lines) > 3 {
		if port, err := strconv.Atoi(strings.TrimSpace(lines[3])); err == nil {
			st.Port = port
		}
	}
	return st, nil
}

// CreateDatabase creates database name owned by User, connecting as User
// with password. It is a no-op when the database exists. The server must be
// running.
func (i *Instance) CreateDatabase(ctx context.Context, password, name string) error {
	return i.createDatabase(ctx, password, name, false)
}

// createDatabase is CreateDatabase; with localCommit, the commit does not
// wait for a synchronous standby.
func (i *Instance) createDatabase(ctx context.Context, password, name string, localCommit bool) error {
	if name == "" {
		return errors.New("create database: empty name")
	}
	conn, err := pgx.Connect(ctx, i.ConnString("postgres", password))
	if err != nil {
		return fmt.Errorf("create database %q: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if localCommit {
		if _, err := conn.Exec(ctx, "SET synchronous_commit = local"); err != nil {
			return fmt.Errorf("create database %q: %w", name, err)
		}
	}
	var exists bool
	err = conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists)
	if err != nil || exists {
		return err
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+
		" OWNER "+pgx.Identifier{i.user()}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // duplicate_database: created meanwhile
		return nil
	}
	if err != nil {
		return fmt.Errorf("create database %q: %w", name, err)
	}
	return nil
}

// waitSeconds is the pg_ctl --timeout for ctx: its remaining time, or
// pg_ctl's default of 60 seconds.
func waitSeconds(ctx context.Context) string {
	dl, ok := ctx.Deadline()
	if !ok {
		return "60"
	}
	return strconv.Itoa(max(1, int(math.Ceil(time.Until(dl).Seconds()))))
}

// logTail returns the last n lines of the log written since offset from,
// or of the whole log's end when nothing was written since.
func logTail(path string, from int64, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	size := fi.Size()
	if from >= size {
		from = 0
	}
	const maxRead = 64 << 10
	from = max(from, size-maxRead)
	data, err := io.ReadAll(io.NewSectionReader(f, from, size-from))
	if err != nil {
		return "(log unreadable: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
