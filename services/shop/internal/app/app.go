package app

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-mesh/switchyard/services/kit/run"
	"github.com/switchyard-mesh/switchyard/services/kit/service"
	"github.com/switchyard-mesh/switchyard/services/kit/telemetry"
	"github.com/switchyard-mesh/switchyard/services/shop/internal/fault"
	"github.com/switchyard-mesh/switchyard/services/shop/internal/shop"
)

// Binary is the executable's name, the <binary> in its metric names.
const Binary = "shop"

// drain is how long in-flight API requests get to finish on shutdown.
const drain = 5 * time.Second

// Run serves the configured app until ctx is cancelled. cfg must have
// passed Validate.
func Run(ctx context.Context, cfg Config) error {
	cfg = cfg.resolved()
	base, err := service.Start(ctx, cfg.App, cfg.Config)
	if err != nil {
		return err
	}
	log := base.Log.With("app", cfg.App, "instance", cfg.Instance)
	// Every app is the one binary "shop"; its metrics carry the app as a
	// constant label so dashboards split by it.
	reg := prometheus.WrapRegistererWith(prometheus.Labels{"app": cfg.App}, base.Metrics)

	handler, err := appHandler(cfg, reg)
	if err != nil {
		return err
	}
	injector := fault.New(cfg.Instance, cfg.Fault, reg)
	base.Admin.Handle("/admin/fault", injector.AdminHandler())

	mux := http.NewServeMux()
	mux.Handle("GET /healthz", handler)
	mux.Handle("/", injector.Middleware(handler))
	api := shop.ServedBy(cfg.Instance, telemetry.HTTPMiddleware(reg, Binary)(mux))

	ln, err := run.Listen("http.addr", cfg.HTTP.Addr)
	if err != nil {
		return err
	}
	log.Info("serving", "http", ln.Addr().String(), "admin", cfg.Admin.Addr,
		"fault_latency", cfg.Fault.Latency, "fault_error_rate", cfg.Fault.ErrorRate)
	srv := &http.Server{Handler: api, ReadHeaderTimeout: 5 * time.Second}
	return base.Run(ctx, run.HTTPServer(srv, ln, drain))
}

// appHandler builds the chosen app's handler with clients for the upstreams
// it calls.
func appHandler(cfg Config, reg prometheus.Registerer) (http.Handler, error) {
	metrics := shop.NewUpstreamMetrics(reg)
	transport := telemetry.HTTPTransport(http.DefaultTransport)
	upstream := func(name, raw string) (*shop.Upstream, error) {
		u, err := parseUpstream(raw)
		if err != nil {
			return nil, fmt.Errorf("upstreams.%s: %w", name, err)
		}
		return shop.NewUpstream(name, u, transport, cfg.HTTP.Timeout, metrics), nil
	}
	switch cfg.App {
	case "users":
		return shop.Users(cfg.Instance), nil
	case "billing":
		return shop.Billing(cfg.Instance), nil
	case "orders":
		billing, err := upstream("billing", cfg.Upstreams.Billing)
		if err != nil {
			return nil, err
		}
		return shop.Orders(cfg.Instance, billing), nil
	case "frontend":
		users, err := upstream("users", cfg.Upstreams.Users)
		if err != nil {
			return nil, err
		}
		orders, err := upstream("orders", cfg.Upstreams.Orders)
		if err != nil {
			return nil, err
		}
		return shop.Frontend(cfg.Instance, users, orders), nil
	}
	return nil, fmt.Errorf("app: unknown app %q", cfg.App)
}
