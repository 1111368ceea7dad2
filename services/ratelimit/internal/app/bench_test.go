package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"

	commonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/switchyard-mesh/switchyard/services/kit/grpcx"
	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/decider"
	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/limits"
	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/rls"
	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/store"
)

// BenchmarkShouldRateLimitGRPC is one RLS call through the server as Run
// assembles it (interceptors, stream workers), over loopback TCP, with the
// in-memory store: the gRPC cost per decision, client included, that the
// load test pays on top of Redis. 32 concurrent callers as in the load test.
// "kit" is kit/grpcx.NewServer's defaults (OpenTelemetry stats handler on
// every call, a goroutine per call), which ratelimit used before.
func BenchmarkShouldRateLimitGRPC(b *testing.B) {
	b.Run("ratelimit", func(b *testing.B) { benchGRPC(b, newRLSServer(prometheus.NewRegistry(), nil)) })
	b.Run("kit", func(b *testing.B) {
		benchGRPC(b, grpcx.NewServer(grpcx.ServerOptions{Binary: "ratelimit", Registerer: prometheus.NewRegistry()}))
	})
}

func benchGRPC(b *testing.B, srv *grpcx.Server) {
	rules, err := limits.Parse("rules.yaml", []byte("domain: api\ndescriptors:\n  - key: user\n    rate_limit: {unit: hour, requests_per_unit: 1000000000}\n"))
	if err != nil {
		b.Fatal(err)
	}
	d := decider.New(decider.Config{Timeout: time.Second, Log: slog.New(slog.DiscardHandler), Metrics: decider.NewMetrics(prometheus.NewRegistry())}, store.NewMemory(), rules)
	rlsv3.RegisterRateLimitServiceServer(srv.Server, rls.New(d))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = srv.Server.Serve(ln) }()
	defer srv.Server.Stop()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	client := rlsv3.NewRateLimitServiceClient(conn)
	reqs := make([]*rlsv3.RateLimitRequest, 1000)
	for i := range reqs {
		reqs[i] = &rlsv3.RateLimitRequest{Domain: "api", Descriptors: []*commonv3.RateLimitDescriptor{{
			Entries: []*commonv3.RateLimitDescriptor_Entry{{Key: "user", Value: fmt.Sprint("u", i)}}}}}
	}
	b.SetParallelism(16) // 32 callers on 2 cores
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			resp, err := client.ShouldRateLimit(context.Background(), reqs[i%len(reqs)])
			if err != nil || resp.GetOverallCode() != rlsv3.RateLimitResponse_OK {
				b.Errorf("%v %v", resp, err)
				return
			}
			i++
		}
	})
}
