package pg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
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
	if err := i.checkClients(); err != nil {
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

// checkSocketPath makes sure PostgreSQL can create its Unix socket for
// the data directory dataDir.
func (i *Instance) checkSocketPath(dataDir string) error {
	dir, err := i.socketDir(dataDir)
	if err != nil {
		return err
	}
	sock := filepath.Join(dir, ".s.PGSQL."+strconv.Itoa(i.port()))
	if len(sock) <= maxSocketPath {
		return nil
	}
	if i.SocketDir != "" {
		return fmt.Errorf("PostgreSQL socket directory path %s is too long: its Unix socket path would exceed %d bytes; "+
			"choose a shorter path", dir, maxSocketPath)
	}
	return fmt.Errorf("PostgreSQL data directory path %s is too long: its Unix socket path would exceed %d bytes; "+
		"choose a shorter path", dir, maxSocketPath)
}

// prepareSocketDir creates SocketDir (mode 0700, for the run-as account)
// when it is missing, and checks the account can reach it.
func (i *Instance) prepareSocketDir(acct *account) error {
	if i.SocketDir == "" {
		return nil
	}
	dir, err := i.socketDir("")
	if err != nil {
		return err
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return fmt.Errorf("create parent of PostgreSQL socket directory: %w", err)
		}
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create PostgreSQL socket directory: %w", err)
		}
		if err := acct.chown(dir); err != nil {
			return err
		}
	} else if err != nil {
		return fmt.Errorf("PostgreSQL socket directory: %w", err)
	}
	return acct.checkReach(dir)
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
	r, err := i.prepareRun(dir)
	if err != nil {
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

// prepareRun checks that the cluster in dir can run as this Instance and
// writes Trustee's configuration, before the server starts.
func (i *Instance) prepareRun(dir string) (*runner, error) {
	if err := i.checkSocketPath(dir); err != nil {
		return nil, err
	}
	r, err := i.runner()
	if err != nil {
		return nil, err
	}
	if err := r.acct.checkReach(filepath.Dir(dir)); err != nil {
		return nil, err
	}
	if err := i.checkRoleMatchesData(dir); err != nil {
		return nil, err
	}
	if err := restoreModes(dir); err != nil {
		return nil, err
	}
	if err := i.checkTLSFiles(r.acct); err != nil {
		return nil, err
	}
	if err := i.writeConfig(dir, r.acct); err != nil {
		return nil, err
	}
	if err := i.prepareSocketDir(r.acct); err != nil {
		return nil, err
	}
	return r, nil
}

// restoreModes takes back the group and other permissions that a volume's
// group ownership (Kubernetes' fsGroup) adds to the data directory and the
// passive's password file: PostgreSQL refuses a group-writable data
// directory, and libpq ignores a password file others may read.
func restoreModes(dir string) error {
	for _, f := range []struct {
		path string
		mode fs.FileMode
	}{{dir, 0o700}, {filepath.Join(dir, passFile), 0o600}} {
		fi, err := os.Stat(f.path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&^f.mode != 0 || fi.Mode()&(fs.ModeSetgid|fs.ModeSetuid|fs.ModeSticky) != 0 {
			if err := os.Chmod(f.path, f.mode); err != nil {
				return fmt.Errorf("restore mode %v of %s: %w", f.mode, f.path, err)
			}
		}
	}
	return nil
}

// RunOptions are the options of Run.
type RunOptions struct {
	// Log receives the server's log (its standard output and error);
	// nil discards it.
	Log io.Writer
	// Reload makes the server re-read its configuration files (SIGHUP)
	// each time it receives.
	Reload <-chan struct{}
}

// Run runs the server in the foreground, as a child process, until it
// exits or ctx is done; then it is shut down in fast mode (open
// transactions are rolled back) and Run waits for it to exit. Like Start,
// it rewrites Trustee's configuration first. Run refuses a cluster whose
// server already runs. When the server exits with a failure status, the
// error wraps its *exec.ExitError; a clean exit returns nil.
//
// With TLS, Run looks at the certificate and key files every second and
// makes the server reload (SIGHUP) when they change, so that a renewed
// certificate is served to new connections without a restart. A
// replacement PostgreSQL cannot load (a key that does not match the
// certificate) leaves the previous certificate in service, and is logged.
func (i *Instance) Run(ctx context.Context, o RunOptions) error {
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
		return fmt.Errorf("PostgreSQL already runs in %s (pid %d); stop it first", dir, st.PID)
	}
	r, err := i.prepareRun(dir)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(r.bin, "postgres"), "-D", dir)
	cmd.Env = append([]string(nil), childEnv...)
	cmd.Dir = "/"
	cmd.SysProcAttr = r.acct.sysProcAttr()
	cmd.Stdout, cmd.Stderr = o.Log, o.Log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start PostgreSQL in %s: %w", dir, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var certs chan struct{} // nil without TLS: never ready
	if i.serverTLS() {
		certs = make(chan struct{})
		watchCtx, stopWatch := context.WithCancel(ctx)
		defer stopWatch()
		go i.watchCerts(watchCtx, o.Log, certs)
	}
	done := ctx.Done()
	for {
		select {
		case err := <-exited:
			if err != nil {
				return fmt.Errorf("PostgreSQL in %s: %w", dir, err)
			}
			return nil
		case <-done:
			done = nil
			_ = cmd.Process.Signal(os.Interrupt) // fast shutdown
		case <-o.Reload:
			_ = cmd.Process.Signal(syscall.SIGHUP)
		case <-certs:
			_ = cmd.Process.Signal(syscall.SIGHUP)
		}
	}
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
