// Package admin is the HTTP server on every binary's admin port: Prometheus
// /metrics, liveness /healthz, readiness /readyz composed from named checks,
// and /debug/pprof. Binaries add their own endpoints (config dumps, debug
// queries) with Handle.
package admin

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchyard-mesh/switchyard/services/kit/config"
	"github.com/switchyard-mesh/switchyard/services/kit/run"
)

// Config places the admin server.
type Config struct {
	Addr string `yaml:"addr" help:"admin listen address for /metrics, /healthz, /readyz, /debug/pprof"`
}

// Validate reports an admin address that is not host:port.
func (c Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return config.Errorf("addr", "want host:port, got %q", c.Addr)
	}
	return nil
}

// NewRegistry returns a Prometheus registry with the Go runtime and process
// collectors, so every binary exports memory, GC and CPU figures.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Check reports whether one dependency of readiness is satisfied.
type Check func(ctx context.Context) error

// Server is a binary's admin HTTP server.
type Server struct {
	log *slog.Logger
	mux *http.ServeMux

	mu     sync.RWMutex
	checks map[string]Check
}

// New returns an admin server exporting reg on /metrics.
func New(log *slog.Logger, reg *prometheus.Registry) *Server {
	s := &Server{log: log.With("component", "admin"), mux: http.NewServeMux(), checks: map[string]Check{}}
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, EnableOpenMetrics: true}))
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	s.mux.HandleFunc("GET /readyz", s.serveReady)
	s.mux.HandleFunc("/debug/pprof/", pprof.Index)
	s.mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	s.mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	s.mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	s.mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return s
}

// AddReadiness adds a named check to /readyz. The server is ready only when
// every check passes; a failing one is named in the 503 body.
func (s *Server) AddReadiness(name string, check Check) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks[name] = check
}

// Handle adds an endpoint, with a method in the pattern where it matters
// ("GET /config_dump").
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Handler returns the admin mux, for tests and for embedding.
func (s *Server) Handler() http.Handler { return s.mux }

// Run serves the admin endpoints on ln until ctx is cancelled.
func (s *Server) Run(ln net.Listener) run.Task {
	srv := &http.Server{Handler: s.mux, ReadHeaderTimeout: 5 * time.Second}
	s.log.Info("admin server listening", "addr", ln.Addr().String())
	return run.HTTPServer(srv, ln, 2*time.Second)
}

func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	s.mu.RLock()
	names := make([]string, 0, len(s.checks))
	for name := range s.checks {
		names = append(names, name)
	}
	checks := make(map[string]Check, len(s.checks))
	for k, v := range s.checks {
		checks[k] = v
	}
	s.mu.RUnlock()
	sort.Strings(names)

	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	var failed []string
	for _, name := range names {
		if err := checks[name](ctx); err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", name, err))
		}
	}
	if len(failed) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready\n%s\n", strings.Join(failed, "\n"))
		return
	}
	fmt.Fprintln(w, "ready")
}
