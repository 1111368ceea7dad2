package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/switchyard-mesh/switchyard/services/kit/rawconn"
)

// TestCountedConnPassesTheHoldOn: upstream connections are counted, and
// the count's wrapper must not hide the raw connection's HoldWrites from
// the HTTP/1.1 transport (one system call per upstream exchange).
func TestCountedConnPassesTheHoldOn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	raw, err := rawconn.DialContext(context.Background(), &net.Dialer{}, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	released := false
	c := &countedConn{Conn: raw, release: func() { released = true }}
	defer c.Close()

	c.HoldWrites()
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	peer.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := peer.Read(make([]byte, 4)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the peer read before the Read that sends the held write: %v", err)
	}
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	go func() {
		b := make([]byte, 4)
		if _, err := io.ReadFull(peer, b); err == nil {
			peer.Write([]byte("pong"))
		}
	}()
	b := make([]byte, 4)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "pong" {
		t.Fatalf("Read = %q, %v; want the reply to the held write", b, err)
	}
	c.Close()
	if !released {
		t.Fatal("Close did not release the connection's count")
	}
}
