package proxy_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	ratelimitconfv3 "github.com/envoyproxy/go-control-plane/envoy/config/ratelimit/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rlfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/xdstest"
)

// rls stands in for the ratelimit service (tested on its own in
// services/ratelimit): it allows `limit` hits per descriptor value.
type rls struct {
	rlsv3.UnimplementedRateLimitServiceServer
	limit int
	mu    sync.Mutex
	hits  map[string]int
	seen  []string
}

func (s *rls) ShouldRateLimit(_ context.Context, r *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := r.GetDomain()
	for _, d := range r.GetDescriptors() {
		for _, e := range d.GetEntries() {
			key += "|" + e.GetKey() + "=" + e.GetValue()
		}
	}
	s.seen = append(s.seen, key)
	s.hits[key]++
	code := rlsv3.RateLimitResponse_OK
	if s.hits[key] > s.limit {
		code = rlsv3.RateLimitResponse_OVER_LIMIT
	}
	remaining := max(0, s.limit-s.hits[key])
	return &rlsv3.RateLimitResponse{OverallCode: code, Statuses: []*rlsv3.RateLimitResponse_DescriptorStatus{{Code: code,
		CurrentLimit:   &rlsv3.RateLimitResponse_RateLimit{RequestsPerUnit: uint32(s.limit), Unit: rlsv3.RateLimitResponse_RateLimit_MINUTE},
		LimitRemaining: uint32(remaining), DurationUntilReset: durationpb.New(30 * time.Second)}}}, nil
}

func TestGlobalRateLimit(t *testing.T) {
	b := newBackend(t, "users", nil)
	srv := &rls{limit: 3, hits: map[string]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	rlsv3.RegisterRateLimitServiceServer(gs, srv)
	go func() { _ = gs.Serve(ln) }()
	defer gs.Stop()

	filter := &hcmv3.HttpFilter{Name: "envoy.filters.http.ratelimit", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: xdstest.Any(&rlfilterv3.RateLimit{
		Domain: "shop", Timeout: durationpb.New(time.Second), EnableXRatelimitHeaders: rlfilterv3.RateLimit_DRAFT_VERSION_03,
		RateLimitService: &ratelimitconfv3.RateLimitServiceConfig{TransportApiVersion: corev3.ApiVersion_V3,
			GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: "ratelimit"}}}}})}}
	limited := routeTo("users", func(ra *routev3.RouteAction) {
		ra.RateLimits = []*routev3.RateLimit{{Actions: []*routev3.RateLimit_Action{{ActionSpecifier: &routev3.RateLimit_Action_RequestHeaders_{
			RequestHeaders: &routev3.RateLimit_Action_RequestHeaders{HeaderName: "x-user", DescriptorKey: "user"}}}}}}
	})
	res := outbound([]*routev3.Route{limited}, map[string][]string{"users": {b.addr()}}, nil, filter)
	rlCluster := xdstest.Cluster("ratelimit")
	res.Clusters = append(res.Clusters, rlCluster)
	res.Endpoints = append(res.Endpoints, xdstest.Endpoints("ratelimit", ln.Addr().String()))
	s := startSidecar(t, nil, "outbound")
	s.set(t, "1", res)

	for i := range 3 {
		code, _, hdr := get(t, s.addr("outbound"), "users", "/", "x-user", "alice")
		if code != 200 {
			t.Fatalf("request %d: %d", i, code)
		}
		if i == 0 && hdr.Get("X-Ratelimit-Limit") != "3" {
			t.Fatalf("x-ratelimit headers missing: %v", hdr)
		}
	}
	code, _, hdr := get(t, s.addr("outbound"), "users", "/", "x-user", "alice")
	if code != 429 || hdr.Get("x-switchyard-reason") != "rate_limited" || hdr.Get("X-Ratelimit-Remaining") != "0" {
		t.Fatalf("4th request for alice: %d %v", code, hdr)
	}
	if code, _, _ := get(t, s.addr("outbound"), "users", "/", "x-user", "bob"); code != 200 {
		t.Fatalf("bob limited by alice's quota: %d", code)
	}
	// No x-user header: the descriptor cannot be built, the service is not asked.
	if code, _, _ := get(t, s.addr("outbound"), "users", "/"); code != 200 {
		t.Fatalf("request without descriptor: %d", code)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.seen) != 5 || srv.seen[0] != "shop|user=alice" {
		t.Fatalf("RLS saw %v", srv.seen)
	}
}
