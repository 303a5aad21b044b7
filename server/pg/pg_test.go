//go:build unix

package pg_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"trustee.dev/trustee/server/pg"
	"trustee.dev/trustee/server/pg/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestLifecycle(t *testing.T) {
	ctx := testContext(t)
	inst := pgtest.NewInstance(t)
	const password = `s3cret pa$$:/@?#%'"\word`

	if inst.Initialized() {
		t.Fatal("Initialized before Init")
	}
	if st, err := inst.Status(ctx); err != nil || st.Running {
		t.Fatalf("Status before Init = %+v, %v; want not running", st, err)
	}

	begin := time.Now()
	if err := inst.Init(ctx, password); err != nil {
		t.Fatal(err)
	}
	t.Logf("Init (initdb, start, create database, stop): %v", time.Since(begin))
	if !inst.Initialized() {
		t.Fatal("not Initialized after Init")
	}
	checkDataDir(t, inst.DataDir)
	if err := inst.Init(ctx, password); !errors.Is(err, pg.ErrAlreadyInitialized) {
		t.Fatalf("second Init: err = %v, want ErrAlreadyInitialized", err)
	}

	begin = time.Now()
	if err := inst.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("Start: %v", time.Since(begin))
	st, err := inst.Status(ctx)
	if err != nil || !st.Running || st.PID <= 0 || st.Port != inst.Port {
		t.Fatalf("Status after Start = %+v, %v; want running on port %d", st, err, inst.Port)
	}
	if err := inst.Start(ctx); err != nil {
		t.Fatalf("Start while running: %v", err)
	}
	if st2, _ := inst.Status(ctx); st2.PID != st.PID {
		t.Fatalf("second Start changed PID %d to %d", st.PID, st2.PID)
	}

	conn, err := pgx.Connect(ctx, inst.ConnString(pg.DefaultDatabase, password))
	if err != nil {
		t.Fatal(err)
	}
	for query, want := range map[string]string{
		"select 1::text":                                                                   "1",
		"select current_user::text":                                                        pg.DefaultUser,
		"select current_database()::text":                                                  pg.DefaultDatabase,
		"select current_setting('fsync')":                                                  "on",
		"select current_setting('data_checksums')":                                         "on",
		"select current_setting('server_encoding')":                                        "UTF8",
		"select current_setting('listen_addresses')":                                       "127.0.0.1",
		"select current_setting('log_parameter_max_length')":                               "0",
		"select datdba::regrole::text from pg_database where datname = current_database()": pg.DefaultUser,
	} {
		var got string
		if err := conn.QueryRow(ctx, query).Scan(&got); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		if got != want {
			t.Errorf("%s = %q, want %q", query, got, want)
		}
	}
	conn.Close(ctx)

	const wrong = "not-the-password"
	_, err = pgx.Connect(ctx, inst.ConnString(pg.DefaultDatabase, wrong))
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
		t.Fatalf("connect with wrong password: err = %v, want invalid_password (28P01)", err)
	}
	if strings.Contains(err.Error(), wrong) {
		t.Errorf("connection error reveals the password: %v", err)
	}

	for range 2 {
		if err := inst.CreateDatabase(ctx, password, "second db"); err != nil {
			t.Fatal(err)
		}
	}
	conn, err = pgx.Connect(ctx, inst.ConnString("second db", password))
	if err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)

	begin = time.Now()
	if err := inst.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("Stop: %v", time.Since(begin))
	if st, err := inst.Status(ctx); err != nil || st.Running {
		t.Fatalf("Status after Stop = %+v, %v; want not running", st, err)
	}
	if err := inst.Stop(ctx); err != nil {
		t.Fatalf("Stop while stopped: %v", err)
	}
	checkNoSecret(t, inst.DataDir, password)

	// A bad setting makes Start fail, with the server's complaint.
	f, err := os.OpenFile(filepath.Join(inst.DataDir, "postgresql.conf"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("trustee_no_such_setting = 1\n")
	f.Close()
	err = inst.Start(ctx)
	if err == nil || !strings.Contains(err.Error(), `unrecognized configuration parameter "trustee_no_such_setting"`) {
		t.Fatalf("Start with a bad setting: err = %v, want the log's complaint", err)
	}
}

// checkDataDir checks DataDir's mode and owner, and that the server only
// admits password logins.
func checkDataDir(t *testing.T, dir string) {
	t.Helper()
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("data directory mode = %v, want 0700", fi.Mode().Perm())
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup(pg.DefaultRunAs)
		if err != nil {
			t.Fatal(err)
		}
		if uid := fi.Sys().(*syscall.Stat_t).Uid; strconv.Itoa(int(uid)) != u.Uid {
			t.Errorf("data directory owner uid = %d, want %s (%s)", uid, u.Uid, pg.DefaultRunAs)
		}
	}
	hba, err := os.ReadFile(filepath.Join(dir, "pg_hba.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(hba), "\n") {
		if f := strings.Fields(line); len(f) > 0 && !strings.HasPrefix(f[0], "#") && f[len(f)-1] != "scram-sha-256" {
			t.Errorf("pg_hba.conf admits without a password: %q", line)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, pg.ConfigFile)); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(dir, pg.LogFile)); err != nil {
		t.Error(err)
	}
}

// checkNoSecret fails if any file under dir holds password in clear.
func checkNoSecret(t *testing.T, dir, password string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(data, []byte(password)) {
			t.Errorf("%s holds the password in clear", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestInitRefusesNonEmptyDir(t *testing.T) {
	inst := pgtest.NewInstance(t)
	if err := os.MkdirAll(inst.DataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(inst.DataDir, "stray"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err := inst.Init(testContext(t), "pw")
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("Init into a non-empty directory: err = %v, want a 'not empty' error", err)
	}
}

func TestInitRejectsBadPasswords(t *testing.T) {
	inst := pgtest.NewInstance(t)
	for _, pw := range []string{"", "two\nlines", "nul\x00"} {
		if err := inst.Init(testContext(t), pw); err == nil {
			t.Errorf("Init accepted password %q", pw)
		}
	}
	if _, err := os.Stat(inst.DataDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("rejected Init left %s behind (%v)", inst.DataDir, err)
	}
}

func TestStartNotInitialized(t *testing.T) {
	inst := pgtest.NewInstance(t)
	if err := inst.Start(testContext(t)); !errors.Is(err, pg.ErrNotInitialized) {
		t.Fatalf("Start: err = %v, want ErrNotInitialized", err)
	}
}

func TestMissingBinaries(t *testing.T) {
	inst := pgtest.NewInstance(t)
	inst.BinDir = t.TempDir()
	err := inst.Init(testContext(t), "pw")
	if !errors.Is(err, pg.ErrNotInstalled) || !strings.Contains(err.Error(), "apt-get install postgresql-15") {
		t.Fatalf("Init: err = %v, want ErrNotInstalled with install instructions", err)
	}
}

func TestSocketPathTooLong(t *testing.T) {
	inst := pgtest.NewInstance(t)
	inst.DataDir = filepath.Join(inst.DataDir, strings.Repeat("d", 100))
	err := inst.Init(testContext(t), "pw")
	if err == nil || !strings.Contains(err.Error(), "too long") {
		t.Fatalf("Init: err = %v, want a path too long error", err)
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("RunAs applies only when the tests run as root")
	}
}

func TestRunAsMissing(t *testing.T) {
	requireRoot(t)
	inst := pgtest.NewInstance(t)
	inst.RunAs = "trustee-no-such-user"
	err := inst.Init(testContext(t), "pw")
	if err == nil || !strings.Contains(err.Error(), "useradd --system trustee-no-such-user") ||
		!strings.Contains(err.Error(), "--run-as") {
		t.Fatalf("Init: err = %v, want advice to create the account", err)
	}
}

func TestUnreachableParent(t *testing.T) {
	requireRoot(t)
	parent, err := os.MkdirTemp("", "pg-locked-") // mode 0700, owned by root
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	inst := pgtest.NewInstance(t)
	inst.DataDir = filepath.Join(parent, "data")
	err = inst.Init(testContext(t), "pw")
	if err == nil || !strings.Contains(err.Error(), "chmod o+x "+parent) {
		t.Fatalf("Init: err = %v, want advice to run chmod o+x %s", err, parent)
	}
	if _, err := os.Stat(inst.DataDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("failed Init created %s (%v)", inst.DataDir, err)
	}
}

func TestConnString(t *testing.T) {
	const password = `p@ss:/w?rd#% "x"`
	for host, want := range map[string]string{
		"":          "127.0.0.1",
		"127.0.0.1": "127.0.0.1",
		"*":         "127.0.0.1",
		"0.0.0.0":   "127.0.0.1",
		"::1":       "::1",
		"::":        "::1",
	} {
		inst := &pg.Instance{Host: host, Port: 5433, User: "kt admin"}
		cfg, err := pgx.ParseConfig(inst.ConnString("my db", password))
		if err != nil {
			t.Fatalf("Host %q: %v", host, err)
		}
		if cfg.Host != want || cfg.Port != 5433 || cfg.User != "kt admin" || cfg.Password != password ||
			cfg.Database != "my db" || cfg.TLSConfig != nil {
			t.Errorf("Host %q: parsed %s@%s:%d/%s (TLS %v), password ok %v",
				host, cfg.User, cfg.Host, cfg.Port, cfg.Database, cfg.TLSConfig != nil, cfg.Password == password)
		}
	}
	if s := (&pg.Instance{}).ConnString("db", "pw"); s != "postgres://keytrustee:pw@127.0.0.1:11381/db?sslmode=disable" {
		t.Errorf("default ConnString = %q", s)
	}
}
