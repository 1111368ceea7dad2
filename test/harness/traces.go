package harness

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/grpc"
)

// Span is one received span, flattened for assertions.
type Span struct {
	TraceID      string // 32 hex digits
	SpanID       string // 16 hex digits
	ParentSpanID string // empty for a root span
	Name         string
	// Service is the exporting process's service.name resource attribute.
	Service string
	// Kind is the OTLP span kind without its prefix: "SERVER", "CLIENT",
	// "INTERNAL", "PRODUCER" or "CONSUMER".
	Kind       string
	Start, End time.Time
	// Attributes holds span attributes, each value in its string form.
	Attributes map[string]string
	// StatusError is true when the span's status code is ERROR.
	StatusError bool
}

// Trace is every span received so far for one trace id, in start order.
type Trace struct {
	ID    string
	Spans []Span
}

// Services returns the distinct service names that exported spans of the
// trace, sorted.
func (tr Trace) Services() []string {
	var names []string
	for _, s := range tr.Spans {
		if !slices.Contains(names, s.Service) {
			names = append(names, s.Service)
		}
	}
	sort.Strings(names)
	return names
}

// String lists the spans as an indented tree, for failure messages.
func (tr Trace) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "trace %s (%d spans)\n", tr.ID, len(tr.Spans))
	children := map[string][]Span{}
	ids := map[string]bool{}
	for _, s := range tr.Spans {
		ids[s.SpanID] = true
	}
	var roots []Span
	for _, s := range tr.Spans {
		if s.ParentSpanID == "" || !ids[s.ParentSpanID] {
			roots = append(roots, s)
			continue
		}
		children[s.ParentSpanID] = append(children[s.ParentSpanID], s)
	}
	var walk func(s Span, depth int)
	walk = func(s Span, depth int) {
		fmt.Fprintf(&b, "%s%s [%s %s]\n", strings.Repeat("  ", depth+1), s.Name, s.Service, s.Kind)
		for _, c := range children[s.SpanID] {
			walk(c, depth+1)
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}
	return b.String()
}

// HasTraceID matches the trace with the given id.
func HasTraceID(id string) func(Trace) bool {
	return func(tr Trace) bool { return tr.ID == id }
}

// HasServices matches a trace with spans from every one of the services.
func HasServices(services ...string) func(Trace) bool {
	return func(tr Trace) bool {
		have := tr.Services()
		for _, s := range services {
			if !slices.Contains(have, s) {
				return false
			}
		}
		return true
	}
}

// TraceReceiver is an OTLP/gRPC trace collector running inside the test. Point
// processes at it with its Env.
type TraceReceiver struct {
	coltracepb.UnimplementedTraceServiceServer

	addr string

	mu      sync.Mutex
	changed chan struct{} // closed and replaced whenever spans arrive
	spans   []Span
}

// NewTraceReceiver starts a receiver on a free loopback port, stopped when the
// test ends. If the test fails, the traces it received are logged.
func NewTraceReceiver(t testing.TB) *TraceReceiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("harness: trace receiver: %v", err)
	}
	r := &TraceReceiver{addr: ln.Addr().String(), changed: make(chan struct{})}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, r)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Stop()
		if t.Failed() {
			var b strings.Builder
			for _, tr := range r.Traces() {
				b.WriteString(tr.String())
			}
			t.Logf("harness: trace receiver got:\n%s", b.String())
		}
	})
	return r
}

// Endpoint returns the receiver's "host:port".
func (r *TraceReceiver) Endpoint() string { return r.addr }

// Env returns the OTEL_* variables that make an OpenTelemetry SDK export every
// span to this receiver promptly.
func (r *TraceReceiver) Env() []string {
	return []string{
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + r.addr,
		"OTEL_EXPORTER_OTLP_INSECURE=true",
		"OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
		"OTEL_TRACES_SAMPLER=always_on",
		"OTEL_BSP_SCHEDULE_DELAY=50",
	}
}

// Export implements the OTLP TraceService.
func (r *TraceReceiver) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	var got []Span
	for _, rs := range req.GetResourceSpans() {
		service := attrString(rs.GetResource().GetAttributes(), "service.name")
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				attrs := make(map[string]string, len(s.GetAttributes()))
				for _, kv := range s.GetAttributes() {
					attrs[kv.GetKey()] = anyString(kv.GetValue())
				}
				got = append(got, Span{
					TraceID:      hex.EncodeToString(s.GetTraceId()),
					SpanID:       hex.EncodeToString(s.GetSpanId()),
					ParentSpanID: hex.EncodeToString(s.GetParentSpanId()),
					Name:         s.GetName(),
					Service:      service,
					Kind:         strings.TrimPrefix(s.GetKind().String(), "SPAN_KIND_"),
					Start:        time.Unix(0, int64(s.GetStartTimeUnixNano())),
					End:          time.Unix(0, int64(s.GetEndTimeUnixNano())),
					Attributes:   attrs,
					StatusError:  s.GetStatus().GetCode().String() == "STATUS_CODE_ERROR",
				})
			}
		}
	}
	r.mu.Lock()
	r.spans = append(r.spans, got...)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// Spans returns every span received so far, grouped by trace id.
func (r *TraceReceiver) Spans() map[string][]Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]Span{}
	for _, s := range r.spans {
		out[s.TraceID] = append(out[s.TraceID], s)
	}
	return out
}

// Traces returns every trace received so far, ordered by first span start.
func (r *TraceReceiver) Traces() []Trace {
	var out []Trace
	for id, spans := range r.Spans() {
		sort.SliceStable(spans, func(i, j int) bool { return spans[i].Start.Before(spans[j].Start) })
		out = append(out, Trace{ID: id, Spans: spans})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Spans[0].Start.Before(out[j].Spans[0].Start) })
	return out
}

// WaitForTrace waits until a received trace satisfies match and returns it,
// failing the test after timeout with what was received. Because spans of one
// trace arrive from several processes at different times, match should
// describe the complete trace (for example with HasServices).
func (r *TraceReceiver) WaitForTrace(t testing.TB, timeout time.Duration, match func(Trace) bool) Trace {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		changed := r.changed
		r.mu.Unlock()
		for _, tr := range r.Traces() {
			if match(tr) {
				return tr
			}
		}
		select {
		case <-changed:
		case <-deadline.C:
			var b strings.Builder
			for _, tr := range r.Traces() {
				b.WriteString(tr.String())
			}
			t.Fatalf("harness: no matching trace within %s; received:\n%s", timeout, b.String())
			return Trace{}
		}
	}
}

func attrString(attrs []*commonpb.KeyValue, key string) string {
	for _, kv := range attrs {
		if kv.GetKey() == key {
			return anyString(kv.GetValue())
		}
	}
	return ""
}

func anyString(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_BoolValue:
		return fmt.Sprint(x.BoolValue)
	case *commonpb.AnyValue_IntValue:
		return fmt.Sprint(x.IntValue)
	case *commonpb.AnyValue_DoubleValue:
		return fmt.Sprint(x.DoubleValue)
	default:
		return v.String()
	}
}
