package xds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"

	"github.com/switchyard-mesh/switchyard/services/controlplane/internal/translate"
)

// Publisher keeps one snapshot per proxy in go-control-plane's snapshot
// cache, rebuilding them when the catalog or documents change.
type Publisher struct {
	Cache   *MarshalOnce
	opts    translate.Options
	log     *slog.Logger
	metrics *Metrics
	now     func() time.Time

	mu        sync.Mutex
	world     *translate.World
	proxies   map[string]translate.Proxy
	versionAt map[string]time.Time // type version → change it was built from
}

// NewPublisher returns a publisher over a new ADS snapshot cache keyed by
// node ID.
func NewPublisher(log *slog.Logger, m *Metrics, opts translate.Options) *Publisher {
	return &Publisher{
		Cache:     NewMarshalOnce(cache.NewSnapshotCache(true, cache.IDHash{}, nil)),
		opts:      opts,
		log:       log,
		metrics:   m,
		now:       time.Now,
		proxies:   map[string]translate.Proxy{},
		versionAt: map[string]time.Time{},
	}
}

// Update translates a new catalog and document set and sets the snapshot of
// every known proxy. changeAt is when the first change of the burst that
// led here was received (for push latency). Proxies whose snapshot fails
// the consistency check keep their previous one; the error names them.
func (p *Publisher) Update(ctx context.Context, cat translate.Catalog, docs translate.Docs, changeAt time.Time) error {
	start := p.now()
	w := translate.Build(cat, docs, p.opts)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.world = w
	p.Cache.Reset()
	var errs []error
	for _, proxy := range p.proxies {
		if err := p.set(ctx, proxy, changeAt); err != nil {
			errs = append(errs, err)
		}
	}
	for v, at := range p.versionAt {
		if start.Sub(at) > 10*time.Minute {
			delete(p.versionAt, v)
		}
	}
	elapsed := p.now().Sub(start)
	p.metrics.BuildSeconds.Observe(elapsed.Seconds())
	p.metrics.Snapshots.Inc()
	p.log.Debug("snapshots set", "proxies", len(p.proxies), "services", len(w.Services()), "took", elapsed)
	return errors.Join(errs...)
}

// AddProxy registers a proxy seen for the first time and sets its snapshot
// if a catalog is known yet.
func (p *Publisher) AddProxy(proxy translate.Proxy) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.proxies[proxy.ID] = proxy
	if p.world == nil {
		return
	}
	if err := p.set(context.Background(), proxy, time.Time{}); err != nil {
		p.log.Error("set snapshot for new proxy", "proxy", proxy.ID, "err", err)
	}
}

// RemoveProxy forgets a proxy and its snapshot.
func (p *Publisher) RemoveProxy(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.proxies, id)
	p.Cache.ClearSnapshot(id)
}

// set builds, checks and installs one proxy's snapshot. Caller holds mu.
func (p *Publisher) set(ctx context.Context, proxy translate.Proxy, changeAt time.Time) error {
	snap, err := p.world.SnapshotFor(proxy)
	if err != nil {
		return fmt.Errorf("proxy %s: %w", proxy.ID, err)
	}
	if !changeAt.IsZero() {
		prev, _ := p.Cache.GetSnapshot(proxy.ID)
		for i, r := range snap.Resources {
			if prev == nil || prev.(*cache.Snapshot).Resources[i].Version != r.Version {
				p.versionAt[r.Version] = changeAt
			}
		}
	}
	if err := p.Cache.SetSnapshot(ctx, proxy.ID, snap); err != nil {
		return fmt.Errorf("proxy %s: set snapshot: %w", proxy.ID, err)
	}
	return nil
}

// ChangeAt reports when the change behind a type version was received
// (zero if unknown).
func (p *Publisher) ChangeAt(version string) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.versionAt[version]
}

// Snapshot returns the snapshot currently held for a proxy.
func (p *Publisher) Snapshot(id string) (*cache.Snapshot, error) {
	s, err := p.Cache.GetSnapshot(id)
	if err != nil {
		return nil, err
	}
	return s.(*cache.Snapshot), nil
}

// Ready reports whether a catalog has been translated yet.
func (p *Publisher) Ready() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.world != nil
}
