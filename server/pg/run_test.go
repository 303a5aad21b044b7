//go:build unix

package pg_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"trustee.dev/trustee/server/pg"
	"trustee.dev/trustee/server/pg/pgtest"
	"trustee.dev/trustee/test/harness"
)

// TestRun runs the server in the foreground with its socket outside the
// data directory and extra parameters, and stops it by ending the context.
func TestRun(t *testing.T) {
	ctx := testContext(t)
	inst := pgtest.NewInstance(t)
	inst.NoSync = true
	if err := inst.Init(ctx, superPassword); err != nil {
		t.Fatal(err)
	}
	inst.SocketDir = filepath.Join(filepath.Dir(inst.DataDir), "run")
	inst.ListenAddresses = "127.0.0.1"
	inst.Parameters = map[string]string{"work_mem": "8MB", "application_name": "it's trustee"}

	runCtx, stop := context.WithCancel(ctx)
	var log harness.Buffer
	done := make(chan error, 1)
	go func() { done <- inst.Run(runCtx, pg.RunOptions{Log: &log}) }()
	t.Cleanup(func() { stop(); <-done })
	var conn *pgx.Conn
	eventually(t, "Run serves", func() bool {
		var err error
		conn, err = pgx.Connect(ctx, inst.ConnString(pg.DefaultDatabase, superPassword))
		return err == nil
	})
	defer conn.Close(ctx)
	for query, want := range map[string]string{
		"select current_setting('work_mem')":                "8MB",
		"select current_setting('unix_socket_directories')": inst.SocketDir,
		"select current_setting('log_destination')":         "stderr",
	} {
		var got string
		if err := conn.QueryRow(ctx, query).Scan(&got); err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", query, got, err, want)
		}
	}
	sock := filepath.Join(inst.SocketDir, ".s.PGSQL."+strconv.Itoa(inst.Port))
	for _, f := range []string{sock, sock + ".lock"} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("socket directory: %v", err)
		}
	}
	if fi, err := os.Stat(inst.SocketDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("socket directory mode: %v, %v", fi.Mode().Perm(), err)
	}
	if st, err := inst.Status(ctx); err != nil || !st.Running {
		t.Fatalf("Status while Run runs = %+v, %v", st, err)
	}
	if err := inst.Run(ctx, pg.RunOptions{}); err == nil || !strings.Contains(err.Error(), "already runs") {
		t.Errorf("a second Run: %v", err)
	}
	conn.Close(ctx)

	stop()
	select {
	case err := <-done:
		done <- nil // for the cleanup
		if err != nil {
			t.Fatalf("Run after its context ended: %v\n%s", err, log.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30 s of its context's end")
	}
	if st, err := inst.Status(ctx); err != nil || st.Running {
		t.Fatalf("Status after Run = %+v, %v", st, err)
	}
	if !strings.Contains(log.String(), "fast shutdown request") {
		t.Errorf("the log shows no fast shutdown:\n%s", log.String())
	}

	// A server that fails to start: its exit status comes back.
	inst.Parameters = map[string]string{"work_mem": "lots"}
	err := inst.Run(ctx, pg.RunOptions{Log: &log})
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("Run with a bad parameter: %v", err)
	}
	inst.Parameters = map[string]string{"fsync": "off"}
	if err := inst.Run(ctx, pg.RunOptions{}); err == nil || !strings.Contains(err.Error(), `"fsync" is set by Trustee`) {
		t.Errorf("Run with a managed setting as a parameter: %v", err)
	}
}
