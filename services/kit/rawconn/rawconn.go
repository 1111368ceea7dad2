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
//
// A client making request-response exchanges can also hold a request's
// writes for the read of its reply (HoldWrites): the read then sends them
// and waits for the reply within one call to the poller, without the read
// that an ordinary Read tries first, which right after sending a request
// finds nothing (EAGAIN). That read was one of an upstream exchange's
// three system calls (write, empty read, read), and a system call costs
// 1.1–1.4 µs on the VMs the mesh is benchmarked on.
package rawconn

import (
	"context"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// maxHeld bounds the bytes held for the next Read: past it they are sent
// at once and the hold ends (a request is held whole, a stream is not).
const maxHeld = 16 << 10

// Conn is a *net.TCPConn whose Read and Write use raw system calls.
type Conn struct {
	*net.TCPConn
	rc   syscall.RawConn
	r, w rawOp
	// Writes held for the next Read (HoldWrites): the bytes, under hmu
	// until they are sent; holding, read without the lock first; x, the
	// Read that sends them, under r.mu.
	holding atomic.Bool
	hmu     sync.Mutex
	held    []byte
	x       exchange
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
	rw.x.fn = rw.sendThenRead
	return rw
}

// Read reads up to len(p) bytes, waiting in the runtime poller while the
// socket has nothing to read.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if c.holding.Load() {
		if n, done, err := c.sendHeld(p); done {
			return n, err
		}
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
// send buffer is full; while writes are held, it keeps a copy of p for the
// next Read to send.
func (c *Conn) Write(p []byte) (int, error) {
	if c.holding.Load() {
		c.hmu.Lock()
		if c.holding.Load() {
			if len(c.held)+len(p) <= maxHeld {
				c.held = append(c.held, p...)
				c.hmu.Unlock()
				return len(p), nil
			}
			// Too much to hold: what is held goes first, then p.
			c.holding.Store(false)
			_, err := c.write(c.held)
			c.held = c.held[:0]
			if err != nil {
				c.hmu.Unlock()
				return 0, err
			}
		}
		c.hmu.Unlock()
	}
	return c.write(p)
}

func (c *Conn) write(p []byte) (int, error) {
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

// HoldWrites holds the writes that follow, up to 16 KiB, until the next
// Read, which sends them and then waits for the reply without first trying
// a read that would find nothing yet. Only for a peer that sends nothing
// unasked, such as an HTTP/1.1 server between responses: bytes that arrived
// before the Read may wait there until more arrive (a reply, or the reset
// that answers a request sent to a closed peer, wakes it). A Write made
// while that Read waits for the reply goes out at once, after the held
// bytes. Close discards what is held.
func (c *Conn) HoldWrites() { c.holding.Store(true) }

// sendHeld sends the held bytes and reads the reply into p in one call to
// the poller. done is false when the read is still to be made as usual:
// nothing was held any more, or the send buffer was full and the rest was
// sent by an ordinary write.
func (c *Conn) sendHeld(p []byte) (n int, done bool, err error) {
	c.hmu.Lock()
	if !c.holding.Load() {
		c.hmu.Unlock()
		return 0, false, nil
	}
	c.holding.Store(false)
	c.r.mu.Lock() // x is this read's
	defer c.r.mu.Unlock()
	x := &c.x
	x.out, x.in, x.sent, x.werrno, x.n, x.errno = c.held, p, false, 0, 0, 0
	err = c.rc.Read(x.fn) // sendThenRead unlocks c.hmu once the held bytes are sent
	x.in = nil
	if !x.sent || x.werrno != 0 {
		// Not sent (the poller refused the read: closed, or past the
		// deadline), or not all sent: c.hmu is still locked.
		if x.werrno == syscall.EAGAIN {
			_, err = c.write(x.out)
		}
		c.held, x.out = c.held[:0], nil
		c.hmu.Unlock()
		switch {
		case err != nil:
			return 0, true, err
		case x.werrno == syscall.EAGAIN:
			return 0, false, nil
		}
		return 0, true, c.opError("write", x.werrno)
	}
	switch {
	case err != nil:
		return 0, true, err
	case x.errno != 0:
		return 0, true, c.opError("read", x.errno)
	case x.n == 0:
		return 0, true, io.EOF
	}
	return int(x.n), true, nil
}

// exchange is sendHeld's state and results, its poller callback bound
// once per connection like rawOp's.
type exchange struct {
	out, in []byte
	sent    bool
	werrno  syscall.Errno // the send's error; EAGAIN: out is what is left to send
	n       uintptr
	errno   syscall.Errno
	fn      func(fd uintptr) bool // c.sendThenRead
}

// sendThenRead sends the held bytes on its first call and asks the poller
// to wait for the reply; later calls read it.
func (c *Conn) sendThenRead(fd uintptr) bool {
	x := &c.x
	if !x.sent {
		x.sent = true
		for len(x.out) > 0 {
			n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&x.out[0])), uintptr(len(x.out)))
			switch errno {
			case 0:
				x.out = x.out[n:]
			case syscall.EINTR:
			default:
				x.werrno = errno
				return true
			}
		}
		c.held, x.out = c.held[:0], nil
		c.hmu.Unlock() // sent: later writes may go
		return false
	}
	for {
		x.n, _, x.errno = syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&x.in[0])), uintptr(len(x.in)))
		if x.errno != syscall.EINTR {
			return x.errno != syscall.EAGAIN
		}
	}
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
