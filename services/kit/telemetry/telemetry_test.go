package telemetry_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/switchyard-mesh/switchyard/services/kit/telemetry"
)

func TestHTTPMiddlewareMetricsAndTraceParent(t *testing.T) {
	if _, err := telemetry.Setup(context.Background(), "test", slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	spans := tracetest.NewSpanRecorder()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)))

	reg := prometheus.NewRegistry()
	mw := telemetry.HTTPMiddleware(reg, "unit")
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusBadGateway)
		}
	}))
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	for _, path := range []string{"/ok", "/ok", "/fail"} {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	// A second middleware for the same binary shares the collectors.
	_ = telemetry.HTTPMiddleware(reg, "unit")

	if got := testutil.ToFloat64(mustCounter(t, reg, "200")); got != 2 {
		t.Fatalf("200s = %v, want 2", got)
	}
	if n, err := testutil.GatherAndCount(reg, "switchyard_unit_http_request_duration_seconds"); err != nil || n != 2 {
		t.Fatalf("duration series = %d, %v; want 2", n, err)
	}
	ended := spans.Ended()
	if len(ended) != 3 {
		t.Fatalf("spans = %d, want 3", len(ended))
	}
	for _, s := range ended {
		if s.SpanContext().TraceID().String() != traceID {
			t.Fatalf("span %q has trace %s, want the incoming %s", s.Name(), s.SpanContext().TraceID(), traceID)
		}
		if !strings.HasPrefix(s.Name(), "GET /") {
			t.Fatalf("span name %q", s.Name())
		}
	}
}

func mustCounter(t *testing.T, reg *prometheus.Registry, code string) prometheus.Collector {
	t.Helper()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_unit_http_requests_total", Help: "HTTP requests served, by method and status code."}, []string{"method", "code"})
	if err := reg.Register(c); err != nil {
		if already, ok := err.(prometheus.AlreadyRegisteredError); ok {
			return already.ExistingCollector.(*prometheus.CounterVec).WithLabelValues("GET", code)
		}
		t.Fatal(err)
	}
	t.Fatal("counter was not registered by the middleware")
	return nil
}

func TestSetupWithoutEndpointIsNoop(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	shutdown, err := telemetry.Setup(context.Background(), "test", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// With an endpoint configured, Setup must build the exporter and resource;
// a schema-URL conflict in the resource once made every binary exit here.
func TestSetupWithEndpointStartsExporter(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
	t.Setenv("OTEL_SERVICE_NAME", "renamed")
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
	shutdown, err := telemetry.Setup(context.Background(), "test", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Setup with OTEL_EXPORTER_OTLP_ENDPOINT set: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = shutdown(ctx) // nothing listens on 4317; only the set-up is under test
}
