package h1

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Server serves HTTP/1.1 connections with an http.Handler, one goroutine
// per connection reading a request, running the handler and writing the
// response in turn. Connections that speak h2 (ALPN h2 after a TLS
// handshake, or the h2c preface on a plaintext connection) are handed to
// H2, a net/http server configured for them.
//
// Differences from net/http's server, on purpose: no Content-Type
// sniffing (a proxy passes the upstream's headers as they are); a client
// hanging up is noticed only once a request has run for WatchAfter
// (net/http starts a background read on every request to notice it); a
// request's context is its connection's, cancelled when the client hangs
// up or the connection ends but not when the handler returns (a context
// per request, and the children each one collects, cost allocations on
// every request; what a handler derives from it, it cancels itself).
type Server struct {
	Handler http.Handler
	// TLS, when set, is the server TLS config: connections are handshaken
	// first and those that negotiate h2 go to H2.
	TLS *tls.Config
	// H2 serves the h2 and h2c connections; nil refuses them.
	H2 *http.Server
	// ConnContext, if set, derives each connection's base context.
	ConnContext       func(ctx context.Context, c net.Conn) context.Context
	ReadHeaderTimeout time.Duration // default 10s
	IdleTimeout       time.Duration // default 5m; enforced within 1.25 times that
	MaxHeaderBytes    int           // default 1 MiB
	// WatchAfter is how long a request runs before its connection is
	// watched for the client going away (which cancels the request's
	// context); default 100ms.
	WatchAfter time.Duration
	Log        *slog.Logger

	mu      sync.Mutex
	ln      net.Listener
	conns   map[*serverConn]struct{}
	closing atomic.Bool
	h2ln    *handoff
	done    sync.WaitGroup
}

// h2Preface starts every h2c connection with prior knowledge.
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// Serve accepts connections on ln until Shutdown or Close, then returns
// http.ErrServerClosed.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	s.ln = ln
	s.conns = map[*serverConn]struct{}{}
	if s.H2 != nil {
		s.h2ln = &handoff{addr: ln.Addr(), conns: make(chan net.Conn), closed: make(chan struct{})}
		go func() { _ = s.H2.Serve(s.h2ln) }()
	}
	s.mu.Unlock()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() { // e.g. out of file descriptors: back off as net/http does
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		c := &serverConn{s: s, nc: nc}
		if !s.track(c, true) {
			nc.Close()
			return http.ErrServerClosed
		}
		s.done.Add(1)
		go c.serve()
	}
}

func (s *Server) track(c *serverConn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.closing.Load() {
			return false
		}
		s.conns[c] = struct{}{}
		return true
	}
	delete(s.conns, c)
	return true
}

// Shutdown stops accepting, closes idle connections, lets requests in
// flight finish and closes their connections after them; when ctx ends
// first, the rest are closed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.mu.Lock()
	if s.ln != nil {
		s.ln.Close()
	}
	for c := range s.conns {
		c.closeIfIdle()
	}
	s.mu.Unlock()
	var h2err error
	if s.H2 != nil {
		h2err = s.H2.Shutdown(ctx)
	}
	done := make(chan struct{})
	go func() { s.done.Wait(); close(done) }()
	select {
	case <-done:
		return h2err
	case <-ctx.Done():
		s.Close()
		return ctx.Err()
	}
}

// Close closes the listener and every connection at once.
func (s *Server) Close() error {
	s.closing.Store(true)
	s.mu.Lock()
	if s.ln != nil {
		s.ln.Close()
	}
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	if s.H2 != nil {
		return s.H2.Close()
	}
	return nil
}

func (s *Server) readHeaderTimeout() time.Duration {
	if s.ReadHeaderTimeout > 0 {
		return s.ReadHeaderTimeout
	}
	return 10 * time.Second
}

func (s *Server) idleTimeout() time.Duration {
	if s.IdleTimeout > 0 {
		return s.IdleTimeout
	}
	return 5 * time.Minute
}

func (s *Server) maxHeaderBytes() int64 {
	if s.MaxHeaderBytes > 0 {
		return int64(s.MaxHeaderBytes)
	}
	return 1 << 20
}

func (s *Server) watchAfter() time.Duration {
	if s.WatchAfter > 0 {
		return s.WatchAfter
	}
	return 100 * time.Millisecond
}

// handoff is the listener H2 serves: connections this server passed on.
type handoff struct {
	addr   net.Addr
	conns  chan net.Conn
	once   sync.Once
	closed chan struct{}
}

func (h *handoff) Accept() (net.Conn, error) {
	select {
	case c := <-h.conns:
		return c, nil
	case <-h.closed:
		return nil, net.ErrClosed
	}
}

func (h *handoff) Close() error   { h.once.Do(func() { close(h.closed) }); return nil }
func (h *handoff) Addr() net.Addr { return h.addr }

func (h *handoff) pass(c net.Conn) bool {
	select {
	case h.conns <- c:
		return true
	case <-h.closed:
		return false
	}
}

// serverConn is one accepted connection.
type serverConn struct {
	s        *Server
	nc       net.Conn // the accepted connection, or its *tls.Conn
	lim      io.LimitedReader
	br       *bufio.Reader
	bw       *bufio.Writer
	tls      *tls.ConnectionState
	remote   string          // the client's address, every request's RemoteAddr
	ctx      context.Context // every request's context
	cancel   context.CancelCauseFunc
	idle     atomic.Bool // waiting for the next request: Shutdown may close it
	hijacked bool
	// The watch of a slow request (see watch): the connection's timer,
	// armed per request; under wmu, the request's body and whether the
	// watch was called off; wexit, signalled each time the timer's
	// function returns; the byte of the next request it may have read.
	wtimer    *time.Timer
	wmu       sync.Mutex
	wbody     io.ReadCloser
	wstopped  bool
	wexit     chan struct{}
	readAhead []byte
	// idleUntil is the idle deadline set on the connection, zero when
	// another (or none) is: see waitIdle.
	idleUntil time.Time
}

func (c *serverConn) closeIfIdle() {
	if c.idle.Load() {
		_ = c.nc.SetReadDeadline(time.Unix(1, 0))
	}
}

func (c *serverConn) serve() {
	s := c.s
	defer s.done.Done()
	handedOff := false
	defer func() {
		s.track(c, false)
		if !handedOff && !c.hijacked {
			c.nc.Close()
		}
	}()
	if s.TLS != nil {
		tc := tls.Server(c.nc, s.TLS)
		_ = c.nc.SetDeadline(time.Now().Add(s.readHeaderTimeout()))
		if err := tc.Handshake(); err != nil {
			return // a bad client certificate or a scanner: nothing to answer
		}
		_ = c.nc.SetDeadline(time.Time{})
		c.nc = tc
		st := tc.ConnectionState()
		if st.NegotiatedProtocol == "h2" {
			handedOff = s.H2 != nil && s.h2ln.pass(tc)
			return
		}
		c.tls = &st
	}
	c.lim.R = c.nc
	c.lim.N = s.maxHeaderBytes()
	c.br = bufio.NewReaderSize(&c.lim, 4<<10)
	if s.TLS == nil && s.H2 != nil {
		_ = c.nc.SetReadDeadline(time.Now().Add(s.idleTimeout()))
		isH2, err := c.sniffPreface()
		if err != nil {
			return
		}
		if isH2 {
			_ = c.nc.SetReadDeadline(time.Time{})
			handedOff = s.h2ln.pass(&prefixConn{Conn: c.nc, r: c.br})
			return
		}
	}
	c.bw = bufio.NewWriterSize(c.nc, 4<<10)
	c.ctx = context.Background()
	if s.ConnContext != nil {
		c.ctx = s.ConnContext(c.ctx, c.nc)
	}
	var ctx context.Context
	ctx, c.cancel = context.WithCancelCause(c.ctx)
	defer c.cancel(nil)
	c.ctx = newRequestContext(ctx)
	c.remote = c.nc.RemoteAddr().String()
	for c.serveOne() {
	}
}

// sniffPreface tells whether the connection starts with the h2c preface,
// asking for more bytes only while those so far still match it (a short
// HTTP/1 request must not wait for 24 bytes).
func (c *serverConn) sniffPreface() (bool, error) {
	for n := 1; ; n = min(max(n+1, c.br.Buffered()), len(h2Preface)) {
		b, err := c.br.Peek(n)
		if !strings.HasPrefix(h2Preface, string(b)) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if len(b) == len(h2Preface) {
			return true, nil
		}
	}
}

// serveOne reads and answers one request; false ends the connection.
func (c *serverConn) serveOne() bool {
	s := c.s
	c.idle.Store(true)
	if s.closing.Load() {
		return false
	}
	c.waitIdle()
	if _, err := c.br.Peek(1); err != nil {
		return false
	}
	c.idle.Store(false)
	// A head that arrived whole, the usual case, is parsed from the
	// buffer: the header timeout is for one still arriving. (Each deadline
	// set moves a runtime timer; three per request were ≈ 2 % of the CPU.)
	if !headBuffered(c.br) {
		_ = c.nc.SetReadDeadline(time.Now().Add(s.readHeaderTimeout()))
		c.idleUntil = time.Time{}
	}
	c.lim.N = s.maxHeaderBytes()
	req, err := http.ReadRequest(c.br)
	if err != nil {
		if c.lim.N <= 0 {
			c.fail(http.StatusRequestHeaderFieldsTooLarge, "request headers too large")
		} else if !errors.Is(err, io.EOF) && !isTimeout(err) {
			c.fail(http.StatusBadRequest, err.Error())
		}
		return false
	}
	c.lim.N = 1<<63 - 1
	// The handler reads a body with no deadline. Without a body it does
	// not read the connection (the watch clears the deadline before it
	// does, Hijack clears it too), and the idle deadline can stay.
	if req.Body != http.NoBody {
		_ = c.nc.SetReadDeadline(time.Time{})
		c.idleUntil = time.Time{}
	}
	if req.ProtoMajor != 1 {
		c.fail(http.StatusHTTPVersionNotSupported, "unsupported protocol version")
		return false
	}
	if req.ProtoMinor >= 1 && req.Host == "" && req.Header.Get("Host") == "" {
		c.fail(http.StatusBadRequest, "missing required Host header")
		return false
	}
	if hosts := req.Header["Host"]; len(hosts) > 1 || len(hosts) == 1 && !httpguts.ValidHostHeader(hosts[0]) || !httpguts.ValidHostHeader(req.Host) {
		c.fail(http.StatusBadRequest, "malformed Host header")
		return false
	}
	req.RemoteAddr = c.remote
	req.TLS = c.tls
	req = req.WithContext(c.ctx)
	w := &response{c: c, req: req, status: http.StatusOK}
	if req.Header.Get("Expect") != "" {
		if !strings.EqualFold(req.Header.Get("Expect"), "100-continue") {
			c.fail(http.StatusExpectationFailed, "unsupported Expect header")
			return false
		}
		req.Header.Del("Expect")
		if req.ContentLength != 0 {
			req.Body = &expectContinue{ReadCloser: req.Body, w: w}
		}
	}
	body := req.Body // drained after the handler, whatever it leaves in req.Body
	c.wmu.Lock()
	c.wbody, c.wstopped = body, false
	c.wmu.Unlock()
	if c.wtimer == nil {
		c.wexit = make(chan struct{}, 1)
		c.wtimer = time.AfterFunc(s.watchAfter(), c.watch)
	} else {
		c.wtimer.Reset(s.watchAfter())
	}
	ok := c.runHandler(w, req)
	if !w.hijacked { // Hijack stopped it already
		c.stopWatch()
	}
	if !ok {
		return false
	}
	if w.hijacked {
		return false
	}
	if err := w.finish(); err != nil {
		return false
	}
	if w.closeAfter || req.Close || s.closing.Load() {
		return false
	}
	// The next request starts after this one's body: drain what the
	// handler left unread, within reason, from the body this server made.
	if body != http.NoBody {
		if n, _ := io.CopyN(io.Discard, body, 256<<10+1); n > 256<<10 {
			return false
		}
	}
	return true
}

// waitIdle sets the idle deadline for the wait for the next request. Not
// on every request: one set within the last quarter of IdleTimeout is left
// (moving it is a runtime timer update, ≈ 1 % of a proxy's CPU at one per
// request), so an idle connection is closed after between IdleTimeout and
// 1.25 times that.
func (c *serverConn) waitIdle() {
	idle := c.s.idleTimeout()
	now := time.Now()
	if !c.idleUntil.IsZero() && c.idleUntil.Sub(now) >= idle {
		return
	}
	c.idleUntil = now.Add(idle + idle/4)
	_ = c.nc.SetReadDeadline(c.idleUntil)
}

// headBuffered reports whether br holds a whole request head already.
func headBuffered(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	return bytes.Contains(b, []byte("\r\n\r\n"))
}

// runHandler calls the handler; false if it panicked.
func (c *serverConn) runHandler(w *response, req *http.Request) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler && c.s.Log != nil {
				c.s.Log.Error("panic serving request", "remote", req.RemoteAddr, "path", req.URL.Path, "panic", fmt.Sprint(p))
			}
			ok = false
		}
	}()
	c.s.Handler.ServeHTTP(w, req)
	return true
}

// watch reads ahead on the connection while a slow request runs, so that
// the client hanging up cancels it. It starts only when the request has no
// body (the handler may be reading it) and no pipelined request is
// buffered; a byte it reads belongs to the next request.
func (c *serverConn) watch() {
	defer func() { c.wexit <- struct{}{} }()
	c.wmu.Lock()
	body, stopped := c.wbody, c.wstopped
	watching := !stopped && (body == http.NoBody || body == nil) && c.br.Buffered() == 0
	if watching {
		// Under wmu: stopWatch marks the watch stopped before it sets the
		// deadline that wakes this read, so it cannot be cleared after.
		_ = c.nc.SetReadDeadline(time.Time{})
	}
	c.wmu.Unlock()
	if !watching {
		return
	}
	var b [1]byte
	n, err := c.nc.Read(b[:])
	if n == 1 {
		c.readAhead = append(c.readAhead[:0], b[0])
		return
	}
	if err != nil && !isTimeout(err) {
		c.cancel(fmt.Errorf("client closed the connection: %w", err))
	}
}

// stopWatch ends the request's watch before the connection is read again:
// if the timer fired, it calls the watch off, wakes its read and waits for
// it to return (it may not have looked at wstopped yet), then puts back a
// byte it read.
func (c *serverConn) stopWatch() {
	if c.wtimer == nil || c.wtimer.Stop() {
		return
	}
	c.wmu.Lock()
	c.wstopped, c.wbody = true, nil
	c.wmu.Unlock()
	_ = c.nc.SetReadDeadline(time.Unix(1, 0))
	<-c.wexit
	_ = c.nc.SetReadDeadline(time.Time{})
	c.idleUntil = time.Time{}
	if len(c.readAhead) > 0 {
		c.br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(c.readAhead), &c.lim), 4<<10)
		c.readAhead = nil
	}
}

// fail answers a request that could not be served and closes.
func (c *serverConn) fail(status int, msg string) {
	if c.bw == nil {
		c.bw = bufio.NewWriterSize(c.nc, 512)
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(c.bw, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
		status, http.StatusText(status), len(msg)+1, msg+"\n")
	_ = c.bw.Flush()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// prefixConn is a connection whose first bytes were already buffered.
type prefixConn struct {
	net.Conn
	r *bufio.Reader
}

func (p *prefixConn) Read(b []byte) (int, error) { return p.r.Read(b) }

// expectContinue sends "100 Continue" when the handler first reads the body.
type expectContinue struct {
	io.ReadCloser
	w    *response
	sent bool
}

func (e *expectContinue) Read(p []byte) (int, error) {
	if !e.sent {
		e.sent = true
		if !e.w.wroteHeader {
			_, _ = e.w.c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			_ = e.w.c.bw.Flush()
		}
	}
	return e.ReadCloser.Read(p)
}

// response is the http.ResponseWriter of one request.
type response struct {
	c           *serverConn
	req         *http.Request
	header      http.Header
	status      int
	wroteHeader bool // WriteHeader called (or implied)
	sentHeader  bool // status line and headers are in c.bw
	buf         []byte
	chunked     bool
	noBody      bool
	length      int64 // Content-Length the handler declared; -1: none
	written     int64
	closeAfter  bool
	hijacked    bool
	trailers    []string
}

var (
	_ http.ResponseWriter = (*response)(nil)
	_ http.Flusher        = (*response)(nil)
	_ http.Hijacker       = (*response)(nil)
)

// bufferLimit is how much of a body without Content-Length is held back
// so that a short one can still be sent with a Content-Length.
const bufferLimit = 4 << 10

// Header is the response's header map, made on first use: a proxy hands
// over the upstream's instead (SetHeader).
func (w *response) Header() http.Header {
	if w.header == nil {
		w.header = http.Header{}
	}
	return w.header
}

// SetHeader makes h the header map, so a proxy can pass an upstream's
// response headers on without copying them key by key into a map that
// grows as it goes. It does so only before the headers are written and
// while no header has been set, and reports whether it did.
func (w *response) SetHeader(h http.Header) bool {
	if w.wroteHeader || w.hijacked || len(w.header) > 0 {
		return false
	}
	w.header = h
	return true
}

func (w *response) WriteHeader(code int) {
	if w.wroteHeader || w.hijacked {
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		return // interim responses are not forwarded
	}
	w.wroteHeader = true
	w.status = code
}

func (w *response) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.noBodyAllowed() {
		return 0, http.ErrBodyNotAllowed
	}
	// Without a Content-Length, a short body is held back so that it can
	// still get one; with one (what a proxied response usually has) the
	// headers go out at once.
	if !w.sentHeader && len(w.buf)+len(p) <= bufferLimit && w.Header().Get("Content-Length") == "" {
		if w.buf == nil {
			w.buf = getBuffer()
		}
		w.buf = append(w.buf, p...)
		return len(p), nil
	}
	if !w.sentHeader {
		if err := w.sendHeader(false); err != nil {
			return 0, err
		}
	}
	n, err := w.writeBody(p)
	if err == nil && w.length >= 0 && w.written == w.length {
		// The declared body is complete (a chunked one has no length): send
		// it now, not when the handler returns, so what a proxy does after
		// relaying it (releasing the upstream connection, metrics, the
		// span) is off the response's path.
		err = w.c.bw.Flush()
	}
	return n, err
}

func (w *response) noBodyAllowed() bool {
	return w.status == http.StatusNoContent || w.status == http.StatusNotModified || w.status < 200
}

func (w *response) writeBody(p []byte) (int, error) {
	if len(p) == 0 || w.noBody {
		return len(p), nil
	}
	if w.length >= 0 && w.written+int64(len(p)) > w.length {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if w.chunked {
		w.c.bw.WriteString(strconv.FormatInt(int64(len(p)), 16))
		w.c.bw.WriteString("\r\n")
		n, err := w.c.bw.Write(p)
		w.c.bw.WriteString("\r\n")
		return n, err
	}
	return w.c.bw.Write(p)
}

// sendHeader decides the framing and writes the status line and headers;
// complete means the handler has returned and w.buf is the whole body.
func (w *response) sendHeader(complete bool) error {
	w.sentHeader = true
	h := w.Header()
	req := w.req
	w.length = -1
	if cl := h.Get("Content-Length"); cl != "" {
		n, err := strconv.ParseInt(cl, 10, 64)
		if err != nil || n < 0 {
			h.Del("Content-Length")
		} else {
			w.length = n
		}
	}
	h.Del("Transfer-Encoding")
	for _, k := range h.Values("Trailer") {
		for _, name := range strings.Split(k, ",") {
			if name = strings.TrimSpace(name); name != "" {
				w.trailers = append(w.trailers, http.CanonicalHeaderKey(name))
			}
		}
	}
	switch {
	case w.noBodyAllowed():
		w.noBody = true
		h.Del("Content-Length")
		w.length = -1
	case req.Method == http.MethodHead:
		w.noBody = true
		if w.length < 0 && complete && len(w.buf) > 0 {
			h.Set("Content-Length", strconv.Itoa(len(w.buf)))
		}
	case w.length >= 0 && len(w.trailers) == 0:
	case complete && len(w.trailers) == 0:
		w.length = int64(len(w.buf))
		h.Set("Content-Length", strconv.Itoa(len(w.buf)))
	case req.ProtoAtLeast(1, 1):
		w.chunked = true
		h.Del("Content-Length")
		w.length = -1
	default: // HTTP/1.0 without a length: the body ends when the connection does
		w.closeAfter = true
	}
	if len(w.trailers) > 0 && !w.chunked {
		h.Del("Trailer") // only chunked bodies carry trailers
		w.trailers = nil
	}
	keepAlive := !req.Close && !w.closeAfter && !w.c.s.closing.Load()
	if req.ProtoMinor == 0 && !strings.EqualFold(req.Header.Get("Connection"), "keep-alive") {
		keepAlive = false
	}
	if strings.EqualFold(h.Get("Connection"), "close") {
		keepAlive = false
	}
	w.closeAfter = !keepAlive
	h.Del("Connection")
	if !keepAlive {
		h.Set("Connection", "close")
	} else if req.ProtoMinor == 0 {
		h.Set("Connection", "keep-alive")
	}
	if w.chunked {
		h.Set("Transfer-Encoding", "chunked")
	}
	if _, ok := h["Date"]; !ok {
		h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	}
	bw := w.c.bw
	bw.WriteString("HTTP/1.")
	bw.WriteByte('0' + byte(min(req.ProtoMinor, 1)))
	bw.WriteByte(' ')
	bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(w.status), 10))
	bw.WriteByte(' ')
	bw.WriteString(http.StatusText(w.status))
	bw.WriteString("\r\n")
	writeFields(bw, h, w.trailers)
	_, err := bw.WriteString("\r\n")
	if w.chunked {
		h.Del("Transfer-Encoding")
	}
	if buffered := w.buf; buffered != nil {
		w.buf = nil
		_, werr := w.writeBody(buffered)
		putBuffer(buffered)
		if werr != nil {
			return werr
		}
	}
	return err
}

var bodyBuffers = sync.Pool{New: func() any { b := make([]byte, 0, bufferLimit); return &b }}

func getBuffer() []byte { return (*bodyBuffers.Get().(*[]byte))[:0] }

func putBuffer(b []byte) {
	if cap(b) == bufferLimit {
		bodyBuffers.Put(&b)
	}
}

// Flush sends the headers (deciding on chunked framing) and what is buffered.
func (w *response) Flush() {
	if w.hijacked {
		return
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.sentHeader {
		if err := w.sendHeader(false); err != nil {
			return
		}
	}
	_ = w.c.bw.Flush()
}

// finish completes the response after the handler returned.
func (w *response) finish() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.sentHeader {
		if err := w.sendHeader(true); err != nil {
			return err
		}
	}
	bw := w.c.bw
	if w.chunked {
		bw.WriteString("0\r\n")
		for _, k := range w.trailers {
			for _, v := range w.header.Values(k) {
				fmt.Fprintf(bw, "%s: %s\r\n", k, v)
			}
		}
		for k, vs := range w.header {
			if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
				for _, v := range vs {
					fmt.Fprintf(bw, "%s: %s\r\n", http.CanonicalHeaderKey(name), v)
				}
			}
		}
		bw.WriteString("\r\n")
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if w.length >= 0 && !w.noBody && w.written != w.length {
		return fmt.Errorf("h1: handler wrote %d bytes of a %d-byte Content-Length", w.written, w.length)
	}
	return nil
}

// Hijack hands the connection to the handler (WebSocket upgrades).
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.sentHeader {
		return nil, nil, errors.New("h1: Hijack after the response started")
	}
	c := w.c
	c.stopWatch()
	w.hijacked, c.hijacked = true, true
	_ = c.nc.SetDeadline(time.Time{})
	c.s.track(c, false)
	return c.nc, bufio.NewReadWriter(c.br, c.bw), nil
}
