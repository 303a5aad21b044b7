// Package e2e runs the kts binary as users do: separate processes, real
// PostgreSQL, real GnuPG and curl.
package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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
	logs    harness.Buffer
	cmd     *exec.Cmd
	exited  chan error
}

// start runs the server and waits until it serves.
func (s *ktsServer) start() error {
	cmd := exec.Command(filepath.Join(bin, "kts"), "server", "--confdir", s.confdir, "--announce", "--log-level", "info")
	fmt.Fprintf(&s.logs, "=== test: start at %s\n", time.Now().Format(time.StampMilli))
	cmd.Stderr = &s.logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
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
			return fmt.Errorf("kts server --confdir %s exited before serving:\n%s", s.confdir, harness.Tail(s.logs.String(), 40))
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		return fmt.Errorf("kts server --confdir %s did not serve within 30 s:\n%s", s.confdir, harness.Tail(s.logs.String(), 40))
	}
	s.cmd, s.exited = cmd, make(chan error, 1)
	go func() { s.exited <- cmd.Wait() }()
	return nil
}

// kill ends the server at once (SIGKILL), as a crash would.
func (s *ktsServer) kill() {
	fmt.Fprintf(&s.logs, "=== test: SIGKILL at %s\n", time.Now().Format(time.StampMilli))
	s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// stop ends a running server with SIGTERM and expects a clean exit.
func (s *ktsServer) stop() error {
	if s.cmd == nil {
		return nil
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.exited:
		s.cmd = nil
		return err
	case <-time.After(20 * time.Second):
		s.kill()
		return errors.New("did not stop within 20 s of SIGTERM")
	}
}

// startServer runs `kts server` until the test ends, when it is stopped
// with SIGTERM and must exit cleanly (unless the test killed it); its log is
// shown if the test failed.
func startServer(t *testing.T, confdir string) *ktsServer {
	t.Helper()
	s := &ktsServer{confdir: confdir}
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log of kts server --confdir %s:\n%s", confdir, s.logs.String())
		}
		if err := s.stop(); err != nil {
			t.Errorf("kts server --confdir %s: %v", confdir, err)
		}
	})
	return s
}
