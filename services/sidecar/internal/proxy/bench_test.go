package proxy_test

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/proxy"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/testpki"
)

// BenchmarkProxyHop is one request app → outbound listener → backend
// (plaintext, keep-alive), 1 KB response.
func BenchmarkProxyHop(b *testing.B) {
	payload := strings.Repeat("x", 1024)
	be := newBackend(b, "users", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, payload) })
	s := startSidecar(b, nil, "outbound")
	s.set(b, "1", outbound([]*routev3.Route{routeTo("users", nil)}, map[string][]string{"users": {be.addr()}}, nil))
	benchGet(b, s.addr("outbound"))
}

// BenchmarkSidecarPairMTLS is app → client sidecar → mTLS (h2) → server
// sidecar → app, 1 KB response, both proxies in this process.
func BenchmarkSidecarPairMTLS(b *testing.B) {
	benchGet(b, startPairMTLS(b))
}

// startPairMTLS starts a backend serving 1 KB and a client and server
// sidecar in front of it; it returns the client sidecar's outbound address.
func startPairMTLS(b *testing.B) string {
	ca := testpki.NewCA(b)
	payload := strings.Repeat("x", 1024)
	app := newBackend(b, "users", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, payload) })
	users := serverSidecar(b, ca, app.addr(), false, frontendID)
	return clientSidecar(b, ca, "/ns/shop/sa/frontend", users.addr("inbound")).addr("outbound")
}

// BenchmarkSidecarPairMTLSLatency is BenchmarkSidecarPairMTLS one request
// at a time: ns/op is the round trip through both proxies, so it counts
// only what is on a response's path, not work a proxy does after sending.
func BenchmarkSidecarPairMTLSLatency(b *testing.B) {
	addr := startPairMTLS(b)
	b.ReportAllocs()
	for b.Loop() {
		req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
		req.Host = "users"
		resp, err := httpClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

// benchGet also reports process CPU time per request (cpu-µs/op), which
// is steadier than wall time on a shared machine; it includes the load
// generator and the backends in this process.
func benchGet(b *testing.B, addr string) {
	b.ReportAllocs()
	var before, after syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	defer func() {
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
		cpu := time.Duration(after.Utime.Nano()+after.Stime.Nano()-before.Utime.Nano()-before.Stime.Nano()) * time.Nanosecond
		b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
	}()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
			req.Host = "users"
			resp, err := httpClient.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

// BenchmarkDirect is the baseline: the same client and backend without a
// proxy, so ProxyHop − Direct is what one sidecar hop costs.
func BenchmarkDirect(b *testing.B) {
	payload := strings.Repeat("x", 1024)
	be := newBackend(b, "users", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, payload) })
	benchGet(b, be.addr())
}

// BenchmarkNewRequestID is the x-request-id minted for requests without one.
func BenchmarkNewRequestID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = proxy.NewRequestID()
	}
}

func TestNewRequestIDIsUUIDv4(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for range 1000 { // several refills of the random buffer
		id := proxy.NewRequestID()
		if !re.MatchString(id) || seen[id] {
			t.Fatalf("request id %q: not a fresh version 4 UUID", id)
		}
		seen[id] = true
	}
}

// BenchmarkGRPCUnaryThroughSidecar is a unary gRPC call app → outbound
// listener → h2 upstream, on a route that retries (as every route the
// control plane sends does): the request body, of unknown length as every
// gRPC body is, goes through the replay buffer.
func BenchmarkGRPCUnaryThroughSidecar(b *testing.B) {
	app := startGRPC(b, func(gs *grpc.Server) { healthpb.RegisterHealthServer(gs, health.NewServer()) })
	retries := func(ra *routev3.RouteAction) {
		ra.RetryPolicy = &routev3.RetryPolicy{RetryOn: "connect-failure,refused-stream,unavailable", NumRetries: wrapperspb.UInt32(2)}
	}
	s := startSidecar(b, nil, "outbound")
	s.set(b, "1", outbound([]*routev3.Route{routeTo("users", retries)}, map[string][]string{"users": {app}}, upstreamH2))
	client := healthpb.NewHealthClient(dialUsers(b, s))
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
