package proxy_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/proxy"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/xds"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/xdstest"
)

// sidecar is a proxy configured by its own test ADS server.
type sidecar struct {
	xds    *xdstest.Server
	proxy  *proxy.Proxy
	client *xds.Client
	reg    *prometheus.Registry
}

// startSidecar runs a proxy + ADS client; every listener binds to a free
// loopback port (look it up with addr).
func startSidecar(t testing.TB, id proxy.Identity, listeners ...string) *sidecar {
	t.Helper()
	s := &sidecar{xds: xdstest.Start(t), reg: prometheus.NewRegistry()}
	bind := map[string]string{}
	for _, l := range listeners {
		bind[l] = "127.0.0.1:0"
	}
	s.proxy = proxy.New(proxy.Config{Metrics: s.reg, Identity: id, Bind: bind, Drain: 2 * time.Second})
	s.client = xds.NewClient(xds.ClientConfig{Conn: s.xds.Conn(t), Node: xds.Node{ID: xdstest.NodeID}, Backoff: 20 * time.Millisecond, OnUpdate: s.proxy.Apply})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = s.proxy.Run(ctx) })
	wg.Go(func() { _ = s.client.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return s
}

// set publishes res and waits until the proxy has applied that version and is ready.
func (s *sidecar) set(t testing.TB, version string, res xdstest.Resources) {
	t.Helper()
	s.xds.Set(t, version, res)
	eventually(t, "config "+version+" applied", func() bool {
		snap := s.proxy.Snapshot()
		if snap == nil || s.proxy.Ready() != nil {
			return false
		}
		for _, v := range snap.Versions {
			if v != version {
				return false
			}
		}
		return len(snap.Versions) >= 2
	})
}

func (s *sidecar) addr(name string) string { return s.proxy.Addr(name) }

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// backend is a real HTTP server on loopback that answers with its name.
type backend struct {
	name string
	srv  *httptest.Server
	hits atomic.Int64
	// handler overrides the default answer when set.
	handler func(w http.ResponseWriter, r *http.Request)
	mu      sync.Mutex
	last    *http.Request
}

func newBackend(t testing.TB, name string, h func(w http.ResponseWriter, r *http.Request)) *backend {
	b := &backend{name: name, handler: h}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		b.mu.Lock()
		b.last = r.Clone(context.Background())
		b.mu.Unlock()
		if b.handler != nil {
			b.handler(w, r)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, name)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *backend) addr() string { return b.srv.Listener.Addr().String() }

func (b *backend) lastRequest() *http.Request {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last
}

var httpClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 100}, Timeout: 10 * time.Second}

// get calls the sidecar's outbound listener as an app would.
func get(t *testing.T, outbound, host, path string, hdr ...string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+outbound+path, nil)
	req.Host = host
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s%s: %v", host, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}
