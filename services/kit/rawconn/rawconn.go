// Package rawconn wraps TCP connections so that reads and writes on their
// non-blocking sockets are made as raw system calls, for proxies that run
// on one core (GOMAXPROCS=1).
//
// Go's ordinary socket read and write enter the scheduler's "in syscall"
// state. With a single P, the runtime's monitor thread (sysmon) takes that
// P away from any call it sees still running after one tick (20 µs) and
// hands it to another OS thread, and the first such call after an idle gap
// wakes the monitor itself. A loopback TCP write under a VM often lasts
// longer than a tick (the kernel delivers the segment to the receiver in
// the same call), so at a sidecar's request rates every request paid about
// three extra OS context switches: 5.5 per request per proxy against
// nginx's 2, which was most of the CPU difference between the two.
//
// The sockets are non-blocking (the runtime's poller waits for readiness),
// so a raw call never blocks; it only keeps the P while the kernel copies.
// Waiting for readiness, deadlines and closing still go through the
// runtime poller via syscall.RawConn, so the wrapped connection behaves
// like the original one in every other respect.
package rawconn

import (
	"context"
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// Conn is a *net.TCPConn whose Read and Write use raw system calls.
type Conn struct {
	*net.TCPConn
	rc syscall.RawConn
}

// Wrap returns c with raw reads and writes when it is a TCP connection, and
// c itself otherwise.
func Wrap(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	return &Conn{TCPConn: tc, rc: rc}
}

// Read reads up to len(p) bytes, waiting in the runtime poller while the
// socket has nothing to read.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n uintptr
	var errno syscall.Errno
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			n, _, errno = syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			if errno != syscall.EINTR {
				return errno != syscall.EAGAIN
			}
		}
	})
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, c.opError("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	return int(n), nil
}

// Write writes all of p, waiting in the runtime poller while the socket's
// send buffer is full.
func (c *Conn) Write(p []byte) (int, error) {
	written := 0
	for written < len(p) {
		var n uintptr
		var errno syscall.Errno
		err := c.rc.Write(func(fd uintptr) bool {
			for {
				n, _, errno = syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[written])), uintptr(len(p)-written))
				if errno != syscall.EINTR {
					return errno != syscall.EAGAIN
				}
			}
		})
		if err != nil {
			return written, err
		}
		if errno != 0 {
			return written, c.opError("write", errno)
		}
		written += int(n)
	}
	return written, nil
}

func (c *Conn) opError(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError(op, errno)}
}

// Listener wraps every accepted TCP connection with Wrap.
type Listener struct{ net.Listener }

// Accept waits for and returns the next connection, wrapped.
func (l Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return Wrap(c), nil
}

// DialContext dials with d and wraps the connection.
func DialContext(ctx context.Context, d *net.Dialer, network, addr string) (net.Conn, error) {
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return Wrap(c), nil
}
