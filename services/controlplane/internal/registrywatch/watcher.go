package registrywatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	registryv1 "github.com/switchyard-mesh/switchyard/proto/switchyard/registry/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Watcher follows the registry. After every applied response that changed
// something it signals Changed (coalescing: one pending signal at most).
type Watcher struct {
	client registryv1.RegistryServiceClient
	log    *slog.Logger

	changed   chan struct{}
	connected prometheus.Gauge

	mu        sync.Mutex
	state     State
	synced    bool // a full state has been received once
	up        bool
	lastErr   error
	downSince time.Time
	changeAt  time.Time // first unconsumed change
}

// New returns a watcher; reg may be nil.
func New(client registryv1.RegistryServiceClient, log *slog.Logger, reg prometheus.Registerer) *Watcher {
	w := &Watcher{
		client:  client,
		log:     log,
		changed: make(chan struct{}, 1),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchyard_controlplane_registry_connected",
			Help: "1 while the registry watch stream is up, 0 while serving the last known catalog.",
		}),
	}
	if reg != nil {
		reg.MustRegister(w.connected)
	}
	return w
}

// Changed signals that State has moved on.
func (w *Watcher) Changed() <-chan struct{} { return w.changed }

// Snapshot returns a copy of the current state's translation inputs and
// when the first change not yet taken was received; it resets that time.
func (w *Watcher) Snapshot() (State, time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	at := w.changeAt
	w.changeAt = time.Time{}
	return w.state.clone(), at
}

// Check is the readiness check: not ready before the first full state;
// degraded (but still serving the last state) while the registry is down.
func (w *Watcher) Check(context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case !w.synced:
		return fmt.Errorf("no catalog from the registry yet: %v", w.lastErr)
	case !w.up:
		return fmt.Errorf("degraded: registry unreachable since %s (%v); serving the catalog at index %d",
			w.downSince.Format(time.RFC3339), w.lastErr, w.state.Index)
	}
	return nil
}

// Run watches until ctx ends, reconnecting with backoff from the last index.
func (w *Watcher) Run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for {
		err := w.watch(ctx)
		if ctx.Err() != nil {
			return nil
		}
		w.mu.Lock()
		if w.up || w.downSince.IsZero() {
			w.downSince = time.Now()
		}
		w.up = false
		w.lastErr = err
		w.mu.Unlock()
		w.connected.Set(0)
		w.log.Warn("registry watch interrupted; serving the last catalog", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
		if err == nil {
			backoff = 100 * time.Millisecond
		}
	}
}

func (w *Watcher) watch(ctx context.Context) error {
	w.mu.Lock()
	from := w.state.Index
	if !w.synced {
		from = 0
	}
	w.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := w.client.Watch(ctx, &registryv1.WatchRequest{FromIndex: from})
	if err != nil {
		return fmt.Errorf("open watch from index %d: %w", from, err)
	}
	// A watch resumed at the head sends nothing until the next change, so
	// prove the registry is reachable with a cheap read before saying so.
	probeCtx, probeCancel := context.WithTimeout(ctx, 5*time.Second)
	_, err = w.client.ListServices(probeCtx, &registryv1.ListServicesRequest{Read: &registryv1.ReadOptions{Stale: true}})
	probeCancel()
	if err != nil {
		return fmt.Errorf("probe registry: %w", err)
	}
	w.markUp(from)
	for {
		resp, err := stream.Recv()
		if err != nil {
			if status.Code(err) == codes.Canceled || errors.Is(err, context.Canceled) {
				return ctx.Err()
			}
			return fmt.Errorf("watch from index %d: %w", from, err)
		}
		w.mu.Lock()
		changed := w.state.Apply(resp)
		if resp.GetSnapshot() || from == 0 {
			w.synced = true
		}
		if changed && w.synced && w.changeAt.IsZero() {
			w.changeAt = time.Now()
		}
		synced := w.synced
		w.mu.Unlock()
		if changed && synced {
			select {
			case w.changed <- struct{}{}:
			default:
			}
		}
	}
}

func (w *Watcher) markUp(from uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.up {
		w.log.Info("registry watch up", "from_index", from)
	}
	w.up = true
	w.connected.Set(1)
}

func (s *State) clone() State {
	out := State{Index: s.Index, instances: map[string]map[string]*registryv1.Instance{}, docs: map[string]*registryv1.ConfigDocument{}}
	for svc, m := range s.instances {
		c := make(map[string]*registryv1.Instance, len(m))
		for id, in := range m {
			c[id] = in
		}
		out.instances[svc] = c
	}
	for k, d := range s.docs {
		out.docs[k] = d
	}
	return out
}
