// Package proxy is the sidecar's data plane: it serves the listeners of the
// accepted xDS snapshot (HTTP/1.1 and h2/h2c with routing, retries,
// breakers, outlier ejection, fault injection, mirroring, RBAC and rate
// limits; or raw TCP), forwarding to upstream clusters over pooled, mTLS
// connections.
package proxy

import (
	"context"
	"crypto/tls"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc"

	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/route"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/xds"
)

// Identity is the sidecar's SVID source; kit/identity.Source satisfies it.
type Identity interface {
	ID() spiffeid.ID
	ServerTLSConfigWith(tlsconfig.Authorizer) *tls.Config
	ClientTLSConfigWith(tlsconfig.Authorizer) *tls.Config
}

// Config configures a Proxy.
type Config struct {
	Log      *slog.Logger
	Metrics  prometheus.Registerer
	Identity Identity // nil: mTLS listeners and clusters cannot be served
	// Bind overrides the address of the listener with the given name (so
	// several sidecars can share one host in local dev and tests).
	Bind map[string]string
	// Drain is how long a removed or replaced listener may finish requests.
	Drain time.Duration
	// Now is the clock for breakers, budgets and outlier detection.
	Now func() time.Time
}

// Proxy applies snapshots and serves their listeners.
type Proxy struct {
	cfg Config
	log *slog.Logger
	m   *metrics

	clusters atomic.Pointer[map[string]*cluster]
	routes   atomic.Pointer[map[string]*route.Table]
	snap     atomic.Pointer[xds.Snapshot]

	pending chan *xds.Snapshot

	mu        sync.Mutex // guards listeners and rls
	listeners map[string]*listener
	rls       map[string]*grpc.ClientConn
	ctx       context.Context
}

// New returns a proxy; call Run to serve and Apply to configure it.
func New(cfg Config) *Proxy {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Drain <= 0 {
		cfg.Drain = 5 * time.Second
	}
	p := &Proxy{cfg: cfg, log: cfg.Log.With("component", "proxy"), m: newMetrics(cfg.Metrics),
		pending: make(chan *xds.Snapshot, 1), listeners: map[string]*listener{}, rls: map[string]*grpc.ClientConn{}}
	empty := map[string]*cluster{}
	p.clusters.Store(&empty)
	noRoutes := map[string]*route.Table{}
	p.routes.Store(&noRoutes)
	return p
}

// Apply hands the proxy a new accepted snapshot. It never blocks: if the
// proxy has not applied the previous one yet, only the newest is kept.
func (p *Proxy) Apply(s *xds.Snapshot) {
	for {
		select {
		case p.pending <- s:
			return
		default:
		}
		select {
		case <-p.pending:
		default:
		}
	}
}

// Snapshot is the snapshot currently applied (nil before the first).
func (p *Proxy) Snapshot() *xds.Snapshot { return p.snap.Load() }

// Run applies snapshots and serves listeners until ctx ends, then drains.
func (p *Proxy) Run(ctx context.Context) error {
	p.mu.Lock()
	p.ctx = ctx
	p.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			p.shutdown()
			return nil
		case s := <-p.pending:
			p.apply(s)
		}
	}
}

// apply installs clusters first (so new routes find them), then routes,
// then listeners; clusters no longer referenced are closed last.
func (p *Proxy) apply(s *xds.Snapshot) {
	old := *p.clusters.Load()
	next := make(map[string]*cluster, len(s.Clusters))
	var retired []*cluster
	for name, cfg := range s.Clusters {
		c, ok := old[name]
		if ok && !clusterConfigChanged(c.cfg, cfg) {
			next[name] = c
		} else {
			if ok {
				retired = append(retired, c)
			}
			c = newCluster(cfg, p.cfg.Identity, p.m, p.cfg.Now)
			next[name] = c
		}
		if cfg.EDSServiceName != "" {
			if e, ok := s.Endpoints[cfg.EDSServiceName]; ok && !endpointsEqual(c.endpoints, e) {
				c.setEndpoints(e)
			}
		}
	}
	for name, c := range old {
		if _, ok := next[name]; !ok {
			retired = append(retired, c)
		}
	}
	p.clusters.Store(&next)
	routes := maps.Clone(s.Routes)
	p.routes.Store(&routes)
	p.snap.Store(s)
	p.applyListeners(s)
	for _, c := range retired {
		c.close()
	}
}

func clusterConfigChanged(a, b xds.ClusterConfig) bool {
	// Endpoints of STATIC clusters are part of the config.
	ae, be := a.Endpoints, b.Endpoints
	a.Endpoints, b.Endpoints = nil, nil
	if !equalClusterConfig(a, b) {
		return true
	}
	if (ae == nil) != (be == nil) {
		return true
	}
	return ae != nil && !endpointsEqual(*ae, *be)
}

func (p *Proxy) cluster(name string) *cluster { return (*p.clusters.Load())[name] }

func (p *Proxy) routeTable(name string) *route.Table { return (*p.routes.Load())[name] }

func (p *Proxy) shutdown() {
	p.mu.Lock()
	ls := maps.Clone(p.listeners)
	conns := maps.Clone(p.rls)
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, l := range ls {
		wg.Go(func() { l.stop(p.cfg.Drain) })
	}
	wg.Wait()
	for _, c := range *p.clusters.Load() {
		close(c.stop)
		c.closeIdle()
	}
	for _, cc := range conns {
		_ = cc.Close()
	}
}

func (p *Proxy) ctxOrBackground() context.Context {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ctx == nil {
		return context.Background()
	}
	return p.ctx
}
