package harness

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"syscall"
	"time"
)

// StartAnnounced starts cmd, a server that writes a line for which
// announces holds to its standard output once it serves, and waits at most
// limit for that line. Its standard output goes on to stdout (nil:
// nowhere); its standard error goes where cmd says (nil: the Process's
// Buffer). When the line does not come, nothing of it is left running.
func StartAnnounced(what string, cmd *exec.Cmd, stdout io.Writer, announces func(line string) bool, limit time.Duration) (*Process, error) {
	w := NewLineWatch(stdout, announces)
	cmd.Stdout = w
	p, err := StartProcess(what, cmd)
	if err != nil {
		return nil, err
	}
	select {
	case <-w.Seen():
		return p, nil
	case <-p.Exited():
		return nil, fmt.Errorf("%s exited before serving (%v)", what, p.Err())
	case <-time.After(limit):
		p.Signal(syscall.SIGKILL)
		<-p.Exited()
		return nil, fmt.Errorf("%s did not serve within %v", what, limit)
	}
}

// LineWatch passes what is written to it on to a writer, and closes Seen
// once a whole line for which its match holds has come by. Only one
// goroutine may write to it (exec's, say).
type LineWatch struct {
	w     io.Writer
	match func(string) bool
	seen  chan struct{}
	done  bool   // seen is closed
	line  []byte // the start of the current line
}

// NewLineWatch watches what is written on its way to w (nil: nowhere)
// for a line for which match holds.
func NewLineWatch(w io.Writer, match func(line string) bool) *LineWatch {
	if w == nil {
		w = io.Discard
	}
	return &LineWatch{w: w, match: match, seen: make(chan struct{})}
}

// Seen is closed once the line has come by.
func (l *LineWatch) Seen() <-chan struct{} { return l.seen }

func (l *LineWatch) Write(p []byte) (int, error) {
	if !l.done {
		l.line = append(l.line, p...)
		for i := bytes.IndexByte(l.line, '\n'); i >= 0 && !l.done; i = bytes.IndexByte(l.line, '\n') {
			if l.match(string(l.line[:i])) {
				l.done = true
				close(l.seen)
			}
			l.line = l.line[i+1:]
		}
		if l.done {
			l.line = nil
		}
	}
	return l.w.Write(p)
}

// Restartable is a server process that the test stops, kills and starts
// again; Logs keeps what all its runs wrote.
type Restartable struct {
	What      string                 // names it in errors
	Command   func() *exec.Cmd       // the command of each run
	Announces func(line string) bool // the line of its standard output that says it serves
	// KeepStdout sends its standard output to Logs too; else it goes
	// nowhere. Its standard error goes to Logs unless Command says
	// otherwise.
	KeepStdout bool
	Logs       Buffer

	p *Process // the running one; nil when it is not running
}

// Start runs the server and waits at most limit until it serves.
func (r *Restartable) Start(limit time.Duration) error {
	cmd := r.Command()
	if cmd.Stderr == nil {
		cmd.Stderr = &r.Logs
	}
	var stdout io.Writer
	if r.KeepStdout {
		stdout = &r.Logs
	}
	p, err := StartAnnounced(r.What, cmd, stdout, r.Announces, limit)
	if err != nil {
		return err
	}
	r.p = p
	return nil
}

// Process is the running server; nil when it does not run.
func (r *Restartable) Process() *Process { return r.p }

// Kill ends the server at once (SIGKILL), as a crash would.
func (r *Restartable) Kill() {
	r.p.Signal(syscall.SIGKILL)
	<-r.p.Exited()
	r.p = nil
}

// Stop ends a running server with SIGTERM (SIGKILL after grace) and
// returns how it exited: nil for a clean exit.
func (r *Restartable) Stop(grace time.Duration) error {
	if r.p == nil {
		return nil
	}
	p := r.p
	r.p = nil
	err := p.End(syscall.SIGTERM, grace)
	var ended *EndedError
	if errors.As(err, &ended) {
		return ended.Err
	}
	if err != nil {
		return err
	}
	return p.Err()
}
