//go:build unix && !linux

package devrun

import "syscall"

// childAttr puts a child in its own process group, so a Ctrl-C in the
// terminal reaches only the runner, which then stops processes in order.
// (Only Linux can also tie the child's life to the runner's.)
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
