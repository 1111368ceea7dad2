package admin_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-mesh/switchyard/services/kit/admin"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	body, _ := io.ReadAll(rec.Body)
	return rec.Code, string(body)
}

func TestEndpoints(t *testing.T) {
	reg := admin.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "switchyard_test_things_total", Help: "things"})
	reg.MustRegister(c)
	c.Inc()
	srv := admin.New(slog.New(slog.DiscardHandler), reg)

	if code, body := get(t, srv.Handler(), "/healthz"); code != 200 || !strings.Contains(body, "ok") {
		t.Fatalf("/healthz = %d %q", code, body)
	}
	code, body := get(t, srv.Handler(), "/metrics")
	if code != 200 || !strings.Contains(body, "switchyard_test_things_total 1") || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("/metrics = %d, missing metrics:\n%s", code, body)
	}
	if code, _ := get(t, srv.Handler(), "/debug/pprof/"); code != 200 {
		t.Fatalf("/debug/pprof/ = %d", code)
	}
}

func TestReadinessNamesTheFailingCheck(t *testing.T) {
	srv := admin.New(slog.New(slog.DiscardHandler), admin.NewRegistry())
	if code, _ := get(t, srv.Handler(), "/readyz"); code != 200 {
		t.Fatalf("no checks: /readyz = %d", code)
	}
	var upstreamErr error = errors.New("no leader")
	srv.AddReadiness("config", func(context.Context) error { return nil })
	srv.AddReadiness("registry", func(context.Context) error { return upstreamErr })
	code, body := get(t, srv.Handler(), "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "registry: no leader") || strings.Contains(body, "config:") {
		t.Fatalf("/readyz = %d %q", code, body)
	}
	upstreamErr = nil
	if code, _ := get(t, srv.Handler(), "/readyz"); code != 200 {
		t.Fatalf("recovered: /readyz = %d", code)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (admin.Config{Addr: "127.0.0.1:9901"}).Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (admin.Config{Addr: "9901"}).Validate(); err == nil || !strings.Contains(err.Error(), "addr") {
		t.Fatalf("Validate = %v", err)
	}
}
