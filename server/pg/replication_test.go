//go:build unix

package pg_test

import (
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

const (
	superPassword = "super secret"
	replPassword  = `repl:pa\ss 'word'`
)

// newActive returns a running active with replication configured, whose
// commits wait for the standby pg.DefaultStandby.
func newActive(t *testing.T, ctx context.Context) *pg.Instance {
	t.Helper()
	active := pgtest.NewInstance(t)
	active.Role = pg.RoleActive
	active.Standby = pg.DefaultStandby
	active.NoSync = true
	if err := active.Init(ctx, superPassword); err != nil {
		t.Fatal(err)
	}
	if err := active.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for range 2 { // idempotent
		if err := active.ConfigureReplication(ctx, superPassword, replPassword); err != nil {
			t.Fatal(err)
		}
	}
	return active
}

func newPassive(t *testing.T) *pg.Instance {
	t.Helper()
	passive := pgtest.NewInstance(t)
	passive.Role = pg.RolePassive
	passive.NoSync = true
	return passive
}

func connectDB(t *testing.T, ctx context.Context, inst *pg.Instance) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, inst.ConnString(pg.DefaultDatabase, superPassword))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func count(t *testing.T, ctx context.Context, conn *pgx.Conn, where string) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM secrets WHERE "+where).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// eventually polls cond for up to 15 seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitAttached waits until the active reports its standby attached with
// the given state.
func waitAttached(t *testing.T, ctx context.Context, active *pg.Instance, attached bool) pg.ReplicationStatus {
	t.Helper()
	var st pg.ReplicationStatus
	eventually(t, "the standby is attached="+strconv.FormatBool(attached), func() bool {
		var err error
		if st, err = active.ReplicationStatus(ctx, superPassword); err != nil {
			t.Fatal(err)
		}
		if !attached {
			return !st.Attached
		}
		return st.Attached && st.State == "streaming" && st.SyncState == "sync"
	})
	return st
}

func TestReplication(t *testing.T) {
	// Temporary password files go to a directory of this test's own, so
	// that those of tests running at the same time are not taken for
	// leftovers.
	tmp, err := os.MkdirTemp("", "pg-replication-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	if err := os.Chmod(tmp, 0o755); err != nil { // reached by the run-as account
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", tmp)
	ctx := testContext(t)
	begin := time.Now()
	active := newActive(t, ctx)
	t.Logf("active Init, Start, ConfigureReplication: %v", time.Since(begin))
	passive := newPassive(t)

	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.FailNow()
		}
	}

	// Connections shared by the steps close when the whole test ends.
	outer := t
	var activeDB, passiveDB *pgx.Conn
	step("pair", func(t *testing.T) {
		begin := time.Now()
		if err := passive.InitStandby(ctx, "127.0.0.1", active.Port, replPassword); err != nil {
			t.Fatal(err)
		}
		t.Logf("InitStandby: %v", time.Since(begin))
		checkStandbyDir(t, passive.DataDir)
		checkNoSecret(t, active.DataDir, replPassword)
		begin = time.Now()
		if err := passive.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("passive Start: %v", time.Since(begin))
		st := waitAttached(t, ctx, active, true)
		if st.InRecovery || st.Standby != pg.DefaultStandby || st.SlotWALStatus != "reserved" {
			t.Errorf("active's status = %+v", st)
		}

		activeDB, passiveDB = connectDB(outer, ctx, active), connectDB(outer, ctx, passive)
		if _, err := activeDB.Exec(ctx, "CREATE TABLE secrets (id int PRIMARY KEY, v text)"); err != nil {
			t.Fatal(err)
		}
		for id := range 10 {
			if _, err := activeDB.Exec(ctx, "INSERT INTO secrets VALUES ($1, 'x')", id); err != nil {
				t.Fatal(err)
			}
			// remote_apply: acknowledged means readable on the passive.
			if n := count(t, ctx, passiveDB, "id = "+strconv.Itoa(id)); n != 1 {
				t.Fatalf("row %d committed on the active is not on the passive", id)
			}
		}

		pst, err := passive.ReplicationStatus(ctx, superPassword)
		if err != nil {
			t.Fatal(err)
		}
		if !pst.InRecovery || !pst.Streaming || pst.ReplayLSN == "" {
			t.Errorf("passive's status = %+v, want in recovery and streaming", pst)
		}
		_, err = passiveDB.Exec(ctx, "INSERT INTO secrets VALUES (100, 'x')")
		if !isCode(err, "25006") { // read_only_sql_transaction
			t.Errorf("write on the passive: err = %v, want read_only_sql_transaction", err)
		}
		if err := passive.ConfigureReplication(ctx, superPassword, replPassword); err == nil {
			t.Error("ConfigureReplication on the passive succeeded")
		}
	})

	step("synchronous", func(t *testing.T) {
		if err := passive.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		waitAttached(t, ctx, active, false)

		// A commit waits for the passive, until the client gives up. Then
		// the outcome is unknown: pgx cancels the query as it closes the
		// connection, which ends the wait with the transaction committed
		// on the active alone.
		conn := connectDB(t, ctx, active)
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		begin := time.Now()
		_, err := conn.Exec(wctx, "INSERT INTO secrets VALUES (20, 'waits')")
		cancel()
		if err == nil {
			t.Fatal("a write succeeded on the active while its synchronous standby was down")
		}
		t.Logf("write without standby failed after %v: %v", time.Since(begin), err)
		eventually(t, "the canceled commit is visible on the active", func() bool {
			return count(t, ctx, activeDB, "id = 20") == 1
		})

		// statement_timeout does not end the wait: PostgreSQL disables it
		// before it commits.
		conn = connectDB(t, ctx, active)
		if _, err := conn.Exec(ctx, "SET statement_timeout = '100ms'"); err != nil {
			t.Fatal(err)
		}
		wctx, cancel = context.WithTimeout(ctx, time.Second)
		_, err = conn.Exec(wctx, "INSERT INTO secrets VALUES (21, 'waits')")
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("write with statement_timeout: err = %v, want the client's deadline", err)
		}

		// A commit that need not wait for the passive.
		insertLocal(t, ctx, activeDB, "30, 'local'")

		// The passive's data directory cannot be run as the active.
		wrong := *passive
		wrong.Role = pg.RoleActive
		if err := wrong.Start(ctx); err == nil || !strings.Contains(err.Error(), "not promoted") {
			t.Fatalf("starting the passive's cluster as the active: err = %v", err)
		}

		// The passive catches up from the slot, and the commit that
		// timed out in the client completes.
		if err := passive.Start(ctx); err != nil {
			t.Fatal(err)
		}
		passiveDB = connectDB(outer, ctx, passive)
		eventually(t, "the passive has caught up", func() bool {
			return count(t, ctx, passiveDB, "id IN (20, 21, 30)") == 3
		})
		waitAttached(t, ctx, active, true)
		if n := count(t, ctx, activeDB, "id IN (20, 21)"); n != 2 {
			t.Errorf("writes whose commit waited: %d of 2 on the active, want both", n)
		}
	})

	step("reseed", func(t *testing.T) {
		if err := passive.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		checkStale(t, ctx, passive, active.Port, "")
		if _, _, err := passive.UpstreamStale(ctx, "127.0.0.1", active.Port, "wrong password"); err == nil {
			t.Error("UpstreamStale with a wrong password: no error")
		}
		// A dropped slot is re-created.
		if _, err := activeDB.Exec(ctx, "SELECT pg_drop_replication_slot($1)", pg.DefaultSlot); err != nil {
			t.Fatal(err)
		}
		checkStale(t, ctx, passive, active.Port, "no replication slot")
		if st := status(t, ctx, active); st.SlotWALStatus != "" {
			t.Fatalf("status without slot = %+v", st)
		}
		if err := active.ConfigureReplication(ctx, superPassword, replPassword); err != nil {
			t.Fatal(err)
		}
		if st := status(t, ctx, active); st.SlotWALStatus != "reserved" {
			t.Fatalf("status with a new slot = %+v", st)
		}

		// The slot loses WAL the passive needs: the active keeps little.
		setWALLimits(t, ctx, activeDB, "max_slot_wal_keep_size = '1MB'", "wal_keep_size = 0")
		insertLocal(t, ctx, activeDB, "40, 'while down'")
		eventually(t, "the slot is lost", func() bool {
			for _, q := range []string{
				"SELECT pg_logical_emit_message(false, 'trustee', 'some WAL')",
				"SELECT pg_switch_wal()",
				"CHECKPOINT",
			} {
				if _, err := activeDB.Exec(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			return status(t, ctx, active).SlotWALStatus == "lost"
		})
		checkStale(t, ctx, passive, active.Port, "lost the WAL")
		setWALLimits(t, ctx, activeDB, "max_slot_wal_keep_size", "wal_keep_size")
		if err := active.ConfigureReplication(ctx, superPassword, replPassword); err != nil {
			t.Fatal(err)
		}
		if st := status(t, ctx, active); st.SlotWALStatus != "reserved" {
			t.Fatalf("status after ConfigureReplication replaced the lost slot = %+v", st)
		}

		if err := active.Reseed(ctx, "127.0.0.1", active.Port, replPassword); err == nil ||
			!strings.Contains(err.Error(), "never reseeded") {
			t.Fatalf("Reseed on the active: err = %v", err)
		}
		begin := time.Now()
		if err := passive.Reseed(ctx, "127.0.0.1", active.Port, replPassword); err != nil {
			t.Fatal(err)
		}
		t.Logf("Reseed: %v", time.Since(begin))
		old, _ := filepath.Glob(passive.DataDir + ".old-*")
		if len(old) != 1 {
			t.Fatalf("old data directories = %q, want one", old)
		}
		for _, f := range []string{"PG_VERSION", "standby.signal", "replication.pgpass"} {
			if _, err := os.Stat(filepath.Join(old[0], f)); err != nil {
				t.Errorf("old data directory: %v", err)
			}
		}
		checkStandbyDir(t, passive.DataDir)
		if err := passive.Start(ctx); err != nil {
			t.Fatal(err)
		}
		passiveDB = connectDB(outer, ctx, passive)
		if n := count(t, ctx, passiveDB, "true"); n != 14 {
			t.Errorf("reseeded passive has %d rows, want 14", n)
		}
		waitAttached(t, ctx, active, true)
		if _, err := activeDB.Exec(ctx, "INSERT INTO secrets VALUES (50, 'after reseed')"); err != nil {
			t.Fatal(err)
		}
		if n := count(t, ctx, passiveDB, "id = 50"); n != 1 {
			t.Error("a write after Reseed is not on the passive")
		}
	})
}

// checkStale checks what UpstreamStale says of the passive: stale for the
// reason want, or not stale when want is "".
func checkStale(t *testing.T, ctx context.Context, passive *pg.Instance, activePort int, want string) {
	t.Helper()
	stale, why, err := passive.UpstreamStale(ctx, "127.0.0.1", activePort, replPassword)
	if err != nil || stale != (want != "") || !strings.Contains(why, want) {
		t.Fatalf("UpstreamStale = %v, %q, %v; want stale for %q", stale, why, err, want)
	}
}

func status(t *testing.T, ctx context.Context, inst *pg.Instance) pg.ReplicationStatus {
	t.Helper()
	st, err := inst.ReplicationStatus(ctx, superPassword)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// setWALLimits sets (name = value) or resets (name) settings with ALTER
// SYSTEM, and reloads the configuration.
func setWALLimits(t *testing.T, ctx context.Context, conn *pgx.Conn, settings ...string) {
	t.Helper()
	for _, s := range settings {
		q := "ALTER SYSTEM RESET " + s
		if strings.Contains(s, "=") {
			q = "ALTER SYSTEM SET " + s
		}
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		t.Fatal(err)
	}
}

// insertLocal inserts a row in a transaction that commits without waiting
// for the standby.
func insertLocal(t *testing.T, ctx context.Context, conn *pgx.Conn, values string) {
	t.Helper()
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit = local"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "INSERT INTO secrets VALUES ("+values+")")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkStandbyDir checks the passive's data directory: a standby, its
// configuration free of the active's synchronous settings and of the
// password, and the password file private to the server account.
func checkStandbyDir(t *testing.T, dir string) {
	t.Helper()
	conf, err := os.ReadFile(filepath.Join(dir, pg.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"primary_conninfo = ", "application_name=''kts_passive''", "primary_slot_name = 'kts_passive'", "hot_standby = on"} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("%s lacks %q:\n%s", pg.ConfigFile, want, conf)
		}
	}
	if strings.Contains(string(conf), "synchronous_standby_names") {
		t.Errorf("the passive's %s sets synchronous_standby_names", pg.ConfigFile)
	}
	if _, err := os.Stat(filepath.Join(dir, "standby.signal")); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(dir, pg.LogFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the active's server log was copied to the passive (%v)", err)
	}
	if locks, _ := filepath.Glob(filepath.Join(dir, ".s.PGSQL.*.lock")); len(locks) > 0 {
		t.Errorf("the active's socket lock files were copied to the passive: %q", locks)
	}
	pass := filepath.Join(dir, "replication.pgpass")
	fi, err := os.Stat(pass)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s mode = %v, want 0600", pass, fi.Mode().Perm())
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup(pg.DefaultRunAs)
		if err != nil {
			t.Fatal(err)
		}
		if uid := fi.Sys().(*syscall.Stat_t).Uid; strconv.Itoa(int(uid)) != u.Uid {
			t.Errorf("%s owner uid = %d, want %s", pass, uid, u.Uid)
		}
	}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || path == pass {
			return err
		}
		data, err := os.ReadFile(path)
		if err == nil && strings.Contains(string(data), "pa\\ss") {
			t.Errorf("%s holds the replication password", path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if tmp, _ := filepath.Glob(filepath.Join(os.TempDir(), "trustee-pg_basebackup-*")); len(tmp) > 0 {
		t.Errorf("temporary password files left behind: %q", tmp)
	}
}

func TestInitStandbyBadInput(t *testing.T) {
	ctx := testContext(t)
	active := newActive(t, ctx)
	passive := newPassive(t)

	err := passive.InitStandby(ctx, "127.0.0.1", active.Port, "wrong password")
	if err == nil || !strings.Contains(err.Error(), "password authentication failed") ||
		!strings.Contains(err.Error(), "ConfigureReplication") {
		t.Fatalf("InitStandby with a wrong password: err = %v, want the server's complaint and advice", err)
	}
	if strings.Contains(err.Error(), "wrong password") {
		t.Errorf("error reveals the password: %v", err)
	}
	if entries, err := os.ReadDir(passive.DataDir); err != nil || len(entries) > 0 {
		t.Errorf("failed InitStandby left %d entries in the data directory (%v)", len(entries), err)
	}

	other := *passive
	other.Slot = "no_such_slot"
	if err := other.InitStandby(ctx, "127.0.0.1", active.Port, replPassword); err == nil ||
		!strings.Contains(err.Error(), `has no replication slot "no_such_slot"`) {
		t.Errorf("InitStandby without a slot: err = %v", err)
	}

	// With CreateMissingSlot, the copy makes the slot.
	made := newPassive(t)
	made.Slot, made.CreateMissingSlot = "made_by_passive", true
	if err := made.InitStandby(ctx, "127.0.0.1", active.Port, replPassword); err != nil {
		t.Fatalf("InitStandby with CreateMissingSlot: %v", err)
	}
	var slots int
	if err := connectDB(t, ctx, active).QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'made_by_passive'").Scan(&slots); err != nil || slots != 1 {
		t.Fatalf("slots made by the passive: %d, %v", slots, err)
	}

	if err := passive.InitStandby(ctx, "127.0.0.1", active.Port, replPassword); err != nil {
		t.Fatalf("InitStandby after a failed one: %v", err)
	}
	err = passive.InitStandby(ctx, "127.0.0.1", active.Port, replPassword)
	if !errors.Is(err, pg.ErrAlreadyInitialized) || !strings.Contains(err.Error(), "Reseed") {
		t.Errorf("InitStandby on an initialized directory: err = %v, want ErrAlreadyInitialized", err)
	}

	for name, f := range map[string]func() error{
		"Init on the passive": func() error { return passive.Init(ctx, superPassword) },
		"InitStandby on the active": func() error {
			return active.InitStandby(ctx, "127.0.0.1", active.Port, replPassword)
		},
		"Reseed of a primary's cluster": func() error {
			p := *active
			p.Role = pg.RolePassive
			return p.Reseed(ctx, "127.0.0.1", active.Port, replPassword)
		},
		"ConfigureReplication with a line break": func() error {
			return active.ConfigureReplication(ctx, superPassword, "two\nlines")
		},
		"ConfigureReplication with the superuser as replication user": func() error {
			a := *active
			a.ReplicationUser = a.User
			if a.ReplicationUser == "" {
				a.ReplicationUser = pg.DefaultUser
			}
			return a.ConfigureReplication(ctx, superPassword, replPassword)
		},
		"Init with a bad replication network": func() error {
			p := newPassive(t)
			p.Role = pg.RoleActive
			p.ReplicationFrom = []string{"10.0.0.7"}
			return p.Init(ctx, superPassword)
		},
		"unknown role": func() error {
			p := newPassive(t)
			p.Role = "primary"
			return p.Init(ctx, superPassword)
		},
	} {
		if err := f(); err == nil {
			t.Errorf("%s: no error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(active.DataDir, "PG_VERSION")); err != nil {
		t.Errorf("the refused Reseed touched the active's cluster: %v", err)
	}
}

func isCode(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}
