// Package e2e runs the kts binary as users do: separate processes, real
// PostgreSQL, real GnuPG and curl.
package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// bin is the directory holding the kts binary built for this test run and
// its tool links.
var bin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "kts-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin = dir
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "kts"), "trustee.dev/trustee")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build kts:", err)
		return 1
	}
	for _, link := range []string{"keytrustee-orgtool", "ktadmin"} {
		if err := os.Symlink("kts", filepath.Join(dir, link)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return m.Run()
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

// stateRoot is a temporary directory the PostgreSQL account can traverse
// when the tests run as root.
func stateRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "kts-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// server is a running `kts server`.
type server struct {
	cmd    *exec.Cmd
	exited chan error
	killed bool
}

// kill ends the server at once (SIGKILL), as a crash would.
func (s *server) kill() {
	s.killed = true
	s.cmd.Process.Kill()
	<-s.exited
}

// startServer runs `kts server` and waits until it serves; it is stopped
// (SIGTERM, expecting a clean exit) when the test ends unless killed before.
func startServer(t *testing.T, confdir string) *server {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, "kts"), "server", "--confdir", confdir, "--announce", "--log-level", "warn")
	var logs bytes.Buffer
	cmd.Stderr = &logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "listening ") {
				ready <- true
				io.Copy(io.Discard, stdout)
				return
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			cmd.Wait()
			t.Fatalf("kts server exited before serving:\n%s", logs.String())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("kts server did not serve within 30 s:\n%s", logs.String())
	}
	s := &server{cmd: cmd, exited: make(chan error, 1)}
	go func() { s.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log of kts server --confdir %s:\n%s", confdir, logs.String())
		}
		if s.killed {
			return
		}
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-s.exited:
			if err != nil {
				t.Errorf("kts server exit: %v\n%s", err, logs.String())
			}
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			t.Errorf("kts server did not stop on SIGTERM")
		}
	})
	return s
}
