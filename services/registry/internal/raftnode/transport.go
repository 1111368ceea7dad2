package raftnode

import (
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// StreamLayer carries Raft RPCs over mutual TLS. Both configurations must
// authorize only registry peers (mtls.RegistryID): a node that cannot
// prove it is a registry can neither join nor vote nor feed entries.
type StreamLayer struct {
	ln        net.Listener
	advertise net.Addr
	server    *tls.Config
	client    *tls.Config
	dial      DialFunc
}

// DialFunc opens a TCP connection to a peer's Raft address.
type DialFunc func(address string, timeout time.Duration) (net.Conn, error)

func dialTCP(address string, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", address, timeout)
}

var _ raft.StreamLayer = (*StreamLayer)(nil)

// handshakeTimeout bounds a TLS handshake on the Raft port.
const handshakeTimeout = 5 * time.Second

// NewStreamLayer wraps a TCP listener. advertise is the address other nodes
// dial; nil uses the listener's address. dial opens connections to peers;
// nil dials TCP directly (tests pass one they can cut to partition a node).
func NewStreamLayer(ln net.Listener, advertise net.Addr, server, client *tls.Config, dial DialFunc) *StreamLayer {
	if advertise == nil {
		advertise = ln.Addr()
	}
	if dial == nil {
		dial = dialTCP
	}
	return &StreamLayer{ln: ln, advertise: advertise, server: server, client: client, dial: dial}
}

// Accept returns the next connection. The TLS handshake runs on the
// connection's first read or write, in the transport's per-connection
// goroutine, so one slow peer does not hold up the others.
func (s *StreamLayer) Accept() (net.Conn, error) {
	c, err := s.ln.Accept()
	if err != nil {
		return nil, err
	}
	return &handshakingConn{Conn: tls.Server(c, s.server)}, nil
}

// Close stops the listener.
func (s *StreamLayer) Close() error { return s.ln.Close() }

// Addr is the advertised address.
func (s *StreamLayer) Addr() net.Addr { return s.advertise }

// Dial connects to a peer and completes the handshake, so an unauthorized
// peer is refused before any RPC is sent.
func (s *StreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c, err := s.dial(string(address), timeout)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(c, s.client)
	_ = tc.SetDeadline(time.Now().Add(min(timeout, handshakeTimeout)))
	if err := tc.Handshake(); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("raft tls handshake with %s: %w", address, err)
	}
	_ = tc.SetDeadline(time.Time{})
	return tc, nil
}

// handshakingConn completes the server-side handshake, with a deadline,
// before the first byte moves.
type handshakingConn struct {
	*tls.Conn
	once sync.Once
	err  error
}

func (c *handshakingConn) handshake() error {
	c.once.Do(func() {
		_ = c.Conn.SetDeadline(time.Now().Add(handshakeTimeout))
		if c.err = c.Conn.Handshake(); c.err != nil {
			c.err = fmt.Errorf("raft tls handshake with %s: %w", c.RemoteAddr(), c.err)
			_ = c.Conn.Close()
			return
		}
		_ = c.Conn.SetDeadline(time.Time{})
	})
	return c.err
}

func (c *handshakingConn) Read(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *handshakingConn) Write(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}
