//go:build !linux

package controlplane

import "syscall"

// sysProcAttr puts a process in a process group of its own.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
