//go:build unix

package pgtest

import (
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

// watchdogScript waits for the test binary ($2) to exit, then shuts down
// (immediate mode) any PostgreSQL server still running from a data
// directory under $1 and removes $1. Main stops the watchdog before it
// matters; it only acts when the binary dies without cleaning up.
const watchdogScript = `
root=$1 parent=$2
while kill -0 "$parent" 2>/dev/null; do sleep 1; done
pids=
for f in "$root"/*/data/postmaster.pid; do
	[ -f "$f" ] || continue
	pid=$(head -n 1 "$f")
	case $(cat "/proc/$pid/comm" 2>/dev/null) in
	*postgres*) kill -QUIT "$pid" 2>/dev/null && pids="$pids $pid" ;;
	esac
done
n=0
for pid in $pids; do
	while kill -0 "$pid" 2>/dev/null && [ $n -lt 100 ]; do sleep 0.1; n=$((n+1)); done
done
rm -rf "$root"
`

// startWatchdog starts the watchdog for root and returns a function that
// stops it. The watchdog has its own process group, so an interrupt from
// the terminal does not kill it before it has cleaned up, and no stdio, so
// `go test` does not wait for it.
func startWatchdog(root string) (stop func(), err error) {
	cmd := exec.Command("/bin/sh", "-c", watchdogScript, "pgtest-watchdog", root, strconv.Itoa(os.Getpid()))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}, nil
}

// signalQuit asks the postmaster pid for an immediate shutdown.
func signalQuit(pid int) error { return syscall.Kill(pid, syscall.SIGQUIT) }
