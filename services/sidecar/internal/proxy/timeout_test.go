package proxy_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/xdstest"
)

// TestRouteTimeout: the route timeout covers the wait for a connection or
// a request slot, every attempt and backoff, and the response body; past
// it the caller gets 504 upstream_timeout (or, once the body has begun, a
// cut connection), and a connection that served a request in time is
// reused after that request's deadline has passed.
func TestRouteTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	hold := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}
	for _, tc := range []struct {
		name    string
		h2      bool
		backend func(w http.ResponseWriter, r *http.Request)
		route   func(*routev3.RouteAction)
		cluster func(*clusterv3.Cluster)
		busy    int // requests held in flight first
	}{
		{name: "slow answer", backend: hold},
		{name: "slow answer over h2", h2: true, backend: hold},
		{name: "retries and backoff", backend: func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) },
			route: func(ra *routev3.RouteAction) {
				ra.RetryPolicy = &routev3.RetryPolicy{RetryOn: "5xx", NumRetries: wrapperspb.UInt32(5),
					RetryBackOff: &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(time.Second)}}
			}},
		{name: "waiting as pending", backend: hold, busy: 1, cluster: func(c *clusterv3.Cluster) {
			c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
				MaxRequests: wrapperspb.UInt32(1), MaxPendingRequests: wrapperspb.UInt32(5)}}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := timeoutBackend(t, tc.h2, tc.backend)
			s := startSidecar(t, nil, "outbound")
			s.set(t, "1", outbound([]*routev3.Route{routeTo("users", func(ra *routev3.RouteAction) {
				ra.Timeout = durationpb.New(timeout)
				if tc.route != nil {
					tc.route(ra)
				}
			})}, map[string][]string{"users": {b.addr}}, func(c *clusterv3.Cluster) {
				if tc.h2 {
					upstreamH2(c)
				}
				if tc.cluster != nil {
					tc.cluster(c)
				}
			}))
			var busy sync.WaitGroup
			for range tc.busy {
				busy.Go(func() { _, _, _ = tryGet(s.addr("outbound"), "users", "/") })
			}
			eventually(t, "requests in flight", func() bool { return b.hits.Load() >= int64(tc.busy) })
			start := time.Now()
			code, _, hdr := get(t, s.addr("outbound"), "users", "/")
			took := time.Since(start)
			if code != http.StatusGatewayTimeout || hdr.Get("x-switchyard-reason") != "upstream_timeout" {
				t.Fatalf("got %d %q, want 504 upstream_timeout", code, hdr.Get("x-switchyard-reason"))
			}
			if took < timeout || took > timeout+2*time.Second {
				t.Fatalf("answered after %v, want the route timeout (%v)", took, timeout)
			}
			busy.Wait()
			if tc.h2 && b.proto.first() != "HTTP/2.0" {
				t.Fatalf("upstream saw %s, want HTTP/2.0", b.proto.first())
			}
		})
	}

	t.Run("body past the deadline", func(t *testing.T) {
		b := timeoutBackend(t, false, func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "12345") // unsized: streamed as it comes
			w.(http.Flusher).Flush()
			hold(w, r)
		})
		s := startSidecar(t, nil, "outbound")
		s.set(t, "1", outbound([]*routev3.Route{routeTo("users", func(ra *routev3.RouteAction) { ra.Timeout = durationpb.New(timeout) })},
			map[string][]string{"users": {b.addr}}, nil))
		start := time.Now()
		code, body, err := tryGet(s.addr("outbound"), "users", "/")
		if err == nil || code != 200 || body != "12345" {
			t.Fatalf("got %d %q, %v; want 200, the first 5 bytes, then a cut", code, body, err)
		}
		if took := time.Since(start); took < timeout || took > timeout+2*time.Second {
			t.Fatalf("cut after %v, want the route timeout (%v)", took, timeout)
		}
	})

	t.Run("connection reused after a deadline", func(t *testing.T) {
		b := timeoutBackend(t, false, nil)
		s := startSidecar(t, nil, "outbound")
		timed := xdstest.PrefixRoute("/timed", "users")
		timed.GetRoute().Timeout = durationpb.New(timeout)
		untimed := xdstest.PrefixRoute("/", "users")
		untimed.GetRoute().Timeout = durationpb.New(0)
		s.set(t, "1", outbound([]*routev3.Route{timed, untimed}, map[string][]string{"users": {b.addr}}, nil))
		for i, path := range []string{"/timed", "/", "/timed", "/"} {
			if code, body, err := tryGet(s.addr("outbound"), "users", path); err != nil || code != 200 || body != "ok" {
				t.Fatalf("request %d (%s): %d %q %v", i, path, code, body, err)
			}
			// The timed request's deadline passes while its connection idles;
			// the untimed one that reuses it must not inherit it.
			time.Sleep(timeout + 100*time.Millisecond)
		}
		if n := b.conns.Len(); n != 1 {
			t.Fatalf("upstream saw %d connections, want 1 reused", n)
		}
	})
}

// timeoutBackend is an upstream that records each request's protocol and
// connection; h2 serves HTTP/2 without TLS (h2c) beside HTTP/1.1.
func timeoutBackend(t *testing.T, h2 bool, h http.HandlerFunc) *recordingBackend {
	b := &recordingBackend{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		b.proto.add(r.Proto)
		b.conns.add(r.RemoteAddr)
		if h == nil {
			_, _ = io.WriteString(w, "ok")
			return
		}
		h(w, r)
	}))
	if h2 {
		srv.Config.Protocols = new(http.Protocols)
		srv.Config.Protocols.SetHTTP1(true)
		srv.Config.Protocols.SetUnencryptedHTTP2(true)
	}
	srv.Start()
	t.Cleanup(srv.Close)
	b.addr = srv.Listener.Addr().String()
	return b
}

type recordingBackend struct {
	addr         string
	hits         atomic.Int64
	proto, conns seen
}

// seen is a set of strings in the order first seen.
type seen struct {
	mu    sync.Mutex
	order []string
}

func (s *seen) add(v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.order {
		if o == v {
			return
		}
	}
	s.order = append(s.order, v)
}

func (s *seen) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.order)
}

func (s *seen) first() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.order) == 0 {
		return ""
	}
	return s.order[0]
}

// tryGet is get that returns a failed body read instead of failing.
func tryGet(outbound, host, path string) (int, string, error) {
	req, _ := http.NewRequest("GET", "http://"+outbound+path, nil)
	req.Host = host
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}
