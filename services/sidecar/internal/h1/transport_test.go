package h1

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-mesh/switchyard/services/kit/rawconn"
)

// upstream is a real net/http server counting the connections it accepted.
type upstream struct {
	*httptest.Server
	conns atomic.Int64
}

func newUpstream(t *testing.T, h http.HandlerFunc) *upstream {
	u := &upstream{}
	u.Server = httptest.NewUnstartedServer(h)
	u.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			u.conns.Add(1)
		}
	}
	u.Start()
	t.Cleanup(u.Close)
	return u
}

// dial is how the sidecar dials its upstreams: with raw socket calls, so
// that requests are held for the read of their response (kit/rawconn).
func dial(ctx context.Context, network, addr string) (net.Conn, error) {
	return rawconn.DialContext(ctx, &net.Dialer{}, network, addr)
}

func plainTransport() *Transport { return &Transport{DialContext: dial} }

// dialers are both kinds of connection the transport handles: one that
// holds a request for the read of its response, and net's own.
var dialers = []struct {
	name string
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}{{"rawconn", dial}, {"net", (&net.Dialer{}).DialContext}}

func get(t *testing.T, tr *Transport, url string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	return send(t, tr, req)
}

// send makes the exchange and reads the whole response body.
func send(t *testing.T, tr *Transport, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp, string(b)
}

func TestKeepAliveReusesOneConnection(t *testing.T) {
	for _, d := range dialers {
		t.Run(d.name, func(t *testing.T) {
			u := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello ", r.URL.Path) })
			tr := &Transport{DialContext: d.dial}
			for i := range 5 {
				resp, body := get(t, tr, u.URL+fmt.Sprint("/", i))
				if resp.StatusCode != 200 || body != fmt.Sprint("hello /", i) {
					t.Fatalf("got %d %q", resp.StatusCode, body)
				}
			}
			if n := u.conns.Load(); n != 1 {
				t.Fatalf("server saw %d connections, want 1", n)
			}
			if n := tr.IdleCount(u.Listener.Addr().String()); n != 1 {
				t.Fatalf("idle connections %d, want 1", n)
			}
		})
	}
}

func TestBodyClosedEarlyClosesTheConnection(t *testing.T) {
	u := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { w.Write(bytes.Repeat([]byte("x"), 1<<20)) })
	tr := plainTransport()
	for range 2 {
		req, _ := http.NewRequest("GET", u.URL, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Read(make([]byte, 10))
		resp.Body.Close()
	}
	if n := u.conns.Load(); n != 2 {
		t.Fatalf("server saw %d connections, want 2 (an unread body must not be reused)", n)
	}
}

func TestRequestBodiesAndTrailersArrive(t *testing.T) {
	u := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%d %v %s trailer=%s", len(b), r.TransferEncoding, r.Header.Get("X-Test"), r.Trailer.Get("X-Sum"))
	})
	tr := plainTransport()
	cases := []struct {
		name    string
		body    io.Reader
		length  int64
		trailer http.Header
		want    string
	}{
		{"content-length", strings.NewReader(strings.Repeat("a", 100000)), 100000, nil, "100000 [] yes trailer="},
		{"chunked with trailer", io.MultiReader(strings.NewReader("abc"), strings.NewReader("def")), -1, http.Header{"X-Sum": {"6"}}, "6 [chunked] yes trailer=6"},
		{"empty", http.NoBody, 0, nil, "0 [] yes trailer="},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.body
			if body != http.NoBody {
				body = io.NopCloser(body) // no GetBody, no known length
			}
			req, _ := http.NewRequest("POST", u.URL, body)
			req.ContentLength = tc.length
			req.Header.Set("X-Test", "yes")
			req.Trailer = tc.trailer
			if _, b := send(t, tr, req); b != tc.want {
				t.Fatalf("server saw %q, want %q", b, tc.want)
			}
		})
	}
}

func TestNoBodyResponsesReleaseTheConnectionAtOnce(t *testing.T) {
	u := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/204" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		fmt.Fprint(w, "body")
	})
	tr := plainTransport()
	for _, c := range []struct{ method, path string }{{"HEAD", "/"}, {"GET", "/204"}} {
		req, _ := http.NewRequest(c.method, u.URL+c.path, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		if n := tr.IdleCount(u.Listener.Addr().String()); n != 1 {
			t.Fatalf("%s %s: idle connections %d before the body is read, want 1", c.method, c.path, n)
		}
		resp.Body.Close()
	}
	if n := u.conns.Load(); n != 1 {
		t.Fatalf("server saw %d connections, want 1", n)
	}
}

func TestConnectionCloseIsNotPooled(t *testing.T) {
	u := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		fmt.Fprint(w, "bye")
	})
	tr := plainTransport()
	get(t, tr, u.URL)
	get(t, tr, u.URL)
	if n, idle := u.conns.Load(), tr.IdleCount(u.Listener.Addr().String()); n != 2 || idle != 0 {
		t.Fatalf("connections %d idle %d, want 2 and 0", n, idle)
	}
}

// With a held request, the reset that answers it must wake the read (the
// server's FIN arrived while the connection was idle).
func TestServerClosedIdleConnectionIsRetriedWhenReplayable(t *testing.T) {
	for _, d := range dialers {
		t.Run(d.name, func(t *testing.T) { testServerClosedIdleConnection(t, &Transport{DialContext: d.dial}) })
	}
}

func testServerClosedIdleConnection(t *testing.T, tr *Transport) {
	u := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "ok %s", b)
	})
	get(t, tr, u.URL)
	u.CloseClientConnections() // the server drops the idle keep-alive connection
	time.Sleep(20 * time.Millisecond)

	resp, body := get(t, tr, u.URL)
	if resp.StatusCode != 200 || body != "ok " {
		t.Fatalf("GET on a closed idle connection: %d %q", resp.StatusCode, body)
	}

	u.CloseClientConnections()
	time.Sleep(20 * time.Millisecond)
	req, _ := http.NewRequest("POST", u.URL, bytes.NewReader([]byte("payload"))) // sets GetBody
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("replayable POST on a closed idle connection: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "ok payload" {
		t.Fatalf("replayed POST body: %q", b)
	}

	u.CloseClientConnections()
	time.Sleep(20 * time.Millisecond)
	req, _ = http.NewRequest("POST", u.URL, io.NopCloser(strings.NewReader("once"))) // no GetBody
	req.ContentLength = 4
	if _, err := tr.RoundTrip(req); !errors.Is(err, errServerClosedIdle) {
		t.Fatalf("non-replayable POST on a closed idle connection: %v, want errServerClosedIdle", err)
	}
}

func TestCancelInterruptsHeadersAndBody(t *testing.T) {
	release := make(chan struct{})
	u := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/body" {
			w.Write([]byte("start"))
			w.(http.Flusher).Flush()
		}
		<-release
	})
	defer close(release)
	tr := plainTransport()

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", u.URL+"/headers", nil)
	start := time.Now()
	if _, err := tr.RoundTrip(req); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 3*time.Second {
		t.Fatalf("waiting for headers past the deadline: %v after %v", err, time.Since(start))
	}

	ctx2, cancel2 := context.WithCancel(context.Background())
	req, _ = http.NewRequestWithContext(ctx2, "GET", u.URL+"/body", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(50*time.Millisecond, cancel2)
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Fatal("reading a body after the request was cancelled: no error")
	}
	resp.Body.Close()
	if n := tr.IdleCount(u.Listener.Addr().String()); n != 0 {
		t.Fatalf("an interrupted connection went back to the pool (%d idle)", n)
	}
}

func TestUpgradeGivesTheConnectionToTheCaller(t *testing.T) {
	u := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		brw.WriteString("echo: " + line)
		brw.Flush()
	})
	tr := plainTransport()
	req, _ := http.NewRequest("GET", u.URL, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "echo")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	rw, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		t.Fatalf("101 body %T is not an io.ReadWriteCloser", resp.Body)
	}
	defer rw.Close()
	rw.Write([]byte("ping\n"))
	line, err := bufio.NewReader(rw).ReadString('\n')
	if err != nil || line != "echo: ping\n" {
		t.Fatalf("through the upgraded connection: %q %v", line, err)
	}
}

// rawUpstream answers the n-th request it reads (from 1, over all
// connections) with the bytes answer(n) returns, closing the connection
// after them when hangUp is set; requests counts what it read.
func rawUpstream(t *testing.T, answer func(n int64) (reply string, hangUp bool)) (url string, requests *atomic.Int64) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	requests = new(atomic.Int64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					if _, err := http.ReadRequest(br); err != nil {
						return
					}
					reply, hangUp := answer(requests.Add(1))
					c.Write([]byte(reply))
					if hangUp {
						return
					}
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String(), requests
}

func TestInterimResponsesAreSkipped(t *testing.T) {
	url, _ := rawUpstream(t, func(int64) (string, bool) {
		return "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
	})
	tr := plainTransport()
	for range 2 {
		resp, body := get(t, tr, url)
		if resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
	}
}

func TestIdleConnectionsExpire(t *testing.T) {
	u := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })
	now := time.Unix(1000, 0)
	tr := plainTransport()
	tr.IdleTimeout = time.Minute
	tr.now = func() time.Time { return now }
	get(t, tr, u.URL)
	now = now.Add(59 * time.Second)
	get(t, tr, u.URL)
	if n := u.conns.Load(); n != 1 {
		t.Fatalf("connections %d after 59s idle, want 1", n)
	}
	now = now.Add(61 * time.Second)
	get(t, tr, u.URL)
	if n := u.conns.Load(); n != 2 {
		t.Fatalf("connections %d after 61s idle, want 2", n)
	}
}

func TestMaxIdlePerHost(t *testing.T) {
	release := make(chan struct{})
	u := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { <-release; fmt.Fprint(w, "ok") })
	tr := plainTransport()
	tr.MaxIdlePerHost = 2
	done := make(chan error, 5)
	for range 5 {
		go func() {
			req, _ := http.NewRequest("GET", u.URL, nil)
			resp, err := tr.RoundTrip(req)
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			done <- err
		}()
	}
	for u.conns.Load() < 5 {
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	for range 5 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if n := tr.IdleCount(u.Listener.Addr().String()); n != 2 {
		t.Fatalf("idle %d, want 2", n)
	}
	tr.CloseIdleConnections()
	if n := tr.IdleCount(u.Listener.Addr().String()); n != 0 {
		t.Fatalf("idle %d after CloseIdleConnections", n)
	}
}

func TestTLSAndALPN(t *testing.T) {
	u := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.Proto, " ", r.TLS != nil)
	}))
	u.EnableHTTP2 = true
	u.StartTLS()
	defer u.Close()
	pool := u.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs

	tr := &Transport{DialContext: dial, TLS: &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}}}
	if _, body := get(t, tr, u.URL); body != "HTTP/1.1 true" {
		t.Fatalf("over TLS: %q", body)
	}

	h2only := &Transport{DialContext: dial, TLS: &tls.Config{RootCAs: pool, NextProtos: []string{"h2"}}}
	req, _ := http.NewRequest("GET", u.URL, nil)
	if _, err := h2only.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "want http/1.1") {
		t.Fatalf("h2 negotiated: %v", err)
	}

	plain := plainTransport()
	req, _ = http.NewRequest("GET", u.URL, nil)
	if _, err := plain.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "no TLS config") {
		t.Fatalf("https without TLS config: %v", err)
	}
}

// TestRequestsAreHeldOnRawConnections: the saving needs the TCP
// connection under TLS too; net's own connections cannot hold.
func TestRequestsAreHeldOnRawConnections(t *testing.T) {
	u := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer u.Close()
	pool := u.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	addr := u.Listener.Addr().String()
	for _, tc := range []struct {
		name     string
		dial     func(ctx context.Context, network, addr string) (net.Conn, error)
		useTLS   bool
		wantHold bool
	}{
		{"rawconn", dial, false, true},
		{"rawconn under TLS", dial, true, true},
		{"net", (&net.Dialer{}).DialContext, false, false},
		{"net under TLS", (&net.Dialer{}).DialContext, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &Transport{DialContext: tc.dial, TLS: &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}}}
			c, _, err := tr.getConn(context.Background(), time.Time{}, addr, tc.useTLS)
			if err != nil {
				t.Fatal(err)
			}
			defer c.nc.Close()
			if got := c.hold != nil; got != tc.wantHold {
				t.Fatalf("connection holds requests: %v, want %v", got, tc.wantHold)
			}
		})
	}
}

// holdCounter is a raw connection that counts the holds asked of it.
type holdCounter struct {
	net.Conn
	holds *atomic.Int64
}

func (h holdCounter) HoldWrites() {
	h.holds.Add(1)
	h.Conn.(writeHolder).HoldWrites()
}

// TestWhichRequestsAreHeld: a request written without waiting on anything
// is held for the read of its response; a streamed body is not.
func TestWhichRequestsAreHeld(t *testing.T) {
	u := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s", b)
	})
	var holds atomic.Int64
	tr := &Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		return holdCounter{Conn: c, holds: &holds}, err
	}}
	streamed := func() *http.Request {
		req, _ := http.NewRequest("POST", u.URL, io.NopCloser(strings.NewReader("streamed")))
		req.ContentLength = 8
		return req
	}
	inMemory := func() *http.Request { // NewRequest sets GetBody
		req, _ := http.NewRequest("POST", u.URL, strings.NewReader("in memory"))
		return req
	}
	noBody := func() *http.Request { req, _ := http.NewRequest("GET", u.URL, nil); return req }
	for _, tc := range []struct {
		name string
		req  func() *http.Request
		want int64
		body string
	}{
		{"no body", noBody, 1, ""},
		{"body in memory", inMemory, 1, "in memory"},
		{"streamed body", streamed, 0, "streamed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := holds.Load()
			if _, b := send(t, tr, tc.req()); b != tc.body {
				t.Fatalf("echoed %q, want %q", b, tc.body)
			}
			if got := holds.Load() - before; got != tc.want {
				t.Fatalf("%d holds, want %d", got, tc.want)
			}
		})
	}
}

func TestDialErrorsComeBackUnwrapped(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	req, _ := http.NewRequest("GET", "http://"+addr, nil)
	_, err := plainTransport().RoundTrip(req)
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		t.Fatalf("dial failure: %v, want a dial *net.OpError (the forwarder counts it as a connect failure)", err)
	}
}

func TestBurstWaitsForConnectionsInsteadOfDialingEach(t *testing.T) {
	u := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Millisecond)
		fmt.Fprint(w, "ok")
	})
	var dials atomic.Int64
	tr := &Transport{MaxDialsPerHost: 2, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		time.Sleep(30 * time.Millisecond) // an mTLS handshake's worth, exaggerated
		return dial(ctx, network, addr)
	}}
	const burst = 60
	errs := make(chan error, burst)
	for range burst {
		go func() {
			req, _ := http.NewRequest("GET", u.URL, nil)
			resp, err := tr.RoundTrip(req)
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			errs <- err
		}()
	}
	for range burst {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// Each dial takes 30 ms while a request takes 2: most of the burst is
	// served by connections given back, not by a dial each.
	if n := dials.Load(); n > burst/2 {
		t.Fatalf("%d dials for a burst of %d requests", n, burst)
	}
}

func TestDialFailureReachesEveryWaiter(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	tr := plainTransport()
	tr.MaxDialsPerHost = 2
	errs := make(chan error, 10)
	for range 10 {
		go func() {
			req, _ := http.NewRequest("GET", "http://"+addr, nil)
			_, err := tr.RoundTrip(req)
			errs <- err
		}()
	}
	for range 10 {
		select {
		case err := <-errs:
			var op *net.OpError
			if !errors.As(err, &op) || op.Op != "dial" {
				t.Fatalf("waiter got %v, want the dial error", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a waiter never got an answer")
		}
	}
}

func TestWaiterGivesUpWithItsContext(t *testing.T) {
	release := make(chan struct{})
	u := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { <-release })
	defer close(release)
	block := make(chan struct{})
	defer close(block)
	var dials atomic.Int64
	tr := &Transport{MaxDialsPerHost: 1, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if dials.Add(1) > 1 {
			<-block // the second dial never finishes: the waiter must leave on its own
		}
		return dial(ctx, network, addr)
	}}
	go func() {
		req, _ := http.NewRequest("GET", u.URL, nil)
		if resp, err := tr.RoundTrip(req); err == nil {
			resp.Body.Close()
		}
	}()
	for u.conns.Load() < 1 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", u.URL, nil)
	start := time.Now()
	if _, err := tr.RoundTrip(req); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("waiting for a connection past the deadline: %v after %v", err, time.Since(start))
	}
}

func TestPartialResponseIsNotResent(t *testing.T) {
	url, requests := rawUpstream(t, func(n int64) (string, bool) {
		if n == 1 {
			return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
		}
		return "HTTP/1.1 200 O", true // cut off mid status line
	})
	tr := plainTransport()
	get(t, tr, url)
	req, _ := http.NewRequest("GET", url, nil)
	if _, err := tr.RoundTrip(req); err == nil || errors.Is(err, errServerClosedIdle) {
		t.Fatalf("a response cut off after its first bytes: %v, want a read error that is not errServerClosedIdle", err)
	}
	if n := requests.Load(); n != 2 {
		t.Fatalf("server saw %d requests, want 2: a started response must not be sent again", n)
	}
}

// Two hosts behind one ServerName, as a cluster's endpoints share its
// SNI: each host's session resumes on the next connection to it, though
// the other host was dialled in between.
func TestTLSSessionsResumePerAddress(t *testing.T) {
	var hosts [2]*httptest.Server
	for i := range hosts {
		hosts[i] = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, r.TLS.DidResume)
		}))
		hosts[i].StartTLS()
		defer hosts[i].Close()
	}
	pool := hosts[0].Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	var full, resumed atomic.Int64
	tr := &Transport{DialContext: dial, ResumeSessions: true,
		TLS: &tls.Config{RootCAs: pool, ServerName: "example.com", NextProtos: []string{"http/1.1"}},
		OnHandshake: func(r bool) {
			if r {
				resumed.Add(1)
			} else {
				full.Add(1)
			}
		}}
	for round, want := range []string{"false", "true", "true"} {
		for _, h := range hosts {
			if _, body := get(t, tr, h.URL); body != want {
				t.Fatalf("round %d, %s: server saw DidResume %s, want %s", round+1, h.URL, body, want)
			}
		}
		tr.CloseIdleConnections()
	}
	if full.Load() != 2 || resumed.Load() != 4 {
		t.Fatalf("handshakes reported: %d full, %d resumed; want 2 and 4", full.Load(), resumed.Load())
	}

	// Without ResumeSessions every connection is a full handshake.
	plain := &Transport{DialContext: dial, TLS: &tls.Config{RootCAs: pool, ServerName: "example.com", NextProtos: []string{"http/1.1"}}}
	for range 2 {
		if _, body := get(t, plain, hosts[0].URL); body != "false" {
			t.Fatalf("resumed without ResumeSessions")
		}
		plain.CloseIdleConnections()
	}
}

// An idle connection past the idle timeout is closed without waiting for
// the next request to its address (which, for an endpoint gone from the
// cluster, never comes), and the address is forgotten.
func TestIdleConnectionsAreReaped(t *testing.T) {
	var closed atomic.Int64
	u := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	u.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			closed.Add(1)
		}
	}
	u.Start()
	defer u.Close()
	tr := plainTransport()
	tr.IdleTimeout = 50 * time.Millisecond
	get(t, tr, u.URL)
	if n := tr.IdleCount(u.Listener.Addr().String()); n != 1 {
		t.Fatalf("idle %d after one request, want 1", n)
	}
	deadline := time.Now().Add(2 * time.Second)
	for closed.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the idle connection was not closed after the idle timeout")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for {
		tr.mu.Lock()
		hosts, reaping := len(tr.hosts), tr.reaping
		tr.mu.Unlock()
		if hosts == 0 && !reaping {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d addresses still kept (sweep scheduled: %v)", hosts, reaping)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The pool works on after the sweep.
	if _, body := get(t, tr, u.URL); body != "ok" {
		t.Fatalf("after the sweep: %q", body)
	}
}

// MaxConnectionDuration: a connection that old is not taken from the pool
// again, one that reaches it during a request is closed after the
// response, an idle one is swept, and a new connection serves its first
// request however short the limit.
func TestMaxConnectionDuration(t *testing.T) {
	var opened, closed atomic.Int64
	u := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	u.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			opened.Add(1)
		case http.StateClosed:
			closed.Add(1)
		}
	}
	u.Start()
	defer u.Close()
	addr := u.Listener.Addr().String()
	eventually := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal(what)
			}
		}
	}

	t.Run("reuse until the limit", func(t *testing.T) {
		opened.Store(0)
		var mu sync.Mutex
		now := time.Unix(1_000_000, 0)
		tr := plainTransport()
		tr.MaxConnectionDuration = time.Minute
		tr.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
		defer tr.CloseIdleConnections()
		get(t, tr, u.URL)
		advance(59 * time.Second)
		get(t, tr, u.URL)
		if n := opened.Load(); n != 1 {
			t.Fatalf("%d connections opened within the limit, want 1", n)
		}
		advance(time.Second)
		get(t, tr, u.URL)
		if n := opened.Load(); n != 2 {
			t.Fatalf("%d connections opened after the limit, want 2", n)
		}
		// The limit passing while a response is read: closed after it.
		req, _ := http.NewRequest("GET", u.URL, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		advance(time.Minute)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if n := tr.IdleCount(addr); n != 0 {
			t.Fatalf("%d idle connections after one reached the limit in use, want 0", n)
		}
	})

	t.Run("idle connections are swept", func(t *testing.T) {
		before := closed.Load()
		tr := plainTransport()
		tr.MaxConnectionDuration = 30 * time.Millisecond
		tr.IdleTimeout = time.Hour
		get(t, tr, u.URL)
		eventually("the idle connection was not closed at its maximum duration", func() bool { return closed.Load() > before })
		eventually("the swept connection is still counted idle", func() bool { return tr.IdleCount(addr) == 0 })
	})

	t.Run("a new connection serves one request", func(t *testing.T) {
		opened.Store(0)
		tr := plainTransport()
		tr.MaxConnectionDuration = time.Nanosecond
		for range 3 {
			if _, body := get(t, tr, u.URL); body != "ok" {
				t.Fatalf("body %q", body)
			}
		}
		if n := opened.Load(); n != 3 {
			t.Fatalf("%d connections for 3 requests, want 3", n)
		}
	})
}

// A resumed session can be refused by either end: by the server after the
// client's side of the handshake is done (TLS 1.3), so that the request
// fails on its first read; or by our own check during the handshake (the
// trust bundle changed since the session was made, say). Either way the
// transport forgets the session and connects again with a full handshake,
// instead of failing the request and offering the same session on every
// new connection.
func TestRefusedResumptionFallsBackToAFullHandshake(t *testing.T) {
	for _, refuser := range []string{"server", "client"} {
		t.Run("refused by the "+refuser, func(t *testing.T) {
			var refusals atomic.Int64
			refuseResumed := func(cs tls.ConnectionState) error {
				if cs.DidResume {
					refusals.Add(1)
					return errors.New("resumed sessions are refused")
				}
				return nil
			}
			u := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprint(w, r.TLS.DidResume)
			}))
			u.TLS = &tls.Config{}
			clientTLS := &tls.Config{ServerName: "example.com", NextProtos: []string{"http/1.1"}}
			if refuser == "server" {
				u.TLS.VerifyConnection = refuseResumed
			} else {
				clientTLS.VerifyConnection = refuseResumed
			}
			u.StartTLS()
			defer u.Close()
			clientTLS.RootCAs = u.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
			tr := &Transport{DialContext: dial, ResumeSessions: true, TLS: clientTLS}
			for i := range 3 {
				if _, body := get(t, tr, u.URL); body != "false" {
					t.Fatalf("request %d: %q, want an answer over a full handshake", i+1, body)
				}
				tr.CloseIdleConnections()
			}
			if refusals.Load() == 0 {
				t.Fatal("no resumption was attempted: the test proves nothing")
			}
		})
	}
}
