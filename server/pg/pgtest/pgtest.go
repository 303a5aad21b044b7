// Package pgtest gives tests a real PostgreSQL server.
//
// A test binary shares one throwaway server, started on first use on a free
// loopback port; [DSN] gives each test its own fresh database in it. Use
// [Main] from TestMain so the server is stopped and its files removed when
// the tests finish:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// Should the test binary die without running Main's cleanup (a test
// timeout, a crash), a small watchdog process shuts the servers down and
// removes their files once the binary has exited.
//
// The PostgreSQL 15 server programs must be installed; `make test` installs
// them. Tests fail, rather than skip, when they are missing.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"trustee.dev/trustee/server/pg"
	"trustee.dev/trustee/test/harness"
)

// setupTimeout bounds starting the shared server and per-test database work.
const setupTimeout = 2 * time.Minute

var (
	// mu guards root, watchdog and live.
	mu       sync.Mutex
	root     string                      // directory holding every instance of this binary
	watchdog func()                      // stops the watchdog process
	live     = map[*pg.Instance]string{} // instances to stop at exit, and their directories

	sharedMu       sync.Mutex
	shared         *pg.Instance
	sharedPassword string
	sharedErr      error
)

// Main runs the tests, then stops every server pgtest started and removes
// its files, and exits with the tests' status. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if err := shutdown(); err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// Instance returns the test binary's shared server, started and with its
// default database created. Tests must not stop it or change its settings;
// tests that need a server of their own use NewInstance.
func Instance(t testing.TB) *pg.Instance {
	t.Helper()
	inst, _, err := sharedInstance()
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

// DSN creates a fresh, empty database for this test on the shared server
// and returns its postgres:// URL. The database is dropped when the test
// ends, closing any connections left open.
func DSN(t testing.TB) string {
	t.Helper()
	inst, password, err := sharedInstance()
	if err != nil {
		t.Fatal(err)
	}
	name := dbName(t.Name())
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	if err := inst.CreateDatabase(ctx, password, name); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		defer cancel()
		if err := dropDatabase(ctx, inst, password, name); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return inst.ConnString(name, password)
}

// NewInstance returns a new, uninitialized Instance of the test's own: its
// DataDir is in a fresh directory the server account can reach, and its
// Port is free. Set any other fields, then call Init and Start. The server
// is stopped and its files removed when the test ends.
func NewInstance(t testing.TB) *pg.Instance {
	t.Helper()
	inst, err := newInstance()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := discard(inst); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return inst
}

// sharedInstance starts the shared server on first use. A failure is
// remembered, so later tests fail fast with the same error.
func sharedInstance() (*pg.Instance, string, error) {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared != nil || sharedErr != nil {
		return shared, sharedPassword, sharedErr
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	// The free port can be taken between choosing and binding it: then
	// try again with another.
	var err error
	for range 3 {
		var inst *pg.Instance
		inst, err = newInstance()
		if err != nil {
			break
		}
		password := randomHex(16)
		if err = inst.Init(ctx, password); err == nil {
			err = inst.Start(ctx)
		}
		if err == nil {
			shared, sharedPassword = inst, password
			return shared, sharedPassword, nil
		}
		if derr := discard(inst); derr != nil {
			err = errors.Join(err, derr)
		}
		if !strings.Contains(err.Error(), "Address already in use") {
			break
		}
	}
	sharedErr = fmt.Errorf("pgtest: start shared PostgreSQL server: %w", err)
	return nil, "", sharedErr
}

// newInstance makes an Instance in a new directory under root, on a free
// port, after checking the PostgreSQL programs are installed.
func newInstance() (*pg.Instance, error) {
	probe := &pg.Instance{}
	if _, err := probe.ResolveBinDir(); err != nil {
		return nil, fmt.Errorf("%w; run `make test`, which installs the test dependencies (hack/install-test-deps.sh)", err)
	}
	r, err := rootDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(r, "pg")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	ports, err := harness.FreePorts(1)
	if err != nil {
		return nil, err
	}
	inst := &pg.Instance{DataDir: filepath.Join(dir, "data"), Port: ports[0]}
	mu.Lock()
	live[inst] = dir
	mu.Unlock()
	return inst, nil
}

// rootDir creates, once, the directory for this binary's instances and
// starts the watchdog that cleans it up should the binary die. The
// directory is 0755 (os.MkdirTemp makes 0700), so that the server account
// can reach data directories inside it when the tests run as root.
func rootDir() (string, error) {
	mu.Lock()
	defer mu.Unlock()
	if root != "" {
		return root, nil
	}
	dir, err := os.MkdirTemp("", "trustee-pgtest-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	stop, err := startWatchdog(dir)
	if err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("start cleanup watchdog: %w", err)
	}
	root, watchdog = dir, stop
	return root, nil
}

// discard stops inst and removes the directory newInstance made for it.
// Tests may have changed inst's fields: if Stop fails, the server is
// killed.
func discard(inst *pg.Instance) error {
	mu.Lock()
	dir := live[inst]
	delete(live, inst)
	mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	err := inst.Stop(ctx)
	if err != nil {
		if st, serr := inst.Status(ctx); serr == nil && st.Running {
			err = errors.Join(err, kill(ctx, inst, st.PID))
		}
	}
	if dir != "" {
		err = errors.Join(err, os.RemoveAll(dir))
	}
	if err != nil {
		return fmt.Errorf("clean up PostgreSQL in %s: %w", inst.DataDir, err)
	}
	return nil
}

// shutdown stops every remaining instance and removes root.
func shutdown() error {
	sharedMu.Lock()
	shared, sharedErr = nil, errors.New("pgtest: shut down")
	sharedMu.Unlock()

	mu.Lock()
	insts := make([]*pg.Instance, 0, len(live))
	for inst := range live {
		insts = append(insts, inst)
	}
	dir, stop := root, watchdog
	mu.Unlock()

	var errs []error
	for _, inst := range insts {
		errs = append(errs, discard(inst))
	}
	if dir != "" {
		errs = append(errs, os.RemoveAll(dir))
		stop()
	}
	return errors.Join(errs...)
}

// kill shuts down inst's server, whose postmaster is pid, in immediate
// mode, and waits for it to exit.
func kill(ctx context.Context, inst *pg.Instance, pid int) error {
	if err := signalQuit(pid); err != nil {
		return err
	}
	for {
		if st, err := inst.Status(ctx); err != nil || !st.Running {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("server did not exit after SIGQUIT: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func dropDatabase(ctx context.Context, inst *pg.Instance, password, name string) error {
	conn, err := pgx.Connect(ctx, inst.ConnString("postgres", password))
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	return err
}

// dbName makes a database name from the test name, for readable logs, and
// a random suffix, so reruns and subtests never collide.
func dbName(test string) string {
	var b strings.Builder
	b.WriteString("t_")
	for _, r := range strings.ToLower(test) {
		if b.Len() >= 40 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String() + "_" + randomHex(6)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
