//go:build !unix

package pg

import (
	"errors"
	"os"
	"syscall"
)

var errUnsupported = errors.New("running PostgreSQL is supported on Unix systems only")

func (i *Instance) account() (*account, error) { return nil, errUnsupported }

func (a *account) sysProcAttr() *syscall.SysProcAttr { return nil }

func (a *account) checkReach(string) error { return nil }

func (a *account) owns(os.FileInfo) bool { return true }

func (i *Instance) checkTLSFiles(*account) error { return nil }

func processAlive(pid int) bool {
	_, err := os.FindProcess(pid)
	return pid > 0 && err == nil
}

// PrepareStateDir has nothing to do where PostgreSQL does not run.
func (i *Instance) PrepareStateDir(string) (string, error) { return "", nil }
