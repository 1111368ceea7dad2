package harness_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/switchyard-mesh/switchyard/test/harness"
)

// The test binary doubles as the process under test: with HARNESS_HELPER set
// it behaves as a tiny service instead of running tests.
func TestMain(m *testing.M) {
	switch os.Getenv("HARNESS_HELPER") {
	case "":
		os.Exit(m.Run())
	case "serve":
		serve()
	case "exit":
		fmt.Fprintln(os.Stderr, "config: admin.addr: missing port")
		os.Exit(3)
	case "hang":
		select {}
	}
}

// serve answers /readyz on HARNESS_ADDR and exits 0 on SIGTERM, unless
// HARNESS_IGNORE_TERM is set.
func serve() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	ln, err := net.Listen("tcp", os.Getenv("HARNESS_ADDR"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println("helper listening on", ln.Addr(), "SECRET_ENV="+os.Getenv("SWITCHYARD_SECRET"))
	go func() {
		_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintln(w, "ready")
		}))
	}()
	for range sigs {
		if os.Getenv("HARNESS_IGNORE_TERM") == "" {
			fmt.Println("helper got SIGTERM")
			os.Exit(0)
		}
	}
}

func helper(t *testing.T, mode string, env ...string) harness.Process {
	t.Helper()
	addr := harness.FreeAddr(t)
	return harness.Process{
		Name:     "helper",
		Binary:   os.Args[0],
		Env:      append([]string{"HARNESS_HELPER=" + mode, "HARNESS_ADDR=" + addr}, env...),
		ReadyURL: "http://" + addr + "/readyz",
	}
}

func TestStartStopRestart(t *testing.T) {
	t.Setenv("SWITCHYARD_SECRET", "leaked")
	p := harness.Start(t, helper(t, "serve"))
	if p.PID() == 0 {
		t.Fatal("PID is 0 after Start")
	}
	if strings.Contains(p.Log(), "leaked") {
		t.Errorf("SWITCHYARD_* from the test environment reached the process:\n%s", p.Log())
	}
	first := p.PID()
	p.Restart(t)
	if p.PID() == first {
		t.Errorf("PID unchanged after Restart: %d", first)
	}
	if err := p.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if code := p.ExitCode(); code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
	if n := strings.Count(p.Log(), "helper got SIGTERM"); n != 2 {
		t.Errorf("log shows %d graceful stops, want 2 (restart + stop):\n%s", n, p.Log())
	}
	if err := p.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestStopKillsAfterGrace(t *testing.T) {
	spec := helper(t, "serve", "HARNESS_IGNORE_TERM=1")
	spec.StopGrace = 200 * time.Millisecond
	p := harness.Start(t, spec)
	start := time.Now()
	err := p.Stop()
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("Stop of a process ignoring SIGTERM = %v, want an error saying it was killed", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Stop took %s with a 200ms grace", took)
	}
	if code := p.ExitCode(); code != -1 {
		t.Errorf("exit code = %d, want -1 (signal)", code)
	}
}

func TestKill(t *testing.T) {
	p := harness.Start(t, helper(t, "serve"))
	p.Kill()
	select {
	case <-p.Exited():
	default:
		t.Fatal("Exited not closed after Kill")
	}
}

func TestRunToExit(t *testing.T) {
	res := harness.RunToExit(t, harness.Process{Binary: os.Args[0], Env: []string{"HARNESS_HELPER=exit"}}, 10*time.Second)
	if res.Code != 3 || !strings.Contains(res.Output, "admin.addr") {
		t.Errorf("RunToExit = %+v, want code 3 naming admin.addr", res)
	}
}

// A process that never becomes ready must fail its test with the log; the
// failure is observed through a fake testing.TB.
func TestStartFailsWhenNotReady(t *testing.T) {
	for name, spec := range map[string]harness.Process{
		"exits":   {Name: "quitter", Binary: os.Args[0], Env: []string{"HARNESS_HELPER=exit"}, ReadyURL: "http://" + harness.FreeAddr(t) + "/readyz"},
		"hangs":   {Name: "sleeper", Binary: os.Args[0], Env: []string{"HARNESS_HELPER=hang"}, ReadyURL: "http://" + harness.FreeAddr(t) + "/readyz", ReadyTimeout: 300 * time.Millisecond, StopGrace: 100 * time.Millisecond},
		"missing": {Name: "ghost", Binary: filepath.Join(t.TempDir(), "nope")},
	} {
		t.Run(name, func(t *testing.T) {
			ft := &fatalTB{TB: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				harness.Start(ft, spec)
			}()
			<-done
			if !ft.failed.Load() {
				t.Fatal("Start did not fail the test")
			}
			t.Log(ft.msg)
			if name == "exits" && !strings.Contains(ft.msg, "admin.addr") {
				t.Errorf("failure does not include the log tail: %s", ft.msg)
			}
		})
	}
}

// fatalTB records Fatalf instead of failing the real test, and ends the
// calling goroutine like the real one does.
type fatalTB struct {
	testing.TB
	failed atomic.Bool
	msg    string
}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	f.failed.Store(true)
	runtime.Goexit()
}

func (f *fatalTB) Helper() {}

func TestPoll(t *testing.T) {
	n := 0
	harness.Poll(t, 5*time.Second, func() error {
		n++
		if n < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if n != 3 {
		t.Errorf("cond called %d times, want 3", n)
	}
}

func TestFreeAddrUnique(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		a := harness.FreeAddr(t)
		if seen[a] {
			t.Fatalf("FreeAddr returned %s twice", a)
		}
		seen[a] = true
	}
}

func TestTraceReceiver(t *testing.T) {
	r := harness.NewTraceReceiver(t)
	if !strings.Contains(strings.Join(r.Env(), " "), "OTEL_EXPORTER_OTLP_ENDPOINT=http://"+r.Endpoint()) {
		t.Errorf("Env() = %v does not point at %s", r.Env(), r.Endpoint())
	}
	conn, err := grpc.NewClient(r.Endpoint(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := coltracepb.NewTraceServiceClient(conn)

	traceID := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	export := func(service string, spanID, parent byte) error {
		span := &tracepb.Span{
			TraceId: traceID, SpanId: []byte{0, 0, 0, 0, 0, 0, 0, spanID},
			Name: service + " GET", Kind: tracepb.Span_SPAN_KIND_SERVER,
			StartTimeUnixNano: uint64(time.Now().UnixNano()),
			Attributes:        []*commonpb.KeyValue{{Key: "http.response.status_code", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: 200}}}},
		}
		if parent != 0 {
			span.ParentSpanId = []byte{0, 0, 0, 0, 0, 0, 0, parent}
		}
		_, err := client.Export(context.Background(), &coltracepb.ExportTraceServiceRequest{
			ResourceSpans: []*tracepb.ResourceSpans{{
				Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{{
					Key: "service.name", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: service}},
				}}},
				ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{span}}},
			}},
		})
		return err
	}
	if err := export("frontend", 1, 0); err != nil {
		t.Fatalf("export: %v", err)
	}
	exported := make(chan error, 1)
	go func() {
		time.Sleep(100 * time.Millisecond)
		exported <- export("users", 2, 1)
	}()
	defer func() {
		if err := <-exported; err != nil {
			t.Errorf("export: %v", err)
		}
	}()
	tr := r.WaitForTrace(t, 5*time.Second, harness.HasServices("frontend", "users"))
	if tr.ID != hex.EncodeToString(traceID) {
		t.Errorf("trace id = %s", tr.ID)
	}
	if got := tr.Services(); strings.Join(got, ",") != "frontend,users" {
		t.Errorf("services = %v", got)
	}
	if s := tr.Spans[1]; s.ParentSpanID != tr.Spans[0].SpanID || s.Kind != "SERVER" || s.Attributes["http.response.status_code"] != "200" {
		t.Errorf("second span = %+v", s)
	}
	if !strings.Contains(tr.String(), "    users GET [users SERVER]") {
		t.Errorf("tree rendering:\n%s", tr)
	}
	if got := r.Spans()[tr.ID]; len(got) != 2 {
		t.Errorf("Spans()[%s] has %d spans, want 2", tr.ID, len(got))
	}
	_ = r.WaitForTrace(t, time.Second, harness.HasTraceID(tr.ID))
}
