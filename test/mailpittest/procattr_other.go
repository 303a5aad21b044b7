//go:build !linux

package mailpittest

import "syscall"

func procAttr() *syscall.SysProcAttr { return nil }
