package telemetry

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// DurationBuckets are the latency buckets, in seconds, of every RED
// histogram: fine below 10 ms where a proxy hop lives, coarse above.
var DurationBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// register registers c, or returns the collector already registered under
// the same description, so two servers of one binary share their metrics.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var already prometheus.AlreadyRegisteredError
		if errors.As(err, &already) {
			if existing, ok := already.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}

// HTTPMiddleware traces every request (a server span, with the incoming
// traceparent honoured) and records switchyard_<binary>_http_requests_total
// and switchyard_<binary>_http_request_duration_seconds by method and code.
func HTTPMiddleware(reg prometheus.Registerer, binary string) func(http.Handler) http.Handler {
	requests := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_" + binary + "_http_requests_total",
		Help: "HTTP requests served, by method and status code.",
	}, []string{"method", "code"}))
	duration := register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "switchyard_" + binary + "_http_request_duration_seconds",
		Help:    "Time to serve an HTTP request, by method and status code.",
		Buckets: DurationBuckets,
	}, []string{"method", "code"}))
	return func(next http.Handler) http.Handler {
		measured := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
			next.ServeHTTP(rec, r)
			method := normalizeMethod(r.Method)
			code := strconv.Itoa(rec.code)
			requests.WithLabelValues(method, code).Inc()
			duration.WithLabelValues(method, code).Observe(time.Since(start).Seconds())
		})
		return otelhttp.NewHandler(measured, binary, otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			return r.Method + " " + r.URL.Path
		}))
	}
}

// HTTPTransport wraps an outgoing transport so client spans are recorded and
// the trace context is injected into every request.
func HTTPTransport(base http.RoundTripper) http.RoundTripper {
	return otelhttp.NewTransport(base)
}

type statusRecorder struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.code, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach Flush and Hijack underneath.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func normalizeMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}

// GRPCServerMetrics returns interceptors recording
// switchyard_<binary>_grpc_server_handled_total{method,code} and
// switchyard_<binary>_grpc_server_handling_seconds{method}.
func GRPCServerMetrics(reg prometheus.Registerer, binary string) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	handled := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_" + binary + "_grpc_server_handled_total",
		Help: "gRPC calls completed on the server, by full method and status code.",
	}, []string{"method", "code"}))
	handling := register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "switchyard_" + binary + "_grpc_server_handling_seconds",
		Help:    "Time to complete a gRPC call on the server (streams: their whole life), by full method.",
		Buckets: DurationBuckets,
	}, []string{"method"}))
	observe := func(method string, start time.Time, err error) {
		handled.WithLabelValues(method, status.Code(err).String()).Inc()
		handling.WithLabelValues(method).Observe(time.Since(start).Seconds())
	}
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		observe(info.FullMethod, start, err)
		return resp, err
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		err := handler(srv, ss)
		observe(info.FullMethod, start, err)
		return err
	}
	return unary, stream
}
