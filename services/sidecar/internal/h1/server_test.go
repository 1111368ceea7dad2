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
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// serve runs a Server with h on a loopback listener (h2c to H2 when h2 is
// set) and returns its address.
func serve(t *testing.T, h http.Handler, mutate ...func(*Server)) (string, *Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Handler: h}
	for _, m := range mutate {
		m(s)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
		}
	})
	return ln.Addr().String(), s
}

// exchange writes raw bytes on one connection and reads what comes back
// until the server closes it or a second passes.
func exchange(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte(raw))
	c.SetReadDeadline(time.Now().Add(time.Second))
	b, _ := io.ReadAll(c)
	return string(b)
}

func TestServerFraming(t *testing.T) {
	addr, _ := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/short":
			io.WriteString(w, "hello")
		case "/long":
			io.WriteString(w, strings.Repeat("x", 10000))
		case "/flushed":
			io.WriteString(w, "a")
			w.(http.Flusher).Flush()
			io.WriteString(w, "b")
		case "/declared":
			w.Header().Set("Content-Length", "3")
			io.WriteString(w, "abc")
		case "/204":
			w.WriteHeader(http.StatusNoContent)
		case "/trailer":
			w.Header().Set("Trailer", "X-Sum")
			io.WriteString(w, "data")
			w.Header().Set("X-Sum", "4")
			w.Header().Set(http.TrailerPrefix+"X-Late", "yes")
		}
	}))
	c := &http.Client{Transport: &http.Transport{}}
	cases := []struct {
		path, method string
		wantBody     string
		wantLength   int64
		wantChunked  bool
		wantTrailer  http.Header
	}{
		{"/short", "GET", "hello", 5, false, nil},
		{"/long", "GET", strings.Repeat("x", 10000), -1, true, nil},
		{"/flushed", "GET", "ab", -1, true, nil},
		{"/declared", "GET", "abc", 3, false, nil},
		{"/short", "HEAD", "", 5, false, nil},
		{"/204", "GET", "", 0, false, nil},
		{"/trailer", "GET", "data", -1, true, http.Header{"X-Sum": {"4"}, "X-Late": {"yes"}}},
	}
	for _, tc := range cases {
		t.Run(tc.method+tc.path, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, "http://"+addr+tc.path, nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			chunked := len(resp.TransferEncoding) > 0 && resp.TransferEncoding[0] == "chunked"
			if string(b) != tc.wantBody || resp.ContentLength != tc.wantLength || chunked != tc.wantChunked {
				t.Fatalf("body %d bytes, Content-Length %d, chunked %v; want %d, %d, %v", len(b), resp.ContentLength, chunked, len(tc.wantBody), tc.wantLength, tc.wantChunked)
			}
			for k, v := range tc.wantTrailer {
				if got := resp.Trailer.Get(k); got != v[0] {
					t.Fatalf("trailer %s = %q, want %q", k, got, v[0])
				}
			}
			if resp.Header.Get("Date") == "" {
				t.Fatal("no Date header")
			}
		})
	}
}

// TestServerSendsACompleteBodyBeforeTheHandlerReturns: once a handler has
// written all of a declared Content-Length, the client has the response
// even though the handler is still busy (a proxy releasing its upstream
// connection and recording metrics); an unsized or unfinished body waits.
func TestServerSendsACompleteBodyBeforeTheHandlerReturns(t *testing.T) {
	release := make(chan struct{})
	addr, _ := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/sized":
			w.Header().Set("Content-Length", "5")
			io.WriteString(w, "hello")
		case "/partial":
			w.Header().Set("Content-Length", "10")
			io.WriteString(w, "hello")
		case "/unsized":
			io.WriteString(w, "hello")
		}
		<-release
	}))
	defer close(release)
	for _, tc := range []struct {
		path     string
		complete bool
	}{{"/sized", true}, {"/partial", false}, {"/unsized", false}} {
		t.Run(tc.path, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, "GET "+tc.path+" HTTP/1.1\r\nHost: x\r\n\r\n")
			c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			var body []byte
			if err == nil {
				body, err = io.ReadAll(resp.Body)
			}
			if tc.complete && (err != nil || string(body) != "hello") {
				t.Fatalf("response while the handler runs: body %q, %v; want hello", body, err)
			}
			if !tc.complete && !isTimeout(err) {
				t.Fatalf("response while the handler runs: body %q, %v; want nothing complete before it returns", body, err)
			}
		})
	}
}

func TestServerKeepAlivePipeliningAndClose(t *testing.T) {
	var n atomic.Int64
	addr, _ := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%d %s", n.Add(1), r.URL.Path)
	}))
	// Two pipelined requests on one connection, the second asking to close.
	got := exchange(t, addr, "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if !strings.Contains(got, "\r\n\r\n1 /a") || !strings.Contains(got, "Connection: close") || !strings.HasSuffix(got, "2 /b") {
		t.Fatalf("pipelined exchange:\n%s", got)
	}
	// HTTP/1.0 without keep-alive: the answer closes the connection.
	got = exchange(t, addr, "GET /c HTTP/1.0\r\n\r\n")
	if !strings.HasPrefix(got, "HTTP/1.0 200 OK\r\n") || !strings.Contains(got, "Connection: close") {
		t.Fatalf("HTTP/1.0 exchange:\n%s", got)
	}
}

func TestServerRefusesBadRequests(t *testing.T) {
	addr, _ := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), func(s *Server) { s.MaxHeaderBytes = 1024 })
	cases := []struct{ name, raw, want string }{
		{"garbage", "NOT HTTP\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"headers too large", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 4096) + "\r\n\r\n", "HTTP/1.1 431 Request Header Fields Too Large"},
		{"no Host in HTTP/1.1", "GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"malformed Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"two Host headers", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"malformed host in absolute form", "GET http://a%2fb/ HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"unknown Expect", "GET / HTTP/1.1\r\nHost: x\r\nExpect: magic\r\n\r\n", "HTTP/1.1 417 Expectation Failed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := exchange(t, addr, tc.raw); !strings.HasPrefix(got, tc.want) {
				t.Fatalf("answer %q, want it to start with %q", got, tc.want)
			}
		})
	}
}

func TestServerExpectContinue(t *testing.T) {
	addr, _ := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "got %s", b)
	}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"))
	br := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	line, _ := br.ReadString('\n')
	if line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("first line %q, want 100 Continue before the body is sent", line)
	}
	br.ReadString('\n')
	c.Write([]byte("body"))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "got body" {
		t.Fatalf("body %q", b)
	}
}

func TestServerUnreadBodyIsDrainedForTheNextRequest(t *testing.T) {
	addr, _ := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.URL.Path) }))
	got := exchange(t, addr, "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if !strings.Contains(got, "\r\n\r\n/a") || !strings.HasSuffix(got, "/b") {
		t.Fatalf("exchange:\n%s", got)
	}
}

// A handler that puts another reader in req.Body (the proxy does, to
// replay a body on a retry) leaves the connection's own body to drain.
func TestServerDrainsItsOwnBodyWhateverTheHandlerLeftInReqBody(t *testing.T) {
	addr, _ := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = io.NopCloser(strings.NewReader(""))
		io.WriteString(w, r.URL.Path)
	}))
	got := exchange(t, addr, "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\n{\"x\":1}GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if !strings.Contains(got, "\r\n\r\n/a") || !strings.HasSuffix(got, "/b") {
		t.Fatalf("exchange:\n%s", got)
	}
}

func TestServerHijack(t *testing.T) {
	addr, _ := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		brw.WriteString("echo " + line)
		brw.Flush()
	}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nping\n"))
	br := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	if line, _ := br.ReadString('\n'); line != "echo ping\n" {
		t.Fatalf("through the hijacked connection: %q", line)
	}
}

func TestServerPanicClosesTheConnection(t *testing.T) {
	addr, _ := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) }))
	if got := exchange(t, addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); got != "" {
		t.Fatalf("after a panic the server answered %q, want the connection closed", got)
	}
}

// TestServerClientLeavingCancelsASlowRequest: the watch notices the client
// hanging up on a slow request. A request without a body runs with the
// connection's idle deadline still set, so a request that outlives it
// must neither be cut there nor lose the watch.
func TestServerClientLeavingCancelsASlowRequest(t *testing.T) {
	cases := []struct {
		name        string
		idleTimeout time.Duration // 0: the default
		waitFor     time.Duration // before the client leaves
	}{
		{"leaves at once", 0, 100 * time.Millisecond},
		{"leaves after the idle deadline", 100 * time.Millisecond, 400 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cancelled := make(chan error, 1)
			addr, _ := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done():
					cancelled <- context.Cause(r.Context())
				case <-time.After(5 * time.Second):
					cancelled <- nil
				}
			}), func(s *Server) { s.WatchAfter, s.IdleTimeout = 20*time.Millisecond, tc.idleTimeout })
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
			time.Sleep(tc.waitFor)
			select {
			case err := <-cancelled:
				t.Fatalf("request ended while the client waited: %v", err)
			default:
			}
			c.Close()
			if err := <-cancelled; err == nil || !strings.Contains(err.Error(), "client closed") {
				t.Fatalf("request context after the client left: %v", err)
			}
		})
	}
}

func TestServerWatchKeepsAPipelinedRequest(t *testing.T) {
	addr, _ := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(100 * time.Millisecond) // the watch starts and reads the next request's first byte
		}
		io.WriteString(w, r.URL.Path)
	}), func(s *Server) { s.WatchAfter = 10 * time.Millisecond })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"))
	time.Sleep(50 * time.Millisecond)
	c.Write([]byte("GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	b, _ := io.ReadAll(c)
	if got := string(b); !strings.Contains(got, "\r\n\r\n/slow") || !strings.HasSuffix(got, "/next") {
		t.Fatalf("exchange:\n%s", got)
	}
}

func TestServerShutdownFinishesRequestsInFlight(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	addr, s := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			<-release
		}
		io.WriteString(w, "done")
	}))
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	idle.Write([]byte("GET /fast HTTP/1.1\r\nHost: x\r\n\r\n"))
	idleBr := bufio.NewReader(idle)
	if resp, err := http.ReadResponse(idleBr, nil); err != nil {
		t.Fatal(err)
	} else {
		io.ReadAll(resp.Body)
	}
	result := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/slow")
		if err != nil {
			result <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		result <- string(b)
	}()
	<-started
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	// The idle connection is closed at once.
	idle.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := idleBr.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection on Shutdown: %v, want EOF", err)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if got := <-result; got != "done" {
		t.Fatalf("request in flight during Shutdown: %q", got)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

func TestServerHandsH2ToTheH2Server(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, r.Proto) })
	t.Run("h2c preface", func(t *testing.T) {
		h2 := &http.Server{Handler: h, Protocols: new(http.Protocols)}
		h2.Protocols.SetUnencryptedHTTP2(true)
		addr, _ := serve(t, h, func(s *Server) { s.H2 = h2 })
		tr := &http.Transport{Protocols: new(http.Protocols)}
		tr.Protocols.SetUnencryptedHTTP2(true)
		resp, err := (&http.Client{Transport: tr}).Get("http://" + addr)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if string(b) != "HTTP/2.0" {
			t.Fatalf("h2c request served as %q", b)
		}
		if _, body := get(t, plainTransport(), "http://"+addr); body != "HTTP/1.1" {
			t.Fatalf("HTTP/1.1 request served as %q", body)
		}
		// Shorter than the preface: answered without waiting for more bytes.
		if got := exchange(t, addr, "GET / HTTP/1.0\r\n\r\n"); !strings.HasSuffix(got, "HTTP/1.0") {
			t.Fatalf("short HTTP/1.0 request: %q", got)
		}
		if got := exchange(t, addr, "PRI / HTTP/1.0\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.1 400") && !strings.HasPrefix(got, "HTTP/1.0 ") {
			t.Fatalf("request sharing the preface's first bytes: %q", got)
		}
	})
	t.Run("TLS ALPN", func(t *testing.T) {
		ts := httptest.NewUnstartedServer(h) // only for its certificate
		ts.StartTLS()
		cert, pool := ts.TLS.Certificates[0], ts.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
		ts.Close()
		cfg := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
		h2 := &http.Server{Handler: h, TLSConfig: cfg, Protocols: new(http.Protocols)}
		h2.Protocols.SetHTTP2(true)
		addr, _ := serve(t, h, func(s *Server) { s.TLS, s.H2 = cfg, h2 })
		for _, proto := range []string{"h2", "http/1.1"} {
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "example.com", NextProtos: []string{proto}}, ForceAttemptHTTP2: proto == "h2"}
			resp, err := (&http.Client{Transport: tr}).Get("https://" + addr)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			want := map[string]string{"h2": "HTTP/2.0", "http/1.1": "HTTP/1.1"}[proto]
			if string(b) != want || resp.TLS == nil {
				t.Fatalf("ALPN %s served as %q", proto, b)
			}
		}
	})
}

// FuzzServerRequests feeds arbitrary bytes to a connection: the server
// must answer with HTTP or close, never hang or crash.
func FuzzServerRequests(f *testing.F) {
	for _, seed := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc",
		"GET / HTTP/1.0\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
		"GET /\x00 HTTP/1.1\r\n\r\n",
	} {
		f.Add(seed)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		w.Write(b)
	})
	h2 := &http.Server{Handler: h, Protocols: new(http.Protocols)}
	h2.Protocols.SetUnencryptedHTTP2(true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	s := &Server{Handler: h, H2: h2, ReadHeaderTimeout: time.Second, IdleTimeout: 200 * time.Millisecond}
	go s.Serve(ln)
	f.Cleanup(func() { s.Close() })
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte(raw))
		c.(*net.TCPConn).CloseWrite()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		if isTimeout(err) {
			t.Fatalf("no answer and no close within 5s for %q", raw)
		}
		if len(b) > 0 && !strings.HasPrefix(string(b), "HTTP/1.") && !strings.HasPrefix(raw, h2Preface) {
			t.Fatalf("answer %q to %q is not HTTP/1", b, raw)
		}
	})
}

// TestServerIdleTimeout: a keep-alive connection is closed after between
// IdleTimeout and 1.25 times that without a request, and one that keeps
// sending requests more often stays open however long it lives.
func TestServerIdleTimeout(t *testing.T) {
	const idle = 200 * time.Millisecond
	addr, _ := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		func(s *Server) { s.IdleTimeout = idle })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	send := func(i int) {
		t.Helper()
		c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d on the kept connection: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	for i := range 6 { // 6 × 0.6 idle: longer than any idle deadline set once
		send(i)
		time.Sleep(idle * 6 / 10)
	}
	send(6)
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("idle connection: read %v, want EOF", err)
	}
	if took := time.Since(start); took < idle || took > idle*5/4+time.Second {
		t.Fatalf("idle connection closed after %v, want between %v and 1.25 times that", took, idle)
	}
}

// TestServerSetHeader: a handler can hand over a header map of its own
// while the response has none, and only then.
func TestServerSetHeader(t *testing.T) {
	given := func() http.Header { return http.Header{"X-Given": {"1"}} }
	for _, tc := range []struct {
		name   string
		before func(w http.ResponseWriter)
		took   bool
		want   string // a header line of the response
	}{
		{"fresh response", func(http.ResponseWriter) {}, true, "X-Given: 1"},
		{"a header set before", func(w http.ResponseWriter) { w.Header().Set("X-Own", "2") }, false, "X-Own: 2"},
		{"headers written", func(w http.ResponseWriter) { w.WriteHeader(http.StatusAccepted) }, false, "202 Accepted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			took := make(chan bool, 1)
			addr, _ := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				tc.before(w)
				took <- w.(interface{ SetHeader(http.Header) bool }).SetHeader(given())
			}))
			got := exchange(t, addr, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			if gotTook := <-took; gotTook != tc.took || !strings.Contains(got, tc.want) || !tc.took && strings.Contains(got, "X-Given") {
				t.Fatalf("SetHeader took the map: %v, want %v; response:\n%s", gotTook, tc.took, got)
			}
		})
	}
}
