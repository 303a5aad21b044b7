package pg

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
)

// ExitStatus is the exit status a foreground PostgreSQL's failure becomes
// (`kts db run`): its exit code, or 128 + the signal that ended it, never
// 0. failed is false when err is not PostgreSQL exiting (nil, or an error
// of its own).
func ExitStatus(err error) (code int, failed bool) {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return 0, false
	}
	code = ee.ExitCode()
	if ws, ok := ee.Sys().(interface {
		Signaled() bool
		Signal() syscall.Signal
	}); ok && ws.Signaled() {
		code = 128 + int(ws.Signal())
	}
	if code <= 0 {
		code = 1
	}
	return code, true
}

// RunForeground is Run as a container's process runs it (kts db run): until
// ctx is done (SIGTERM or SIGINT), its log on log, a SIGHUP to this process
// making PostgreSQL re-read its configuration.
func (i *Instance) RunForeground(ctx context.Context, log io.Writer) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan struct{})
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return i.Run(ctx, RunOptions{Log: log, Reload: reload})
}
