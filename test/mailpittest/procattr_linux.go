package mailpittest

import "syscall"

// procAttr has mailpit killed should the test binary die without cleaning up.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
