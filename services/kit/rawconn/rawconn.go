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
	"sync"
	"syscall"
	"unsafe"
)

// Conn is a *net.TCPConn whose Read and Write use raw system calls.
type Conn struct {
	*net.TCPConn
	rc   syscall.RawConn
	r, w rawOp
}

// rawOp is one direction's system call, set up once per connection: a
// closure capturing each call's buffer and results would cost three
// allocations per read or write.
type rawOp struct {
	mu    sync.Mutex // net.Conn allows concurrent calls; each needs its own results
	trap  uintptr    // SYS_READ or SYS_WRITE
	buf   []byte
	n     uintptr
	errno syscall.Errno
	fn    func(fd uintptr) bool // o.call, bound once
}

// call makes the system call; false asks the poller to wait for readiness.
func (o *rawOp) call(fd uintptr) bool {
	for {
		o.n, _, o.errno = syscall.RawSyscall(o.trap, fd, uintptr(unsafe.Pointer(&o.buf[0])), uintptr(len(o.buf)))
		if o.errno != syscall.EINTR {
			return o.errno != syscall.EAGAIN
		}
	}
}

// do runs one call on buf through the poller (wait, op is the poller's
// RawConn.Read or RawConn.Write).
func (o *rawOp) do(wait func(func(uintptr) bool) error, buf []byte) (uintptr, syscall.Errno, error) {
	o.mu.Lock()
	o.buf = buf
	err := wait(o.fn)
	n, errno := o.n, o.errno
	o.buf = nil
	o.mu.Unlock()
	return n, errno, err
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
	rw := &Conn{TCPConn: tc, rc: rc}
	rw.r.trap, rw.r.fn = syscall.SYS_READ, rw.r.call
	rw.w.trap, rw.w.fn = syscall.SYS_WRITE, rw.w.call
	return rw
}

// Read reads up to len(p) bytes, waiting in the runtime poller while the
// socket has nothing to read.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, errno, err := c.r.do(c.rc.Read, p)
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
		n, errno, err := c.w.do(c.rc.Write, p[written:])
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
