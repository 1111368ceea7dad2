// Package grpcx builds the gRPC servers and client connections of every
// binary the same way: OpenTelemetry tracing, RED metrics, the standard
// health service, reflection, keepalive, and transport credentials supplied
// by the caller (SPIFFE mTLS from the identity package in production).
package grpcx

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"github.com/switchyard-mesh/switchyard/services/kit/run"
	"github.com/switchyard-mesh/switchyard/services/kit/telemetry"
)

// ServerOptions configures NewServer.
type ServerOptions struct {
	// Binary names the metrics: switchyard_<Binary>_grpc_server_….
	Binary string
	// Registerer receives the server's metrics.
	Registerer prometheus.Registerer
	// Creds secures the server. Nil means plaintext, which only tests and
	// loopback-only listeners should use.
	Creds credentials.TransportCredentials
	// TracePropagatedOnly records server spans only for unary calls that
	// arrive with a W3C traceparent, through an interceptor, instead of
	// otelgrpc's stats handler on every call. For services answering tens of
	// thousands of tiny calls a second (ratelimit), where the handler's
	// per-call metadata copy and per-message events cost more than the call
	// itself; a caller that traces still gets its child span.
	TracePropagatedOnly bool
}

// Server is a gRPC server with its health service exposed, so a binary can
// mark itself NOT_SERVING while it drains.
type Server struct {
	*grpc.Server
	Health *health.Server
}

// NewServer returns a server with tracing, metrics, health, reflection and
// keepalive configured. Register services on it, then run Serve.
func NewServer(o ServerOptions, extra ...grpc.ServerOption) *Server {
	unary, stream := telemetry.GRPCServerMetrics(o.Registerer, o.Binary)
	opts := []grpc.ServerOption{grpc.ChainStreamInterceptor(stream)}
	if o.TracePropagatedOnly {
		opts = append(opts, grpc.ChainUnaryInterceptor(unary, tracePropagated(otel.Tracer("github.com/switchyard-mesh/switchyard/services/kit/grpcx"))))
	} else {
		opts = append(opts, grpc.StatsHandler(otelgrpc.NewServerHandler()), grpc.ChainUnaryInterceptor(unary))
	}
	opts = append(opts,
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		// Clients ping every 20 s on idle streams (see Dial); allow it.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	)
	if o.Creds != nil {
		opts = append(opts, grpc.Creds(o.Creds))
	}
	srv := grpc.NewServer(append(opts, extra...)...)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	reflection.Register(srv)
	return &Server{Server: srv, Health: hs}
}

// Serve serves on ln until ctx is cancelled, then marks the server
// NOT_SERVING, lets in-flight calls finish for up to drain, and closes what
// is left (long-lived streams such as watches are closed at the deadline).
func (s *Server) Serve(ln net.Listener, drain time.Duration) run.Task {
	return func(ctx context.Context) error {
		errc := make(chan error, 1)
		go func() { errc <- s.Server.Serve(ln) }()
		select {
		case err := <-errc:
			return fmt.Errorf("serve grpc on %s: %w", ln.Addr(), err)
		case <-ctx.Done():
		}
		s.Health.Shutdown()
		done := make(chan struct{})
		go func() { s.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-time.After(drain):
			s.Stop()
		}
		return nil
	}
}

// Dial returns a client connection to target with tracing and keepalive.
// Nil creds means plaintext, for tests only.
//
// A target listing several comma-separated addresses
// ("registry-1:7100,registry-2:7100,registry-3:7100") is one connection
// that fails over between them: the members of a replicated server, so a
// client outlives the node it happened to reach. The order is shuffled per
// client to spread clients over the members.
func Dial(target string, creds credentials.TransportCredentials, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler()),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 20 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
	}
	dialTarget := target
	if strings.Contains(target, ",") {
		var addrs []resolver.Address
		for _, a := range strings.Split(target, ",") {
			if a = strings.TrimSpace(a); a != "" {
				addrs = append(addrs, resolver.Address{Addr: a})
			}
		}
		r := manual.NewBuilderWithScheme("switchyard-members")
		r.InitialState(resolver.State{Addresses: addrs})
		dialTarget = r.Scheme() + ":///members"
		opts = append(opts, grpc.WithResolvers(r),
			grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"pick_first":{"shuffleAddressList":true}}]}`))
	}
	conn, err := grpc.NewClient(dialTarget, append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", target, err)
	}
	return conn, nil
}
