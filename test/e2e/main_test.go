// Package e2e runs the kts binary as users do: separate processes, real
// PostgreSQL, real GnuPG and curl.
package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"trustee.dev/trustee/test/harness"
)

// bin is the directory holding the kts binary built for this test run and
// its tool links.
var bin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	kts, err := harness.BuildKTS("kts-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "build kts:", err)
		return 1
	}
	dir := filepath.Dir(kts)
	defer os.RemoveAll(dir)
	bin = dir
	for _, link := range []string{"keytrustee-orgtool", "ktadmin", "ktbackup.sh"} {
		if err := os.Symlink("kts", filepath.Join(dir, link)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return m.Run()
}

// startKts runs kts with args until it exits or the test ends.
func startKts(t *testing.T, what string, args ...string) *harness.Process {
	t.Helper()
	return harness.Start(t, filepath.Join(bin, "kts"), what, args...)
}

// result is a finished command.
type result struct {
	stdout, stderr string
	err            error
}

// runTool runs a tool from bin (kts or one of its links) with stdin.
func runTool(t *testing.T, stdin string, tool string, args ...string) result {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, tool), args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return result{out.String(), errb.String(), err}
}

// kts runs kts and fails the test if it fails.
func kts(t *testing.T, args ...string) string {
	t.Helper()
	r := runTool(t, "", "kts", args...)
	if r.err != nil {
		t.Fatalf("kts %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.err, r.stdout, r.stderr)
	}
	return r.stdout
}

// ktsServer is a `kts server --announce` child process that can be killed
// and started again; the logs of all its runs are kept.
type ktsServer struct {
	confdir string
	harness.Restartable
}

func newKtsServer(confdir string) *ktsServer {
	s := &ktsServer{confdir: confdir}
	s.What = "kts server --confdir " + confdir
	s.Command = func() *exec.Cmd {
		return exec.Command(filepath.Join(bin, "kts"), "server", "--confdir", confdir, "--announce", "--log-level", "info")
	}
	s.Announces = func(line string) bool { return strings.HasPrefix(line, "listening ") }
	return s
}

// start runs the server and waits until it serves.
func (s *ktsServer) start() error {
	fmt.Fprintf(&s.Logs, "=== test: start at %s\n", time.Now().Format(time.StampMilli))
	if err := s.Start(30 * time.Second); err != nil {
		return fmt.Errorf("%v:\n%s", err, harness.Tail(s.Logs.String(), 40))
	}
	return nil
}

// kill ends the server at once (SIGKILL), as a crash would.
func (s *ktsServer) kill() {
	fmt.Fprintf(&s.Logs, "=== test: SIGKILL at %s\n", time.Now().Format(time.StampMilli))
	s.Kill()
}

// stop ends a running server with SIGTERM and expects a clean exit.
func (s *ktsServer) stop() error { return s.Stop(20 * time.Second) }

// startServer runs `kts server` until the test ends, when it is stopped
// with SIGTERM and must exit cleanly (unless the test killed it); its log is
// shown if the test failed.
func startServer(t *testing.T, confdir string) *ktsServer {
	t.Helper()
	s := newKtsServer(confdir)
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log of kts server --confdir %s:\n%s", confdir, s.Logs.String())
		}
		if err := s.stop(); err != nil {
			t.Errorf("kts server --confdir %s: %v", confdir, err)
		}
	})
	return s
}
