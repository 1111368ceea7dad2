package sidecar_test

import (
	"fmt"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-mesh/switchyard/test/harness"
)

// ordersApp counts what reaches it: /slow holds requests until released,
// /fail answers 503, everything else 200.
type ordersApp struct {
	hits, fails atomic.Int64
	release     chan struct{}
}

func (a *ordersApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/healthz":
		return
	case "/slow":
		a.hits.Add(1)
		select {
		case <-a.release:
		case <-r.Context().Done():
		}
	case "/timed/slow": // held until the caller's side gives up
		<-r.Context().Done()
	case "/fail":
		a.fails.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	default:
		a.hits.Add(1)
		fmt.Fprint(w, "orders")
	}
}

func TestResilienceThroughTheMesh(t *testing.T) {
	m := startMesh(t)
	app := &ordersApp{release: make(chan struct{})}
	defer close(app.release)
	m.startSidecar(t, "orders", "orders-1", startHandler(t, app))
	var shadowHits atomic.Int64
	shadowDone := make(chan time.Time, 100)
	m.startSidecar(t, "shadow", "shadow-1", startHandler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		time.Sleep(2 * time.Second) // a slow mirror must not slow the caller
		shadowHits.Add(1)
		shadowDone <- time.Now()
		w.WriteHeader(500)
	})))
	frontend := m.startSidecar(t, "frontend", "frontend-1", 0)
	// The gRPC conditions ride along: a sidecar that refused them would
	// NACK the whole route, and no retry below would happen.
	m.Apply(t, `kind: ServiceDefaults
name: orders
spec:
  retries: {attempts: 3, retry_on: [5xx, unavailable, cancelled], backoff: {base_interval: 1ms}, budget: {percent: 20, min_retry_concurrency: 1}}
  circuit_breaker: {max_requests: 2, max_pending_requests: 1, max_retries: 100}
---
kind: HTTPRoute
name: orders
spec:
  service: orders
  rules:
    - name: fault
      matches: [{path: {prefix: /fault}}]
      backends: [{service: orders}]
      fault: {abort: {http_status: 418, percent: 30}}
    - name: mirror
      matches: [{path: {prefix: /mirror}}]
      backends: [{service: orders}]
      mirror: {backend: {service: shadow}}
    - name: timed
      matches: [{path: {prefix: /timed}}]
      backends: [{service: orders}]
      timeout: 300ms
    - name: rest
      matches: [{path: {prefix: /}}]
      backends: [{service: orders}]
`)
	harness.Poll(t, 30*time.Second, func() error {
		if hosts(t, frontend.admin, "orders") != 1 || hosts(t, frontend.admin, "shadow") != 1 {
			return fmt.Errorf("orders/shadow endpoints not there yet")
		}
		code, _, _, err := call(frontend.outbound, "orders", "/fault")
		if err != nil || (code != 200 && code != 418) {
			return fmt.Errorf("fault route not applied yet: %d %v", code, err)
		}
		return nil
	})

	t.Run("retries stay within the budget", func(t *testing.T) {
		const n = 200
		for range n {
			if code, _, _, err := call(frontend.outbound, "orders", "/fail"); err != nil || code != 503 {
				t.Fatalf("%d %v", code, err)
			}
		}
		// The budget is 20 % of all requests to the cluster in the last 10 s
		// (here these 200 plus the few readiness probes above) plus a floor
		// of one retry per window. It runs first so earlier subtests'
		// successful requests do not widen it.
		if got, limit := app.fails.Load(), int64(1.2*n)+5; got > limit || got <= n {
			t.Fatalf("%d upstream attempts for %d failing requests, want in (%d, %d]", got, n, n, limit)
		}
	})

	t.Run("fault injection aborts the configured share", func(t *testing.T) {
		const n = 1000
		aborted := 0
		for range n {
			code, _, hdr, err := call(frontend.outbound, "orders", "/fault")
			if err != nil {
				t.Fatal(err)
			}
			if code == 418 && hdr.Get("x-switchyard-reason") == "fault_abort" {
				aborted++
			}
		}
		mean, sd := n*0.3, math.Sqrt(n*0.3*0.7)
		if float64(aborted) < mean-3.29*sd || float64(aborted) > mean+3.29*sd {
			t.Fatalf("%d of %d aborted, want ≈%.0f", aborted, n, mean)
		}
	})

	t.Run("mirroring sends a copy without changing the response or latency", func(t *testing.T) {
		start := time.Now()
		code, body, _, err := call(frontend.outbound, "orders", "/mirror")
		took := time.Since(start)
		if err != nil || code != 200 || body != "orders" {
			t.Fatalf("mirrored request: %d %q %v", code, body, err)
		}
		if took > time.Second {
			t.Fatalf("mirrored request took %v: the caller waited for the 2s mirror", took)
		}
		select {
		case <-shadowDone:
		case <-time.After(5 * time.Second):
			t.Fatal("the mirror never received its copy")
		}
	})

	t.Run("the route timeout answers 504 and frees the slot", func(t *testing.T) {
		for range 3 { // more than max_requests: each must give its slot back
			start := time.Now()
			code, _, hdr, err := call(frontend.outbound, "orders", "/timed/slow")
			took := time.Since(start)
			if err != nil || code != 504 || hdr.Get("x-switchyard-reason") != "upstream_timeout" {
				t.Fatalf("got %d %q %v, want 504 upstream_timeout", code, hdr.Get("x-switchyard-reason"), err)
			}
			if took < 300*time.Millisecond || took > 3*time.Second {
				t.Fatalf("answered after %v, want the 300ms route timeout", took)
			}
		}
		if code, body, _, err := call(frontend.outbound, "orders", "/timed"); err != nil || code != 200 || body != "orders" {
			t.Fatalf("a quick request on the timed route: %d %q %v", code, body, err)
		}
	})

	t.Run("a slow backend behind the breaker: excess requests fail fast", func(t *testing.T) {
		var wg sync.WaitGroup
		for range 3 { // 2 in flight + 1 pending fill the breaker
			wg.Go(func() { _, _, _, _ = call(frontend.outbound, "orders", "/slow") })
		}
		harness.Poll(t, 5*time.Second, func() error {
			if app.hits.Load() < 2 {
				return fmt.Errorf("slow requests not in flight yet")
			}
			return nil
		})
		time.Sleep(100 * time.Millisecond)
		for range 5 {
			start := time.Now()
			code, _, hdr, err := call(frontend.outbound, "orders", "/slow")
			if err != nil || code != 503 || hdr.Get("x-switchyard-reason") != "overflow:max_pending_requests" {
				t.Fatalf("got %d %q %v, want 503 overflow:max_pending_requests", code, hdr.Get("x-switchyard-reason"), err)
			}
			// /slow holds requests until released: well under the route
			// timeout is failing fast, even on a loaded machine.
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("overflow answered after %v, want fail-fast", d)
			}
		}
		app.release <- struct{}{}
		app.release <- struct{}{}
		app.release <- struct{}{}
		wg.Wait()
	})
	t.Run("a route change applies without dropping in-flight requests", func(t *testing.T) {
		before := app.hits.Load()
		results := make(chan int, 2)
		for range 2 {
			go func() {
				code, _, _, err := call(frontend.outbound, "orders", "/slow")
				if err != nil {
					code = 0
				}
				results <- code
			}()
		}
		harness.Poll(t, 5*time.Second, func() error {
			if app.hits.Load() < before+2 {
				return fmt.Errorf("slow requests not in flight yet")
			}
			return nil
		})
		m.Apply(t, `kind: HTTPRoute
name: orders
spec:
  service: orders
  rules:
    - name: gone
      matches: [{path: {prefix: /gone}}]
      backends: [{service: orders}]
      fault: {abort: {http_status: 451, percent: 100}}
    - name: rest
      matches: [{path: {prefix: /}}]
      backends: [{service: orders}]
`)
		// Both breaker slots are taken by the slow requests, so watch the
		// applied config rather than sending traffic that would queue.
		waitForConfig(t, frontend.admin, `"/gone"`)
		app.release <- struct{}{}
		app.release <- struct{}{}
		for range 2 {
			if code := <-results; code != 200 {
				t.Fatalf("an in-flight request ended with %d across the route change", code)
			}
		}
		if code, _, _, err := call(frontend.outbound, "orders", "/gone"); err != nil || code != 451 {
			t.Fatalf("the new route does not apply: %d %v", code, err)
		}
	})

	if shadowHits.Load() != 1 {
		t.Fatalf("the mirror got %d copies, want 1", shadowHits.Load())
	}
}
