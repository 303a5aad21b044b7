package controlplane

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"trustee.dev/trustee/test/harness"
)

// stopTimeout is how long a process may take to end after SIGTERM before
// it is killed.
const stopTimeout = 15 * time.Second

// process is one running binary of the control plane. It writes its
// standard output and error to a log file of its own, and runs in a
// process group of its own, which stop ends as a whole. On Linux, should
// the test binary die without stopping it (a test's time out, say), the
// kernel kills it: nothing is left running.
type process struct {
	*harness.Process
	name string
	log  string // the log file's path
}

// startProcess runs bin with args, appending its output to log (a process
// started again under the same name continues its log). environ is added
// to the test's environment.
func startProcess(name, bin string, args []string, log string, environ ...string) (*process, error) {
	f, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	// The child has the file of its own once started.
	defer f.Close()
	fmt.Fprintf(f, "=== %s %s: %s %q\n", time.Now().Format(time.RFC3339Nano), name, bin, args)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), environ...)
	// The file itself, not a pipe: nothing in this process copies the
	// output, and Wait does not wait for it.
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = sysProcAttr()
	hp, err := harness.StartProcess(name, cmd)
	if err != nil {
		return nil, err
	}
	return &process{Process: hp, name: name, log: log}, nil
}

// stop ends the process's group: SIGTERM, then SIGKILL when it has not
// ended after stopTimeout. It returns an error when the process had ended
// before, by itself.
func (p *process) stop() error {
	err := p.End(syscall.SIGTERM, stopTimeout)
	var ended *harness.EndedError
	if errors.As(err, &ended) {
		return fmt.Errorf("%w%s", err, p.tail(20))
	}
	return err
}

// tail returns the last n lines of the process's log under a heading, or
// nothing when there are none.
func (p *process) tail(n int) string {
	return logTail(p.name, p.log, n)
}

// logTail returns the last n lines of the log file of name under a
// heading, or nothing when it is empty or missing.
func logTail(name, path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return ""
	}
	return fmt.Sprintf("\n--- last lines of %s's log (%s):\n%s", name, filepath.Base(path), harness.Tail(string(b), n))
}

// waitReady calls check every 100 ms until it succeeds, the process ends
// or ctx is done; the error then says why, with the end of the process's
// log.
func (p *process) waitReady(ctx context.Context, what string, check func(context.Context) error) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := check(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-p.Exited():
			return fmt.Errorf("%s exited (%v) before %s%s", p.name, p.Err(), what, p.tail(30))
		case <-ctx.Done():
			return fmt.Errorf("%s: not %s: %w (last: %v)%s", p.name, what, ctx.Err(), err, p.tail(30))
		case <-tick.C:
		}
	}
}
