package harness

import (
	"fmt"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// Process is a child process that the test reads and ends. Its standard
// output and error go to a Buffer (Output), unless its Cmd sends them
// elsewhere (a log file, say). When the Cmd gives it a process group of
// its own (SysProcAttr.Setpgid), signals go to the whole group.
type Process struct {
	What string // names it in errors
	Cmd  *exec.Cmd

	out    Buffer
	exited chan struct{} // closed when it has ended; err says how
	err    error
}

// StartProcess starts cmd, what naming it.
func StartProcess(what string, cmd *exec.Cmd) (*Process, error) {
	p := &Process{What: what, Cmd: cmd, exited: make(chan struct{})}
	if cmd.Stdout == nil {
		cmd.Stdout = &p.out
	}
	if cmd.Stderr == nil {
		cmd.Stderr = &p.out
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", what, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// Start runs bin with args until it exits or t ends, when it is stopped
// (Stop); when t has failed, the end of its output is logged.
func Start(t testing.TB, bin, what string, args ...string) *Process {
	t.Helper()
	p, err := StartProcess(what, exec.Command(bin, args...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("output of %s:\n%s", what, Tail(p.Output(), 60))
		}
	})
	return p
}

// Output is what the process wrote to its Buffer so far.
func (p *Process) Output() string { return p.out.String() }

// Exited is closed once the process has ended; Err then says how.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Err is how the process ended (nil for exit status 0), once Exited is
// closed.
func (p *Process) Err() error { return p.err }

// Running reports whether the process has not ended.
func (p *Process) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Wait waits for the process to end by itself, at most limit, and says
// how it ended.
func (p *Process) Wait(limit time.Duration) error {
	if !p.Running() {
		return p.err
	}
	select {
	case <-p.exited:
		return p.err
	case <-time.After(limit):
		return fmt.Errorf("%s still runs after %v", p.What, limit)
	}
}

// Signal sends sig to the process (its group when it has one of its own).
func (p *Process) Signal(sig syscall.Signal) {
	if a := p.Cmd.SysProcAttr; a != nil && a.Setpgid {
		_ = syscall.Kill(-p.Cmd.Process.Pid, sig)
		return
	}
	_ = p.Cmd.Process.Signal(sig)
}

// Stop ends the process if it runs: an interrupt, and a kill after 30 s.
func (p *Process) Stop() {
	if p.Running() {
		_ = p.End(syscall.SIGINT, 30*time.Second)
	}
}

// EndedError says that a process End was to stop had ended before, by
// itself.
type EndedError struct {
	What string
	Err  error // how it ended
}

func (e *EndedError) Error() string {
	return fmt.Sprintf("%s had ended by itself: %v", e.What, e.Err)
}

// End ends the process: sig, then SIGKILL when it has not ended after
// grace; with a group of its own, whatever is left of the group is killed
// too. It returns an *EndedError when the process had ended before, by
// itself, and an error when it had to be killed.
func (p *Process) End(sig syscall.Signal, grace time.Duration) error {
	var err error
	select {
	case <-p.exited:
		err = &EndedError{What: p.What, Err: p.err}
	default:
		p.Signal(sig)
		select {
		case <-p.exited:
		case <-time.After(grace):
			err = fmt.Errorf("%s still ran %v after %s; killed", p.What, grace, signalName(sig))
		}
	}
	p.Signal(syscall.SIGKILL)
	<-p.exited
	return err
}

// signalName is SIGTERM for syscall.SIGTERM, and so on.
func signalName(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGKILL:
		return "SIGKILL"
	}
	return sig.String()
}
