package app

import (
	"context"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/switchyard-mesh/switchyard/services/kit/grpcx"
	"github.com/switchyard-mesh/switchyard/services/kit/telemetry"
)

// streamWorkers is how many goroutines serve RLS calls. Each call runs on a
// worker whose stack has already grown, rather than on a new goroutine
// that grows its stack again; it is sized for the concurrent calls of a
// busy gateway (a call waits on Redis for most of its life), and calls
// beyond it still get a goroutine of their own.
const streamWorkers = 128

// newGRPCServer builds the RLS server the way kit/grpcx.NewServer does (RED
// metrics, health, reflection, keepalive, the given credentials), with two
// differences for a service answering tens of thousands of tiny calls a
// second: calls run on stream workers, and tracing is an interceptor that
// only works for calls arriving with a W3C trace context. grpcx's
// OpenTelemetry stats handler costs, on every call, a copy of the metadata
// and an event per header, message and trailer — more allocations than the
// decision itself, for spans nobody asked for. A proxy that traces its
// requests sends traceparent, and its rate-limit call shows up in the trace
// as a server span, as before.
func newGRPCServer(reg prometheus.Registerer, creds credentials.TransportCredentials) *grpcx.Server {
	unary, stream := telemetry.GRPCServerMetrics(reg, "ratelimit")
	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(unary, traceIncoming(otel.Tracer("github.com/switchyard-mesh/switchyard/services/ratelimit"))),
		grpc.ChainStreamInterceptor(stream),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.NumStreamWorkers(streamWorkers),
	}
	if creds != nil {
		opts = append(opts, grpc.Creds(creds))
	}
	srv := grpc.NewServer(opts...)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	reflection.Register(srv)
	return &grpcx.Server{Server: srv, Health: hs}
}

// traceIncoming records a server span for each unary call that carries a
// traceparent, as a child of the caller's span (propagated with the global
// propagator: W3C trace context and baggage).
func traceIncoming(tracer trace.Tracer) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if len(metadata.ValueFromIncomingContext(ctx, "traceparent")) == 0 {
			return handler(ctx, req)
		}
		md, _ := metadata.FromIncomingContext(ctx)
		ctx = otel.GetTextMapPropagator().Extract(ctx, mdCarrier(md))
		service, method := splitMethod(info.FullMethod)
		ctx, span := tracer.Start(ctx, strings.TrimPrefix(info.FullMethod, "/"),
			trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("rpc.system", "grpc"), attribute.String("rpc.service", service), attribute.String("rpc.method", method)))
		defer span.End()
		resp, err := handler(ctx, req)
		st, _ := status.FromError(err)
		span.SetAttributes(attribute.Int64("rpc.grpc.status_code", int64(st.Code())))
		if err != nil {
			span.SetStatus(otelcodes.Error, st.Message())
		}
		return resp, err
	}
}

// splitMethod splits "/pkg.Service/Method".
func splitMethod(full string) (service, method string) {
	s := strings.TrimPrefix(full, "/")
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		return s[:i], s[i+1:]
	}
	return s, ""
}

// mdCarrier reads a trace context from incoming gRPC metadata.
type mdCarrier metadata.MD

var _ propagation.TextMapCarrier = mdCarrier{}

// Get implements propagation.TextMapCarrier.
func (c mdCarrier) Get(key string) string {
	if v := metadata.MD(c).Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

// Set implements propagation.TextMapCarrier.
func (c mdCarrier) Set(key, value string) { metadata.MD(c).Set(key, value) }

// Keys implements propagation.TextMapCarrier.
func (c mdCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}
