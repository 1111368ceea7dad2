package harness

import "syscall"

// sysProcAttr makes the kernel kill a started process if the test binary dies
// without cleaning up (a panic, a timeout, SIGKILL), so no process outlives
// its test run.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
