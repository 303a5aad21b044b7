package pg

import (
	"errors"
	"os/exec"
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
