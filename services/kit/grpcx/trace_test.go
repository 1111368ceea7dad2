package grpcx

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

func TestTracePropagatedOnlyTracedCalls(t *testing.T) {
	otel.SetTextMapPropagator(propagation.TraceContext{})
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	intercept := tracePropagated(tp.Tracer("test"))
	info := &grpc.UnaryServerInfo{FullMethod: "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit"}
	handler := func(context.Context, any) (any, error) { return "ok", nil }

	if _, err := intercept(metadata.NewIncomingContext(context.Background(), metadata.Pairs("user-agent", "x")), nil, info, handler); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.Ended()); n != 0 {
		t.Fatalf("untraced call recorded %d spans, want 0", n)
	}

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01"))
	if resp, err := intercept(ctx, nil, info, handler); err != nil || resp != "ok" {
		t.Fatalf("traced call = %v, %v", resp, err)
	}
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("traced call recorded %d spans, want 1", len(spans))
	}
	s := spans[0]
	if s.Name() != "envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit" || s.SpanContext().TraceID().String() != traceID || s.Parent().SpanID().String() != "00f067aa0ba902b7" {
		t.Fatalf("span %q trace %s parent %s: not a child of the caller's span", s.Name(), s.SpanContext().TraceID(), s.Parent().SpanID())
	}
}
