package rawconn_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-mesh/switchyard/services/kit/rawconn"
)

// pair returns a dialed and an accepted connection, both wrapped.
func pair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := rawconn.Listener{Listener: ln}.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	client, err = rawconn.DialContext(context.Background(), &net.Dialer{}, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	t.Cleanup(func() { client.Close(); server.Close() })
	for _, c := range []net.Conn{client, server} {
		if _, ok := c.(*rawconn.Conn); !ok {
			t.Fatalf("got %T, want *rawconn.Conn", c)
		}
	}
	return client, server
}

func TestLargeWriteCompletesThroughAFullSendBuffer(t *testing.T) {
	client, server := pair(t)
	want := make([]byte, 16<<20) // far beyond the socket buffers: the writer must wait in the poller
	_, _ = rand.Read(want)
	done := make(chan error, 1)
	go func() {
		n, err := client.Write(want)
		if err == nil && n != len(want) {
			err = io.ErrShortWrite
		}
		done <- err
		client.(*rawconn.Conn).CloseWrite()
	}()
	time.Sleep(50 * time.Millisecond) // let the send buffer fill before reading
	got, err := io.ReadAll(server)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes that differ from the %d written", len(got), len(want))
	}
}

func TestReadReturnsEOFWhenThePeerCloses(t *testing.T) {
	client, server := pair(t)
	if _, err := client.Write([]byte("bye")); err != nil {
		t.Fatal(err)
	}
	client.Close()
	got, err := io.ReadAll(server)
	if err != nil || string(got) != "bye" {
		t.Fatalf("ReadAll = %q, %v; want \"bye\", nil", got, err)
	}
	if n, err := server.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("Read after EOF = %d, %v", n, err)
	}
}

func TestReadDeadlineIsATimeout(t *testing.T) {
	_, server := pair(t)
	if err := server.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	_, err := server.Read(make([]byte, 1))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past the deadline = %v; want a net.Error timeout", err)
	}
	// A deadline in the past wakes a reader already waiting (net/http's
	// background read is stopped this way).
	server.SetReadDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() { _, err := server.Read(make([]byte, 1)); errc <- err }()
	time.Sleep(20 * time.Millisecond)
	server.SetReadDeadline(time.Unix(1, 0))
	select {
	case err := <-errc:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("woken Read = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a deadline in the past did not wake the waiting Read")
	}
}

func TestWriteToAResetConnectionFails(t *testing.T) {
	client, server := pair(t)
	server.(*rawconn.Conn).SetLinger(0) // close with RST
	server.Close()
	var err error
	for range 100 { // the first writes may still be accepted before the RST arrives
		if _, err = client.Write(make([]byte, 64<<10)); err != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "write" || !(errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)) {
		t.Fatalf("Write after reset = %v; want a write *net.OpError with ECONNRESET or EPIPE", err)
	}
}

func TestCloseWakesAWaitingRead(t *testing.T) {
	_, server := pair(t)
	errc := make(chan error, 1)
	go func() { _, err := server.Read(make([]byte, 1)); errc <- err }()
	time.Sleep(20 * time.Millisecond)
	server.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read on a closed conn = %v; want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake the waiting Read")
	}
}

func TestWrapLeavesOtherConnectionsAlone(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if got := rawconn.Wrap(a); got != a {
		t.Fatalf("Wrap(pipe) = %T, want the pipe itself", got)
	}
}

func TestZeroLengthReadAndWrite(t *testing.T) {
	client, server := pair(t)
	if n, err := server.Read(nil); n != 0 || err != nil {
		t.Fatalf("Read(nil) = %d, %v", n, err)
	}
	if n, err := client.Write(nil); n != 0 || err != nil {
		t.Fatalf("Write(nil) = %d, %v", n, err)
	}
}

// TestReadAndWriteDoNotAllocate: a proxy makes several of these calls per
// request; each allocation there is garbage at the request rate.
func TestReadAndWriteDoNotAllocate(t *testing.T) {
	client, server := pair(t)
	out, in := []byte("ping"), make([]byte, 16)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := client.Write(out); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(server, in[:len(out)]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per write and read, want 0", allocs)
	}
}

func TestHeldWritesAreSentByTheNextRead(t *testing.T) {
	client, server := pair(t)
	c := client.(*rawconn.Conn)
	c.HoldWrites()
	if n, err := c.Write([]byte("pi")); n != 2 || err != nil {
		t.Fatalf("held Write = %d, %v", n, err)
	}
	if _, err := c.Write([]byte("ng")); err != nil {
		t.Fatal(err)
	}
	server.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, err := server.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the peer read %d bytes (%v) before the holder's Read; want none", n, err)
	}
	server.SetReadDeadline(time.Time{})
	type result struct {
		s   string
		err error
	}
	reply := make(chan result, 1)
	go func() {
		b := make([]byte, 8)
		n, err := c.Read(b)
		reply <- result{string(b[:n]), err}
	}()
	got := make([]byte, 4)
	if _, err := io.ReadFull(server, got); err != nil || string(got) != "ping" {
		t.Fatalf("the peer read %q, %v; want \"ping\"", got, err)
	}
	if _, err := server.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	if r := <-reply; r.err != nil || r.s != "pong" {
		t.Fatalf("holder's Read = %q, %v; want \"pong\"", r.s, r.err)
	}
	// The hold ended with that Read: the next write goes out at once.
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	server.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(server, got[:1]); err != nil || got[0] != 'x' {
		t.Fatalf("unheld write: the peer read %q, %v", got[:1], err)
	}
}

// TestWriteWhileTheHeldReadWaits: a write during the wait for the reply is
// not held back until the reply comes, and follows the held bytes.
func TestWriteWhileTheHeldReadWaits(t *testing.T) {
	client, server := pair(t)
	c := client.(*rawconn.Conn)
	c.HoldWrites()
	c.Write([]byte("a"))
	reply := make(chan error, 1)
	go func() {
		b := make([]byte, 1)
		_, err := io.ReadFull(c, b)
		reply <- err
	}()
	server.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, 1)
	if _, err := io.ReadFull(server, got); err != nil || got[0] != 'a' {
		t.Fatalf("the peer read %q, %v; want the held byte", got, err)
	}
	written := make(chan error, 1)
	go func() { _, err := c.Write([]byte("b")); written <- err }()
	if _, err := io.ReadFull(server, got); err != nil || got[0] != 'b' {
		t.Fatalf("the peer read %q, %v; want the write made during the wait", got, err)
	}
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	server.Write([]byte("r"))
	if err := <-reply; err != nil {
		t.Fatal(err)
	}
}

// TestHeldWriteToAClosedPeerFails is the pooled connection the server
// closed while it was idle: the FIN arrived before the hold, so the Read
// must be woken by what the send provokes (a reset), not wait for a reply.
func TestHeldWriteToAClosedPeerFails(t *testing.T) {
	client, server := pair(t)
	server.Close()
	time.Sleep(20 * time.Millisecond) // the FIN arrives and the poller sees it
	c := client.(*rawconn.Conn)
	c.HoldWrites()
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	_, err := c.Read(make([]byte, 64))
	t.Logf("Read = %v after %v", err, time.Since(start))
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read after a held write to a closed peer = %v; want EOF or a reset, at once", err)
	}
}

func TestHoldingMoreThanTheLimitSendsAtOnce(t *testing.T) {
	client, server := pair(t)
	c := client.(*rawconn.Conn)
	c.HoldWrites()
	first, second := bytes.Repeat([]byte("a"), 10<<10), bytes.Repeat([]byte("b"), 10<<10)
	if _, err := c.Write(first); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(second); err != nil { // 20 KiB > 16 KiB
		t.Fatal(err)
	}
	server.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, len(first)+len(second))
	if _, err := io.ReadFull(server, got); err != nil {
		t.Fatalf("the peer read %v; want both writes without a Read by the holder", err)
	}
	if !bytes.Equal(got, append(first, second...)) {
		t.Fatal("bytes out of order")
	}
}

// TestHeldWritesThroughAFullSendBuffer: the send that the Read starts
// cannot finish at once; the rest goes out by an ordinary write, then the
// reply is read.
func TestHeldWritesThroughAFullSendBuffer(t *testing.T) {
	client, server := pair(t)
	c := client.(*rawconn.Conn)
	if err := c.SetWriteBuffer(4 << 10); err != nil {
		t.Fatal(err)
	}
	if err := server.(*rawconn.Conn).SetReadBuffer(4 << 10); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 16<<10)
	_, _ = rand.Read(want)
	c.HoldWrites()
	if _, err := c.Write(want); err != nil {
		t.Fatal(err)
	}
	reply := make(chan error, 1)
	go func() {
		b := make([]byte, 2)
		_, err := io.ReadFull(c, b)
		if err == nil && string(b) != "ok" {
			err = errors.New("wrong reply " + string(b))
		}
		reply <- err
	}()
	time.Sleep(50 * time.Millisecond) // the send buffer fills before the peer reads
	got := make([]byte, len(want))
	if _, err := io.ReadFull(server, got); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("the peer read %v, equal %v", err, bytes.Equal(got, want))
	}
	server.Write([]byte("ok"))
	if err := <-reply; err != nil {
		t.Fatal(err)
	}
}

func TestHeldWritesAndTheReadDeadline(t *testing.T) {
	client, server := pair(t)
	c := client.(*rawconn.Conn)
	c.HoldWrites()
	c.Write([]byte("ping"))
	c.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	if _, err := c.Read(make([]byte, 4)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read with no reply = %v; want the deadline", err)
	}
	server.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, 4)
	if _, err := io.ReadFull(server, got); err != nil || string(got) != "ping" {
		t.Fatalf("the peer read %q, %v: the held bytes were sent before the wait", got, err)
	}
}

func TestHeldExchangeDoesNotAllocate(t *testing.T) {
	client, server := pair(t)
	go func() { // echo
		b := make([]byte, 4)
		for {
			if _, err := io.ReadFull(server, b); err != nil {
				return
			}
			if _, err := server.Write(b); err != nil {
				return
			}
		}
	}()
	c := client.(*rawconn.Conn)
	out, in := []byte("ping"), make([]byte, 4)
	exchange := func() {
		c.HoldWrites()
		if _, err := c.Write(out); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, in); err != nil {
			t.Fatal(err)
		}
	}
	exchange() // the held buffer is made once per connection
	if allocs := testing.AllocsPerRun(100, exchange); allocs != 0 {
		t.Fatalf("%v allocations per held exchange, want 0", allocs)
	}
}
