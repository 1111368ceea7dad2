package devrun

import "syscall"

// childAttr puts a child in its own process group, so a Ctrl-C in the
// terminal reaches only the runner, which then stops processes in order;
// and asks the kernel to SIGTERM the child if the runner dies without
// stopping it (kill -9), so no orphan keeps holding the mesh's ports.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
