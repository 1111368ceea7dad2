package proxy_test

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	commonfaultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	localrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/xdstest"
)

// outbound is the usual app-facing config: one HTTP listener routing every
// host through routes to clusters with the given endpoints.
func outbound(routes []*routev3.Route, clusters map[string][]string, tune func(*clusterv3.Cluster), filters ...*hcmv3.HttpFilter) xdstest.Resources {
	res := xdstest.Resources{
		Listeners: []types.Resource{xdstest.HTTPListener("outbound", "127.0.0.1:15001", "outbound", false, filters...)},
		Routes:    []types.Resource{xdstest.Routes("outbound", routes...)},
	}
	for name, eps := range clusters {
		c := xdstest.Cluster(name)
		if tune != nil {
			tune(c)
		}
		res.Clusters = append(res.Clusters, c)
		res.Endpoints = append(res.Endpoints, xdstest.Endpoints(name, eps...))
	}
	return res
}

func routeTo(cluster string, mutate func(*routev3.RouteAction)) *routev3.Route {
	r := xdstest.PrefixRoute("/", cluster)
	if mutate != nil {
		mutate(r.GetRoute())
	}
	return r
}

func TestRoundRobinThreeReplicas(t *testing.T) {
	var addrs []string
	var bs []*backend
	for i := range 3 {
		b := newBackend(t, string(rune('a'+i)), nil)
		bs = append(bs, b)
		addrs = append(addrs, b.addr())
	}
	s := startSidecar(t, nil, "outbound")
	s.set(t, "1", outbound([]*routev3.Route{routeTo("users", nil)}, map[string][]string{"users": addrs}, nil))
	for range 9 {
		if code, _, _ := get(t, s.addr("outbound"), "users", "/"); code != 200 {
			t.Fatalf("status %d", code)
		}
	}
	for _, b := range bs {
		if b.hits.Load() != 3 {
			t.Fatalf("hits %d/%d/%d, want 3-3-3", bs[0].hits.Load(), bs[1].hits.Load(), bs[2].hits.Load())
		}
	}
}

func TestWeightedSplitWithinBinomialInterval(t *testing.T) {
	v1, v2 := newBackend(t, "v1", nil), newBackend(t, "v2", nil)
	split := func(ra *routev3.RouteAction) {
		ra.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{Clusters: []*routev3.WeightedCluster_ClusterWeight{
			{Name: "users-v1", Weight: wrapperspb.UInt32(90)}, {Name: "users-v2", Weight: wrapperspb.UInt32(10)}}}}
	}
	s := startSidecar(t, nil, "outbound")
	s.set(t, "1", outbound([]*routev3.Route{routeTo("users-v1", split)}, map[string][]string{"users-v1": {v1.addr()}, "users-v2": {v2.addr()}}, nil))
	const n = 2000
	for range n {
		get(t, s.addr("outbound"), "users", "/")
	}
	// 99.9 % two-sided binomial interval: n·p ± 3.29·sqrt(n·p·(1-p)).
	mean, sd := n*0.1, math.Sqrt(n*0.1*0.9)
	lo, hi := mean-3.29*sd, mean+3.29*sd
	if got := float64(v2.hits.Load()); got < lo || got > hi {
		t.Fatalf("v2 got %v of %d, want within [%.0f, %.0f]", got, n, lo, hi)
	}
	if v1.hits.Load()+v2.hits.Load() != n {
		t.Fatal("requests lost")
	}
}

func TestKilledReplicaIsEjected(t *testing.T) {
	a, b, dead := newBackend(t, "a", nil), newBackend(t, "b", nil), newBackend(t, "dead", nil)
	deadAddr := dead.addr()
	tune := func(c *clusterv3.Cluster) {
		c.OutlierDetection = &clusterv3.OutlierDetection{ConsecutiveGatewayFailure: wrapperspb.UInt32(2), EnforcingConsecutiveGatewayFailure: wrapperspb.UInt32(100),
			Interval: durationpb.New(time.Second), BaseEjectionTime: durationpb.New(30 * time.Second), MaxEjectionPercent: wrapperspb.UInt32(50)}
	}
	s := startSidecar(t, nil, "outbound")
	s.set(t, "1", outbound([]*routev3.Route{routeTo("users", nil)}, map[string][]string{"users": {a.addr(), b.addr(), deadAddr}}, tune))
	for range 6 {
		get(t, s.addr("outbound"), "users", "/")
	}
	dead.srv.Close() // killed mid-load: connections refused from now on
	var failures, lastFailure int
	for i := range 60 {
		if code, _, _ := get(t, s.addr("outbound"), "users", "/"); code != 200 {
			failures++
			lastFailure = i
		}
	}
	if failures > 2 || lastFailure > 10 {
		t.Fatalf("%d failures, last at request %d: the dead replica was not ejected quickly", failures, lastFailure)
	}
	if a.hits.Load()+b.hits.Load() < 60-int64(failures) {
		t.Fatal("traffic did not move to the live replicas")
	}
}

func TestRetryBudgetBoundsAttempts(t *testing.T) {
	failing := newBackend(t, "failing", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) })
	retries := func(ra *routev3.RouteAction) {
		ra.RetryPolicy = &routev3.RetryPolicy{RetryOn: "5xx", NumRetries: wrapperspb.UInt32(3),
			RetryBackOff: &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(time.Millisecond)}}
	}
	budget := func(c *clusterv3.Cluster) {
		c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			MaxRetries:  wrapperspb.UInt32(100),
			RetryBudget: &clusterv3.CircuitBreakers_Thresholds_RetryBudget{BudgetPercent: &typev3.Percent{Value: 20}, MinRetryConcurrency: wrapperspb.UInt32(0)}}}}
	}
	s := startSidecar(t, nil, "outbound")
	s.set(t, "1", outbound([]*routev3.Route{routeTo("users", retries)}, map[string][]string{"users": {failing.addr()}}, budget))
	const n = 200
	for range n {
		if code, _, _ := get(t, s.addr("outbound"), "users", "/"); code != 503 {
			t.Fatalf("status %d", code)
		}
	}
	attempts := failing.hits.Load()
	if limit := int64(1.2 * n); attempts > limit {
		t.Fatalf("%d upstream attempts for %d requests, budget allows at most %d", attempts, n, limit)
	}
	if attempts <= n {
		t.Fatalf("no retries at all (%d attempts)", attempts)
	}
}

func TestBreakerFailsFast(t *testing.T) {
	release := make(chan struct{})
	slow := newBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	limits := func(c *clusterv3.Cluster) {
		c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			MaxRequests: wrapperspb.UInt32(2), MaxPendingRequests: wrapperspb.UInt32(0)}}}
	}
	s := startSidecar(t, nil, "outbound")
	s.set(t, "1", outbound([]*routev3.Route{routeTo("users", nil)}, map[string][]string{"users": {slow.addr()}}, limits))
	for range 2 {
		go func() {
			req, _ := http.NewRequest("GET", "http://"+s.addr("outbound")+"/", nil)
			req.Host = "users"
			if resp, err := httpClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
	}
	eventually(t, "two requests in flight", func() bool { return slow.hits.Load() == 2 })
	for range 5 {
		start := time.Now()
		code, body, hdr := get(t, s.addr("outbound"), "users", "/")
		if code != 503 || hdr.Get("x-switchyard-reason") != "overflow:max_requests" {
			t.Fatalf("got %d %q (%s), want 503 overflow:max_requests", code, hdr.Get("x-switchyard-reason"), body)
		}
		// The backend holds requests until released: anything well under
		// the route timeout is failing fast, even on a loaded machine.
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("overflow took %v, want fail-fast", d)
		}
	}
}

// TestConnectionCapFailsFast: with max_connections reached a request that
// needs a new connection gets 503 overflow:max_connections at once.
func TestConnectionCapFailsFast(t *testing.T) {
	release := make(chan struct{})
	slow := newBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	limits := func(c *clusterv3.Cluster) {
		c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			MaxConnections: wrapperspb.UInt32(1)}}}
	}
	s := startSidecar(t, nil, "outbound")
	s.set(t, "1", outbound([]*routev3.Route{routeTo("users", nil)}, map[string][]string{"users": {slow.addr()}}, limits))
	go func() {
		req, _ := http.NewRequest("GET", "http://"+s.addr("outbound")+"/", nil)
		req.Host = "users"
		if resp, err := httpClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	eventually(t, "one request holding the only connection", func() bool { return slow.hits.Load() == 1 })
	start := time.Now()
	code, body, hdr := get(t, s.addr("outbound"), "users", "/")
	if code != 503 || hdr.Get("x-switchyard-reason") != "overflow:max_connections" {
		t.Fatalf("got %d %q (%s), want 503 overflow:max_connections", code, hdr.Get("x-switchyard-reason"), body)
	}
	// The backend holds requests until released: anything well under
	// the route timeout is failing fast, even on a loaded machine.
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("overflow took %v, want fail-fast", d)
	}
}

func faultFilter(t *testing.T, f *faultv3.HTTPFault) *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: "envoy.filters.http.fault", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: xdstest.Any(f)}}
}

func TestFaultInjection(t *testing.T) {
	b := newBackend(t, "users", nil)
	abort := &faultv3.HTTPFault{Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: 418},
		Percentage: &typev3.FractionalPercent{Numerator: 30, Denominator: typev3.FractionalPercent_HUNDRED}}}
	delayRoute := xdstest.PrefixRoute("/slow", "users")
	delayRoute.TypedPerFilterConfig = map[string]*anypb.Any{"envoy.filters.http.fault": xdstest.Any(&faultv3.HTTPFault{Delay: &commonfaultv3.FaultDelay{
		FaultDelaySecifier: &commonfaultv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(80 * time.Millisecond)},
		Percentage:         &typev3.FractionalPercent{Numerator: 100, Denominator: typev3.FractionalPercent_HUNDRED}}})}
	s := startSidecar(t, nil, "outbound")
	s.set(t, "1", outbound([]*routev3.Route{delayRoute, routeTo("users", nil)}, map[string][]string{"users": {b.addr()}}, nil, faultFilter(t, abort)))
	const n = 1000
	aborted := 0
	for range n {
		code, _, hdr := get(t, s.addr("outbound"), "users", "/")
		if code == 418 && hdr.Get("x-switchyard-reason") == "fault_abort" {
			aborted++
		}
	}
	mean, sd := n*0.3, math.Sqrt(n*0.3*0.7)
	if float64(aborted) < mean-3.29*sd || float64(aborted) > mean+3.29*sd {
		t.Fatalf("%d of %d aborted, want ≈%.0f", aborted, n, mean)
	}
	start := time.Now()
	if code, _, _ := get(t, s.addr("outbound"), "users", "/slow"); code != 200 {
		t.Fatalf("delayed request status %d", code)
	}
	if d := time.Since(start); d < 80*time.Millisecond {
		t.Fatalf("delayed request took %v, want ≥80ms", d)
	}
}

func TestMirrorDoesNotChangeResponseOrLatency(t *testing.T) {
	primary := newBackend(t, "primary", nil)
	var mirrored sync.WaitGroup
	mirrored.Add(1)
	var shadowHost string
	shadow := newBackend(t, "shadow", func(w http.ResponseWriter, r *http.Request) {
		shadowHost = r.Host
		time.Sleep(2 * time.Second) // a slow mirror must not slow the caller
		w.WriteHeader(500)
		mirrored.Done()
	})
	mirror := func(ra *routev3.RouteAction) {
		ra.RequestMirrorPolicies = []*routev3.RouteAction_RequestMirrorPolicy{{Cluster: "shadow"}}
	}
	s := startSidecar(t, nil, "outbound")
	s.set(t, "1", outbound([]*routev3.Route{routeTo("users", mirror)}, map[string][]string{"users": {primary.addr()}, "shadow": {shadow.addr()}}, nil))
	start := time.Now()
	code, body, _ := get(t, s.addr("outbound"), "users", "/")
	if d := time.Since(start); d > time.Second {
		t.Fatalf("mirrored request took %v: the caller waited for the 2s mirror", d)
	}
	if code != 200 || body != "primary" {
		t.Fatalf("got %d %q, want the primary's answer", code, body)
	}
	mirrored.Wait()
	if shadowHost != "users-shadow" {
		t.Fatalf("mirror Host %q, want users-shadow", shadowHost)
	}
}

func TestControlPlaneKilledTrafficFlows(t *testing.T) {
	b := newBackend(t, "users", nil)
	s := startSidecar(t, nil, "outbound")
	s.set(t, "1", outbound([]*routev3.Route{routeTo("users", nil)}, map[string][]string{"users": {b.addr()}}, nil))
	s.xds.Stop()
	time.Sleep(100 * time.Millisecond)
	for range 20 {
		if code, _, _ := get(t, s.addr("outbound"), "users", "/"); code != 200 {
			t.Fatalf("status %d after the control plane died", code)
		}
	}
	if s.proxy.Ready() != nil {
		t.Fatal("not ready on the last good config")
	}
}

func TestRouteChangeKeepsInFlightRequests(t *testing.T) {
	old := newBackend(t, "old", func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(300 * time.Millisecond)
		w.Write([]byte("old"))
	})
	next := newBackend(t, "new", nil)
	s := startSidecar(t, nil, "outbound")
	clusters := map[string][]string{"old": {old.addr()}, "new": {next.addr()}}
	s.set(t, "1", outbound([]*routev3.Route{routeTo("old", nil)}, clusters, nil))
	var wg sync.WaitGroup
	errs := make(chan string, 20)
	for range 20 {
		wg.Go(func() {
			if code, body, _ := get(t, s.addr("outbound"), "users", "/"); code != 200 || body != "old" {
				errs <- body
			}
		})
	}
	eventually(t, "requests in flight", func() bool { return old.hits.Load() == 20 })
	s.set(t, "2", outbound([]*routev3.Route{routeTo("new", nil)}, clusters, nil))
	if _, body, _ := get(t, s.addr("outbound"), "users", "/"); body != "new" {
		t.Fatalf("after the change got %q", body)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatalf("in-flight request broken by the route change: %q", e)
	}
}

func TestLocalRateLimit(t *testing.T) {
	b := newBackend(t, "users", nil)
	always := &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 100}}
	rl := &hcmv3.HttpFilter{Name: "envoy.filters.http.local_ratelimit", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: xdstest.Any(&localrlv3.LocalRateLimit{
		StatPrefix: "rl", TokenBucket: &typev3.TokenBucket{MaxTokens: 5, FillInterval: durationpb.New(time.Hour)}, FilterEnabled: always, FilterEnforced: always})}}
	s := startSidecar(t, nil, "outbound")
	s.set(t, "1", outbound([]*routev3.Route{routeTo("users", nil)}, map[string][]string{"users": {b.addr()}}, nil, rl))
	for i := range 5 {
		if code, _, _ := get(t, s.addr("outbound"), "users", "/"); code != 200 {
			t.Fatalf("request %d: %d", i, code)
		}
	}
	if code, _, hdr := get(t, s.addr("outbound"), "users", "/"); code != 429 || hdr.Get("x-switchyard-reason") != "local_rate_limited" {
		t.Fatalf("6th request: %d %s", code, hdr.Get("x-switchyard-reason"))
	}
}

func TestHeadersHygiene(t *testing.T) {
	b := newBackend(t, "users", nil)
	s := startSidecar(t, nil, "outbound")
	s.set(t, "1", outbound([]*routev3.Route{routeTo("users", nil)}, map[string][]string{"users": {b.addr()}}, nil))
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	get(t, s.addr("outbound"), "users", "/", "Connection", "X-Secret", "X-Secret", "1", "Keep-Alive", "timeout=5", "traceparent", tp, "X-Forwarded-For", "203.0.113.9")
	r := b.lastRequest()
	if r.Header.Get("X-Secret") != "" || r.Header.Get("Keep-Alive") != "" {
		t.Fatalf("hop-by-hop headers forwarded: %v", r.Header)
	}
	if r.Header.Get("x-request-id") == "" {
		t.Fatal("no x-request-id")
	}
	if got := r.Header.Get("X-Forwarded-For"); got != "203.0.113.9, 127.0.0.1" {
		t.Fatalf("X-Forwarded-For %q", got)
	}
	if r.Header.Get("X-Forwarded-Proto") != "http" {
		t.Fatalf("X-Forwarded-Proto %q", r.Header.Get("X-Forwarded-Proto"))
	}
	if got := r.Header.Get("traceparent"); !strings.HasPrefix(got, "00-4bf92f3577b34da6a3ce929d0e0e4736-") {
		t.Fatalf("traceparent %q does not continue the trace", got)
	}
	if r.Host != "users" {
		t.Fatalf("Host %q", r.Host)
	}
}

// TestBodyRelay: a stream reaches the caller as it is written, trailers
// follow the body, and a body the upstream cuts short is not passed on as
// a complete one.
func TestBodyRelay(t *testing.T) {
	firstRead := make(chan struct{})
	b := newBackend(t, "users", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/stream":
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "data: one\n\n")
			w.(http.Flusher).Flush()
			select { // the second event only once the caller has the first
			case <-firstRead:
			case <-r.Context().Done():
				return
			}
			_, _ = io.WriteString(w, "data: two\n\n")
		case "/trailers":
			w.Header().Set("Trailer", "X-Checksum")
			_, _ = io.WriteString(w, "body")
			w.Header().Set("X-Checksum", "abc")
		case "/cut":
			conn, brw, _ := http.NewResponseController(w).Hijack()
			_, _ = brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
			_ = brw.Flush()
			conn.Close()
		}
	})
	s := startSidecar(t, nil, "outbound")
	s.set(t, "1", outbound([]*routev3.Route{routeTo("users", nil)}, map[string][]string{"users": {b.addr()}}, nil))
	call := func(path string) *http.Response {
		req, _ := http.NewRequest("GET", "http://"+s.addr("outbound")+path, nil)
		req.Host = "users"
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}

	resp := call("/stream")
	br := bufio.NewReader(resp.Body)
	held := time.AfterFunc(3*time.Second, func() { resp.Body.Close() })
	if line, err := br.ReadString('\n'); err != nil || line != "data: one\n" {
		t.Fatalf("first event: %q, %v (held back by the sidecar?)", line, err)
	}
	held.Stop()
	close(firstRead)
	rest, _ := io.ReadAll(br)
	if string(rest) != "\ndata: two\n\n" {
		t.Fatalf("rest of stream %q", rest)
	}

	resp = call("/trailers")
	if body, err := io.ReadAll(resp.Body); err != nil || string(body) != "body" {
		t.Fatalf("body %q, %v", body, err)
	}
	if got := resp.Trailer.Get("X-Checksum"); got != "abc" {
		t.Fatalf("trailer X-Checksum %q, want abc (trailers %v)", got, resp.Trailer)
	}

	// Either the headers never arrive or the body ends in an error; what
	// must not happen is a short body that looks complete.
	req, _ := http.NewRequest("GET", "http://"+s.addr("outbound")+"/cut", nil)
	req.Host = "users"
	if resp, err := httpClient.Do(req); err == nil {
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Fatalf("a body cut short upstream arrived as complete: %d %q", resp.StatusCode, body)
		}
	}
}

func TestNoRouteAndNoHealthyUpstream(t *testing.T) {
	s := startSidecar(t, nil, "outbound")
	onlyAPI := xdstest.PrefixRoute("/api", "users")
	s.set(t, "1", outbound([]*routev3.Route{onlyAPI}, map[string][]string{"users": {}}, nil))
	if code, _, hdr := get(t, s.addr("outbound"), "users", "/other"); code != 404 || hdr.Get("x-switchyard-reason") != "route_not_found" {
		t.Fatalf("got %d %s", code, hdr.Get("x-switchyard-reason"))
	}
	if code, _, hdr := get(t, s.addr("outbound"), "users", "/api"); code != 503 || hdr.Get("x-switchyard-reason") != "no_healthy_upstream" {
		t.Fatalf("got %d %s", code, hdr.Get("x-switchyard-reason"))
	}
}

// TestRetryReplaysAChunkedBody: a body of unknown length (chunked) is
// streamed to the first attempt and sent again, whole, by the retry.
func TestRetryReplaysAChunkedBody(t *testing.T) {
	var calls atomic.Int32
	echo := newBackend(t, "echo", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if calls.Add(1) == 1 {
			w.WriteHeader(503)
			return
		}
		fmt.Fprintf(w, "%d:%s", r.ContentLength, body)
	})
	retries := func(ra *routev3.RouteAction) {
		ra.RetryPolicy = &routev3.RetryPolicy{RetryOn: "5xx", NumRetries: wrapperspb.UInt32(1),
			RetryBackOff: &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(time.Millisecond)}}
	}
	s := startSidecar(t, nil, "outbound")
	s.set(t, "1", outbound([]*routev3.Route{routeTo("users", retries)}, map[string][]string{"users": {echo.addr()}}, nil))
	status, got := postChunked(t, s.addr("outbound"), "one,", "two,", "three")
	if status != 200 || got != "-1:one,two,three" || calls.Load() != 2 {
		t.Fatalf("after a retry: %d %q, %d calls; want the whole chunked body sent again", status, got, calls.Load())
	}
}

// postChunked POSTs parts to users through the outbound listener at addr
// as a chunked body (no length), 5 ms apart, as a streaming client would.
func postChunked(t *testing.T, addr string, parts ...string) (status int, body string) {
	t.Helper()
	pr, pw := io.Pipe()
	go func() {
		for _, part := range parts {
			_, _ = pw.Write([]byte(part))
			time.Sleep(5 * time.Millisecond)
		}
		_ = pw.Close()
	}()
	req, _ := http.NewRequest("POST", "http://"+addr+"/", pr)
	req.Host = "users"
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestMirrorOfAChunkedBody: a body of unknown length reaches the mirror
// whole, once it has all passed through to the primary.
func TestMirrorOfAChunkedBody(t *testing.T) {
	primary := newBackend(t, "primary", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "primary:%s", body)
	})
	mirrored := make(chan string, 1)
	shadow := newBackend(t, "shadow", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mirrored <- string(body)
	})
	mirror := func(ra *routev3.RouteAction) {
		ra.RequestMirrorPolicies = []*routev3.RouteAction_RequestMirrorPolicy{{Cluster: "shadow"}}
	}
	s := startSidecar(t, nil, "outbound")
	s.set(t, "1", outbound([]*routev3.Route{routeTo("users", mirror)}, map[string][]string{"users": {primary.addr()}, "shadow": {shadow.addr()}}, nil))
	status, got := postChunked(t, s.addr("outbound"), "one,", "two,", "three")
	if status != 200 || got != "primary:one,two,three" {
		t.Fatalf("primary answered %d %q", status, got)
	}
	select {
	case body := <-mirrored:
		if body != "one,two,three" {
			t.Fatalf("mirror got %q, want the whole body", body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no mirror of the chunked request")
	}
}
