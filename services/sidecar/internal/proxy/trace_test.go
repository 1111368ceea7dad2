package proxy_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/testpki"
)

// The proxy's package-level tracer binds to the first global provider set,
// so every run of the test in one process (-count=N) installs the same one.
var tracing = sync.OnceValues(func() (*tracetest.SpanRecorder, *sdktrace.TracerProvider) {
	rec := tracetest.NewSpanRecorder()
	return rec, sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
})

// TestOneSpanPerHop: a request through a sidecar pair yields one span in
// each sidecar, in the caller's trace, chained parent → child, and the app
// receives a traceparent that continues the same trace.
func TestOneSpanPerHop(t *testing.T) {
	rec, tp := tracing()
	prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTracerProvider(prevTP); otel.SetTextMapPropagator(prevProp) })

	ca := testpki.NewCA(t)
	var appTraceparent string
	app := newBackend(t, "users", func(w http.ResponseWriter, r *http.Request) { appTraceparent = r.Header.Get("traceparent") })
	users := serverSidecar(t, ca, app.addr(), false, frontendID)
	frontend := clientSidecar(t, ca, "/ns/shop/sa/frontend", users.addr("inbound"))

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	if code, _, _ := get(t, frontend.addr("outbound"), "users", "/users/1", "traceparent", "00-"+traceID+"-00f067aa0ba902b7-01"); code != 200 {
		t.Fatalf("status %d", code)
	}
	var out, in sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.SpanContext().TraceID().String() != traceID {
			continue
		}
		switch s.SpanKind() {
		case trace.SpanKindClient:
			out = s
		case trace.SpanKindServer:
			in = s
		}
	}
	if out == nil || in == nil {
		t.Fatalf("want one client span (outbound) and one server span (inbound) in trace %s, got %d spans", traceID, len(rec.Ended()))
	}
	if out.Parent().SpanID().String() != "00f067aa0ba902b7" {
		t.Fatalf("outbound span's parent %s, want the caller's span", out.Parent().SpanID())
	}
	if in.Parent().SpanID() != out.SpanContext().SpanID() {
		t.Fatal("inbound span is not a child of the outbound span")
	}
	if !strings.Contains(appTraceparent, traceID) || !strings.Contains(appTraceparent, in.SpanContext().SpanID().String()) {
		t.Fatalf("app got traceparent %q, want trace %s with the inbound span as parent", appTraceparent, traceID)
	}
}
