package cmd

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// process is a child kts process serving at url.
type process struct {
	url string
	// unaudited is the URL of a server's audit-off listener (kts-bench
	// server --bench-unaudited-listen, the benchmark build's), announced
	// before url.
	unaudited string
	cmd       *exec.Cmd
	exited    chan struct{} // closed when the process has ended
}

// stop asks the process to shut down (SIGINT) and waits for it, killing it
// after 15 s.
func (p *process) stop() {
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// startChild runs kts with args and waits for it to print "listening ADDR".
func startChild(ctx context.Context, args ...string) (*process, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if addr, ok := strings.CutPrefix(sc.Text(), "unaudited "); ok {
			p.unaudited = "https://" + addr
			continue
		}
		if addr, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
			p.url = "https://" + addr
			go func() {
				io.Copy(io.Discard, stdout)
				cmd.Wait()
				close(p.exited)
			}()
			return p, nil
		}
	}
	cmd.Wait()
	return nil, fmt.Errorf("kts %s exited before serving", strings.Join(args, " "))
}
