// Package h1 is the sidecar's HTTP/1.1 engine: a client (Transport) with
// a pool of keep-alive connections per upstream address, and a server
// (Server) that hands h2 connections to net/http. Both do a request's
// reading and writing in one goroutine: the caller's for the client, the
// connection's for the server.
//
// net/http's Transport gives every connection a read-loop and a write-loop
// goroutine and hands each request and response between them over
// channels, so that it can notice a server closing an idle connection and
// write a request body while the response arrives; its server starts a
// background read on every request to notice the client leaving. A proxy
// calling its upstreams one request at a time per connection needs
// neither, and in the sidecar pair benchmark those hand-offs and the reads
// that park them were about a quarter of the sidecar's CPU per request.
// Both keep net/http's types, so the rest of the proxy does not know which
// engine serves it, and its parsers (ReadRequest, ReadResponse); requests
// and response heads are written by this package (wire.go), framed as
// net/http frames them (a differential test and fuzz test hold the two
// together) but without its per-request fmt calls and header sorting.
//
// What the client does differently: a request body is written completely
// before the response is read (an upstream answering early and closing
// gets an error, not its early answer); a connection the server closed
// while idle is found when it is next used, and the request is sent again
// on a new connection when it can be replayed (no body, or GetBody set).
package h1

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"
)

// Transport is an http.RoundTripper for HTTP/1.1 upstreams.
type Transport struct {
	// DialContext opens a TCP connection to addr.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// TLS, when set, is the client TLS config for https requests; its
	// NextProtos should offer only "http/1.1".
	TLS *tls.Config
	// MaxIdlePerHost bounds the idle connections kept per address (default 256).
	MaxIdlePerHost int
	// IdleTimeout closes connections idle for longer (default 90s), by a
	// sweep that runs while any is idle: within twice that at most.
	IdleTimeout time.Duration
	// MaxConnectionDuration, when set, retires connections this old: one
	// in use is closed after its response, an idle one is not used again
	// (Envoy's max_connection_duration for upstream connections).
	MaxConnectionDuration time.Duration
	// HandshakeTimeout bounds a TLS handshake (default 10s).
	HandshakeTimeout time.Duration
	// MaxDialsPerHost bounds the connections being opened to one address
	// at a time (default 4). A request that finds no idle connection waits
	// for whichever comes first, a new one or one another request gives
	// back: a burst is then served by the pool as it frees up instead of
	// paying an mTLS handshake per request.
	MaxDialsPerHost int
	// ResumeSessions keeps a TLS session cache per address, so that a new
	// connection to a host resumes a session (no certificate signatures
	// or chain verification) instead of a full handshake. Per address:
	// a session ticket is the server's own, and one cache for every host
	// behind the same ServerName would offer each host tickets that only
	// another can decrypt. TLS must verify resumed sessions itself in
	// VerifyConnection (Go skips VerifyPeerCertificate on resumption). A
	// session the server turns down (its alert comes with the first read)
	// is forgotten and the request sent again over a full handshake.
	ResumeSessions bool
	// OnHandshake, if set, is told of each completed TLS handshake and
	// whether it resumed a session.
	OnHandshake func(resumed bool)

	mu      sync.Mutex
	hosts   map[poolKey]*hostConns
	reaping bool // a sweep of expired idle connections is scheduled
	now     func() time.Time
}

// hostConns are one address's idle connections, the requests waiting for
// a connection (oldest first) and the number of dials in flight.
type hostConns struct {
	addr    string
	useTLS  bool
	tls     *tls.Config // TLS with this address's ServerName and session cache
	used    time.Time   // last taken from or given back to
	idle    []*conn
	waiters []chan dialResult
	dialing int
}

type dialResult struct {
	c      *conn
	reused bool
	err    error
}

var _ http.RoundTripper = (*Transport)(nil)

// conn is one upstream connection with its buffers.
type conn struct {
	t      *Transport
	useTLS bool
	addr   string
	nc     net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	born   time.Time // when it was established
	idleAt time.Time
	// deadline: a request's deadline is set on nc. It stays while the
	// connection is idle (nothing reads it then) and the next exchange
	// replaces or clears it: one timer update per request instead of two.
	deadline bool
	// sessions, for a connection that resumed a TLS session: its host's
	// cache, to forget the session if the server turns it down.
	sessions *tls.Config
	// hold, when the TCP connection (under TLS, if any) can hold a
	// request's writes for the read of its response: see roundTrip.
	hold writeHolder
}

// writeHolder is a connection that can keep what is written next for its
// next read to send (kit/rawconn.Conn): the read then waits for the reply
// without first trying a read that finds nothing, one system call less
// per exchange.
type writeHolder interface{ HoldWrites() }

// errServerClosedIdle marks a reused connection that failed before any
// byte of a response arrived: the server had closed it while idle.
var errServerClosedIdle = errors.New("h1: server closed idle connection")

// RoundTrip sends req and returns its response; the connection goes back
// to the pool when the body has been read to the end and closed.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.RoundTripUntil(req, time.Time{})
}

// RoundTripUntil is RoundTrip with a deadline (none when zero) for the
// whole exchange: the wait for a connection, the request and the response
// body. The connection's own deadline enforces it, which a context with a
// deadline would do at the cost of a timer, a context and a copy of the
// request per call. Past it, the call or a body read fails with an error
// that wraps os.ErrDeadlineExceeded.
func (t *Transport) RoundTripUntil(req *http.Request, deadline time.Time) (*http.Response, error) {
	if req.URL == nil || req.URL.Host == "" {
		return nil, errors.New("h1: request has no URL host")
	}
	if req.URL.Scheme == "https" && t.TLS == nil {
		return nil, errors.New("h1: https request but the transport has no TLS config")
	}
	ctx := req.Context()
	for attempt := 0; ; attempt++ {
		c, reused, err := t.getConn(ctx, deadline, req.URL.Host, req.URL.Scheme == "https")
		if err != nil {
			closeBody(req)
			return nil, err
		}
		resp, err := c.roundTrip(req, reused, deadline)
		if err == nil {
			return resp, nil
		}
		c.nc.Close()
		if errors.Is(err, errServerClosedIdle) && attempt == 0 {
			if again, ok := rewound(req); ok {
				req = again
				continue
			}
		}
		closeBody(req)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("h1: %s %s: %w", req.Method, req.URL.Host, context.Cause(ctx))
		}
		return nil, err
	}
}

// rewound is req ready to be sent again, with a fresh body; false if its
// body cannot be replayed.
func rewound(req *http.Request) (*http.Request, bool) {
	if req.Body == nil || req.Body == http.NoBody {
		return req, true
	}
	if req.GetBody == nil {
		return nil, false
	}
	b, err := req.GetBody()
	if err != nil {
		return nil, false
	}
	again := *req
	again.Body = b
	return &again, true
}

func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

func (c *conn) roundTrip(req *http.Request, reused bool, deadline time.Time) (*http.Response, error) {
	// Before the cancellation watch below, whose past deadline must win.
	// The previous exchange's deadline is still set (release leaves it):
	// replaced, or cleared when this one has none.
	switch {
	case !deadline.IsZero():
		_ = c.nc.SetDeadline(deadline)
		c.deadline = true
	case c.deadline:
		_ = c.nc.SetDeadline(time.Time{})
		c.deadline = false
	}
	// A cancelled request interrupts whatever I/O is in progress, here or
	// while the caller reads the body.
	w := watchCancel(req.Context(), c)
	// A request written without waiting on anything (no body, or one in
	// memory) is held for the read of its response, which sends it. Not a
	// streamed body: each piece must go out as it comes. An HTTP/1.1 server
	// sends nothing unasked, and one that closed the connection while idle
	// answers the request with a reset, which wakes the read.
	if c.hold != nil && (req.Body == nil || req.Body == http.NoBody || req.GetBody != nil) {
		c.hold.HoldWrites()
	}
	if err := writeRequest(c.bw, req); err != nil {
		w.stop()
		return nil, c.staleOr(reused, false, fmt.Errorf("h1: write request to %s: %w", c.addr, err))
	}
	if err := c.bw.Flush(); err != nil {
		w.stop()
		return nil, c.staleOr(reused, false, fmt.Errorf("h1: write request to %s: %w", c.addr, err))
	}
	// Whether the server closed the connection while idle is decided by
	// the first byte alone: after it, a failure is the response's own.
	if _, err := c.br.Peek(1); err != nil {
		w.stop()
		return nil, c.staleOr(reused, true, fmt.Errorf("h1: read response from %s: %w", c.addr, err))
	}
	for {
		resp, err := http.ReadResponse(c.br, req)
		if err != nil {
			w.stop()
			return nil, fmt.Errorf("h1: read response from %s: %w", c.addr, err)
		}
		switch {
		case resp.StatusCode == http.StatusSwitchingProtocols:
			// The connection now belongs to the upgraded protocol: the
			// caller reads and writes it through the body, and closing
			// the body closes it.
			resp.Body = &upgraded{conn: c, watch: w}
			return resp, nil
		case resp.StatusCode >= 100 && resp.StatusCode < 200:
			continue // 100 Continue, 103 Early Hints: the final response follows
		}
		keep := !resp.Close && !req.Close
		if resp.Body == http.NoBody {
			c.release(keep, w)
			return resp, nil
		}
		resp.Body = &body{rc: resp.Body, conn: c, keep: keep, watch: w}
		return resp, nil
	}
}

// staleOr turns a failure on a reused connection into errServerClosedIdle
// when nothing of a response has arrived: a write failing, or the wait for
// the first byte ending with EOF or a reset.
func (c *conn) staleOr(reused, reading bool, err error) error {
	if c.sessions != nil && !reused {
		// A resumed session the server refused after our side of the
		// handshake was done (TLS 1.3 has the client finish first): the
		// server's alert comes with the first read. Forget the session,
		// or every new connection would offer it again, and send the
		// request again on a connection with a full handshake.
		c.sessions.ClientSessionCache.Put(c.sessions.ServerName, nil)
		return fmt.Errorf("%w: resumed TLS session refused: %w", errServerClosedIdle, err)
	}
	if !reused {
		return err
	}
	// A held request (see roundTrip) is written by the read: its write
	// failing is still a write failing.
	var op *net.OpError
	writing := !reading || errors.As(err, &op) && op.Op == "write"
	if writing || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err) {
		return fmt.Errorf("%w: %w", errServerClosedIdle, err)
	}
	return err
}

// release returns the connection to the pool or closes it.
func (c *conn) release(keep bool, w cancelWatch) {
	if !w.stop() && keep {
		// The request's context fired: a deadline may already be set on the
		// connection, which therefore cannot be reused.
		keep = false
	}
	if !keep {
		c.nc.Close()
		return
	}
	c.t.deliver(c, true)
}

// body is a response body; reading it to EOF gives the connection back.
type body struct {
	rc    io.ReadCloser
	conn  *conn
	keep  bool
	watch cancelWatch
	mu    sync.Mutex
	done  bool
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.finish(true)
	}
	return n, err
}

// Close before EOF closes the connection: the rest of the body is unread.
func (b *body) Close() error {
	b.finish(false)
	return nil
}

func (b *body) finish(atEOF bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return
	}
	b.done = true
	b.conn.release(atEOF && b.keep, b.watch)
}

// upgraded is the body of a 101 response: the raw connection, with what
// was already buffered read first.
type upgraded struct {
	conn  *conn
	watch cancelWatch
	once  sync.Once
}

func (u *upgraded) Read(p []byte) (int, error)  { return u.conn.br.Read(p) }
func (u *upgraded) Write(p []byte) (int, error) { return u.conn.nc.Write(p) }
func (u *upgraded) Close() error {
	u.once.Do(func() { u.watch.stop() })
	return u.conn.nc.Close()
}

// CloseWrite half-closes the upgraded connection when it can.
func (u *upgraded) CloseWrite() error {
	if cw, ok := u.conn.nc.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return u.Close()
}

// poolKey names one address's pool: a struct rather than a string built
// per request.
type poolKey struct {
	addr   string
	useTLS bool
}

// host returns the pool of addr; t.mu must be held.
func (t *Transport) host(addr string, useTLS bool) *hostConns {
	if t.hosts == nil {
		t.hosts = map[poolKey]*hostConns{}
	}
	key := poolKey{addr, useTLS}
	h := t.hosts[key]
	if h == nil {
		h = &hostConns{addr: addr, useTLS: useTLS}
		if useTLS && t.TLS != nil {
			h.tls = t.TLS
			if h.tls.ServerName == "" || t.ResumeSessions {
				h.tls = h.tls.Clone()
			}
			if h.tls.ServerName == "" { // as net/http does: the URL's host
				h.tls.ServerName, _, _ = net.SplitHostPort(addr)
			}
			if t.ResumeSessions {
				h.tls.ClientSessionCache = tls.NewLRUClientSessionCache(1)
			}
		}
		t.hosts[key] = h
	}
	return h
}

// getConn returns an idle connection, or waits for a new one or one given
// back, whichever comes first, until ctx ends or the deadline (if any)
// passes.
func (t *Transport) getConn(ctx context.Context, deadline time.Time, addr string, useTLS bool) (*conn, bool, error) {
	t.mu.Lock()
	h := t.host(addr, useTLS)
	if c := t.takeIdle(h); c != nil {
		t.mu.Unlock()
		return c, true, nil
	}
	ch := make(chan dialResult, 1)
	h.waiters = append(h.waiters, ch)
	t.startDials(h)
	t.mu.Unlock()
	var expired <-chan time.Time
	if !deadline.IsZero() {
		timer := time.NewTimer(time.Until(deadline))
		defer timer.Stop()
		expired = timer.C
	}
	var err error
	select {
	case r := <-ch:
		return r.c, r.reused, r.err
	case <-ctx.Done():
		err = context.Cause(ctx)
	case <-expired:
		err = fmt.Errorf("h1: no connection to %s before the deadline: %w", addr, os.ErrDeadlineExceeded)
	}
	t.mu.Lock()
	queued := h.removeWaiter(ch)
	t.mu.Unlock()
	if !queued { // a connection or an error was handed over meanwhile
		if r := <-ch; r.err == nil {
			t.deliver(r.c, r.reused)
		}
	}
	return nil, false, err
}

// startDials opens connections for the waiters no dial is under way for,
// up to MaxDialsPerHost at a time; t.mu must be held.
func (t *Transport) startDials(h *hostConns) {
	max := t.MaxDialsPerHost
	if max <= 0 {
		max = 4
	}
	for h.dialing < max && h.dialing < len(h.waiters) {
		h.dialing++
		go t.dial(h)
	}
}

func (t *Transport) dial(h *hostConns) {
	c, err := t.connect(h)
	t.mu.Lock()
	h.dialing--
	if err != nil {
		// The oldest waiter gets the error (a connect failure is the
		// request's answer); the others get dials of their own.
		var w chan dialResult
		if len(h.waiters) > 0 {
			w = h.popWaiter()
		}
		t.startDials(h)
		t.mu.Unlock()
		if w != nil {
			w <- dialResult{err: err}
		}
		return
	}
	t.mu.Unlock()
	t.deliver(c, false)
}

// connect dials h's address and, for https, completes the TLS handshake.
func (t *Transport) connect(h *hostConns) (*conn, error) {
	addr, useTLS := h.addr, h.useTLS
	timeout := t.HandshakeTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if !useTLS {
		nc, err := t.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		hold, _ := nc.(writeHolder)
		return &conn{t: t, addr: addr, nc: nc, br: bufio.NewReaderSize(nc, 4<<10), bw: bufio.NewWriterSize(nc, 4<<10), born: t.clock(), hold: hold}, nil
	}
	var sessions *tls.Config
	var nc net.Conn
	for attempt := 0; ; attempt++ {
		offered := h.tls.ClientSessionCache != nil && cachedSession(h.tls)
		var err error
		if nc, err = t.DialContext(ctx, "tcp", addr); err != nil {
			return nil, err
		}
		tc := tls.Client(nc, h.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			if offered && attempt == 0 && ctx.Err() == nil {
				// Our own check refused the server's resumed session (the
				// trust bundle changed since it was made, say); Go has
				// dropped the session: once more, with a full handshake.
				continue
			}
			return nil, fmt.Errorf("h1: TLS handshake with %s: %w", addr, err)
		}
		st := tc.ConnectionState()
		if t.OnHandshake != nil {
			t.OnHandshake(st.DidResume)
		}
		if st.DidResume {
			sessions = h.tls
		}
		if p := st.NegotiatedProtocol; p != "" && p != "http/1.1" {
			tc.Close()
			return nil, fmt.Errorf("h1: %s negotiated ALPN %q, want http/1.1", addr, p)
		}
		nc = tc
		break
	}
	hold, _ := nc.(*tls.Conn).NetConn().(writeHolder)
	return &conn{t: t, useTLS: true, addr: addr, nc: nc, br: bufio.NewReaderSize(nc, 4<<10), bw: bufio.NewWriterSize(nc, 4<<10), born: t.clock(), sessions: sessions, hold: hold}, nil
}

// cachedSession reports whether a handshake with cfg would offer a session.
func cachedSession(cfg *tls.Config) bool {
	_, ok := cfg.ClientSessionCache.Get(cfg.ServerName)
	return ok
}

// takeIdle pops the most recently used idle connection that has not been
// idle too long; t.mu must be held.
func (t *Transport) takeIdle(h *hostConns) *conn {
	timeout := t.idleTimeout()
	now := t.clock()
	h.used = now
	for len(h.idle) > 0 {
		c := h.idle[len(h.idle)-1]
		h.idle[len(h.idle)-1] = nil
		h.idle = h.idle[:len(h.idle)-1]
		if now.Sub(c.idleAt) > timeout || t.tooOld(c, now) {
			c.nc.Close()
			continue
		}
		return c
	}
	return nil
}

func (h *hostConns) popWaiter() chan dialResult {
	w := h.waiters[0]
	h.waiters[0] = nil
	h.waiters = h.waiters[1:]
	return w
}

func (h *hostConns) removeWaiter(ch chan dialResult) bool {
	for i, w := range h.waiters {
		if w == ch {
			h.waiters = append(h.waiters[:i], h.waiters[i+1:]...)
			return true
		}
	}
	return false
}

// deliver hands c to the oldest waiting request, or keeps it idle.
func (t *Transport) deliver(c *conn, reused bool) {
	t.mu.Lock()
	h := t.host(c.addr, c.useTLS)
	now := t.clock()
	if reused && t.tooOld(c, now) {
		// Given back after a request. (A new connection always serves
		// one, however short the maximum duration.)
		t.startDials(h) // the waiters, if any, need a new connection
		t.mu.Unlock()
		c.nc.Close()
		return
	}
	if len(h.waiters) > 0 {
		w := h.popWaiter()
		t.startDials(h) // for the waiters still left
		t.mu.Unlock()
		w <- dialResult{c: c, reused: reused}
		return
	}
	max := t.MaxIdlePerHost
	if max <= 0 {
		max = 256
	}
	if len(h.idle) >= max {
		t.mu.Unlock()
		c.nc.Close()
		return
	}
	c.idleAt = now
	h.used = now
	h.idle = append(h.idle, c)
	if !t.reaping {
		t.reaping = true
		time.AfterFunc(t.reapInterval(), t.reap)
	}
	t.mu.Unlock()
}

// reap closes the connections idle for longer than the idle timeout or
// older than MaxConnectionDuration, and forgets the addresses nothing has
// used for the idle timeout (with their TLS sessions): an endpoint gone
// from the cluster leaves no socket and no pool entry behind. It runs
// while any connection is idle.
func (t *Transport) reap() {
	timeout := t.idleTimeout()
	now := t.clock()
	var expired []*conn
	t.mu.Lock()
	idle := 0
	for key, h := range t.hosts {
		kept := h.idle[:0]
		for _, c := range h.idle {
			if now.Sub(c.idleAt) > timeout || t.tooOld(c, now) {
				expired = append(expired, c)
			} else {
				kept = append(kept, c)
			}
		}
		clear(h.idle[len(kept):])
		h.idle = kept
		idle += len(kept)
		if len(h.idle) == 0 && len(h.waiters) == 0 && h.dialing == 0 && now.Sub(h.used) > timeout {
			delete(t.hosts, key)
		}
	}
	t.reaping = idle > 0
	if t.reaping {
		time.AfterFunc(t.reapInterval(), t.reap)
	}
	t.mu.Unlock()
	for _, c := range expired {
		c.nc.Close()
	}
}

// CloseIdleConnections closes every idle connection.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	var idle []*conn
	for _, h := range t.hosts {
		idle = append(idle, h.idle...)
		h.idle = nil
	}
	t.mu.Unlock()
	for _, c := range idle {
		c.nc.Close()
	}
}

// IdleCount is the number of idle connections to addr.
func (t *Transport) IdleCount(addr string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, key := range []poolKey{{addr, false}, {addr, true}} {
		if h := t.hosts[key]; h != nil {
			n += len(h.idle)
		}
	}
	return n
}

func (t *Transport) idleTimeout() time.Duration {
	if t.IdleTimeout > 0 {
		return t.IdleTimeout
	}
	return 90 * time.Second
}

// tooOld reports whether c has reached MaxConnectionDuration.
func (t *Transport) tooOld(c *conn, now time.Time) bool {
	return t.MaxConnectionDuration > 0 && now.Sub(c.born) >= t.MaxConnectionDuration
}

// reapInterval is how often the sweep runs: an idle connection is closed
// within that of passing its idle timeout or its maximum duration.
func (t *Transport) reapInterval() time.Duration {
	if d := t.MaxConnectionDuration; d > 0 && d < t.idleTimeout() {
		return d
	}
	return t.idleTimeout()
}

func (t *Transport) clock() time.Time {
	if t.now != nil {
		return t.now()
	}
	return time.Now()
}
