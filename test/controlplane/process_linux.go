package controlplane

import "syscall"

// sysProcAttr puts a process in a process group of its own and has the
// kernel kill it when the test binary dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
