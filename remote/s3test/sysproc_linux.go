package s3test

import "syscall"

// sysProcAttr makes the server die with the test process, so that a test
// binary killed on timeout leaves no server behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
