package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-mesh/switchyard/services/registry/internal/catalog"
)

// Clock tells the time; tests inject their own.
type Clock interface{ Now() time.Time }

// SystemClock is the wall clock.
type SystemClock struct{}

// Now implements Clock.
func (SystemClock) Now() time.Time { return time.Now() }

// Node is what the runner needs from Raft.
type Node interface {
	Apply(catalog.Command) (catalog.Result, error)
	Leadership() (context.Context, bool, <-chan struct{})
}

// ErrNotLeader is returned by Heartbeat when this node is not running the
// leader's health checks.
var ErrNotLeader = errors.New("health checks run on the leader only")

// Runner is the leader-only health loop.
type Runner struct {
	store   *catalog.Store
	node    Node
	prober  Prober
	clock   Clock
	tick    time.Duration
	log     *slog.Logger
	metrics *Metrics

	mu      sync.Mutex
	leading bool
	beats   *Heartbeats
	probes  map[catalog.Key]*probeState
}

type probeState struct {
	streak   Streak
	next     time.Time
	inflight bool
}

type probeResult struct {
	in  *catalog.Instance
	err error
}

// Config configures a Runner.
type Config struct {
	Store  *catalog.Store
	Node   Node
	Prober Prober
	Clock  Clock
	// Tick is how often TTLs and reaping are evaluated and due probes
	// started.
	Tick    time.Duration
	Log     *slog.Logger
	Metrics *Metrics
}

// NewRunner builds a runner.
func NewRunner(c Config) *Runner {
	return &Runner{
		store: c.Store, node: c.Node, prober: c.Prober, clock: c.Clock, tick: c.Tick, log: c.Log, metrics: c.Metrics,
		beats: NewHeartbeats(), probes: map[catalog.Key]*probeState{},
	}
}

// Heartbeat renews a TTL instance's heartbeat; if the instance is not
// passing, it records the transition to passing through Raft and returns
// that entry's index.
func (r *Runner) Heartbeat(k catalog.Key) (uint64, error) {
	in, _, ok := r.store.Instance(k)
	if !ok {
		return 0, fmt.Errorf("instance %s/%s: %w", k.Service, k.ID, catalog.ErrNotFound)
	}
	if in.Check.Type != catalog.CheckTTL {
		return 0, &catalog.FieldError{Field: "id", Reason: fmt.Sprintf("instance %s/%s has a %s check, not a ttl check", k.Service, k.ID, in.Check.Type)}
	}
	now := r.clock.Now()
	r.mu.Lock()
	if !r.leading {
		r.mu.Unlock()
		return 0, ErrNotLeader
	}
	r.beats.Beat(k, now)
	r.mu.Unlock()
	if in.Health == catalog.HealthPassing {
		return 0, nil
	}
	res, err := r.node.Apply(catalog.SetHealth{Service: k.Service, ID: k.ID, Health: catalog.HealthPassing, Output: "heartbeat received", At: now})
	if err != nil {
		return 0, err
	}
	if res.Err != nil {
		return 0, res.Err
	}
	if res.Changed {
		r.metrics.transition(catalog.HealthPassing)
	}
	return res.Index, nil
}

// Run waits for leadership and runs the checks while it lasts.
func (r *Runner) Run(ctx context.Context) error {
	for {
		lctx, leading, changed := r.node.Leadership()
		if leading {
			r.lead(ctx, lctx)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

func (r *Runner) lead(ctx, lctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-lctx.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	r.mu.Lock()
	r.leading = true
	r.beats.Reset()
	clear(r.probes)
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.leading = false
		r.mu.Unlock()
	}()
	r.log.Info("running health checks as leader")

	results := make(chan probeResult, 64)
	var wg sync.WaitGroup
	defer wg.Wait()
	t := time.NewTicker(r.tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case res := <-results:
			r.handleProbe(res)
		case <-t.C:
			r.evaluate(ctx, results, &wg)
		}
	}
}

func (r *Runner) evaluate(ctx context.Context, results chan<- probeResult, wg *sync.WaitGroup) {
	now := r.clock.Now()
	instances, _ := r.store.Instances(catalog.Filter{})
	r.mu.Lock()
	cmds := r.beats.Decide(now, instances)
	r.mu.Unlock()
	for _, c := range cmds {
		r.apply(c)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	live := make(map[catalog.Key]bool, len(instances))
	for _, in := range instances {
		if !in.Check.Type.Active() {
			continue
		}
		k := in.Key()
		live[k] = true
		st := r.probes[k]
		if st == nil {
			st = &probeState{next: now}
			r.probes[k] = st
		}
		if st.inflight || now.Before(st.next) {
			continue
		}
		st.inflight = true
		st.next = now.Add(in.Check.Interval)
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := r.prober.Probe(ctx, in)
			r.metrics.probe(in.Check.Type, err)
			select {
			case results <- probeResult{in: in, err: err}:
			case <-ctx.Done():
			}
		}()
	}
	for k := range r.probes {
		if !live[k] {
			delete(r.probes, k)
		}
	}
}

func (r *Runner) handleProbe(res probeResult) {
	k := res.in.Key()
	r.mu.Lock()
	st := r.probes[k]
	if st == nil {
		r.mu.Unlock()
		return
	}
	st.inflight = false
	cur, _, ok := r.store.Instance(k)
	if !ok || cur.Check != res.in.Check {
		r.mu.Unlock()
		return
	}
	next, changed := st.streak.Observe(res.err == nil, cur.Health, cur.Check)
	r.mu.Unlock()
	if !changed {
		return
	}
	out := "check passed"
	if res.err != nil {
		out = res.err.Error()
	}
	r.apply(catalog.SetHealth{Service: k.Service, ID: k.ID, Health: next, Output: out, At: r.clock.Now(), IfModifyIndex: cur.ModifyIndex})
}

func (r *Runner) apply(c catalog.Command) {
	res, err := r.node.Apply(c)
	if err == nil {
		err = res.Err
	}
	if errors.Is(err, catalog.ErrConflict) || errors.Is(err, catalog.ErrNotFound) {
		return // the instance changed first; the next tick sees the new state
	}
	if err != nil {
		r.log.Warn("apply health decision", "err", err)
		return
	}
	switch c := c.(type) {
	case catalog.SetHealth:
		r.metrics.transition(c.Health)
		r.log.Info("health changed", "service", c.Service, "id", c.ID, "health", c.Health.String(), "output", c.Output)
	case catalog.Deregister:
		r.metrics.reaped.Inc()
		r.log.Info("deregistered instance critical for too long", "service", c.Service, "id", c.ID)
	}
}

// Metrics are the health checker's metrics.
type Metrics struct {
	transitions *prometheus.CounterVec
	probes      *prometheus.CounterVec
	reaped      prometheus.Counter
}

// NewMetrics registers the health metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_registry_health_transitions_total",
			Help: "Health transitions the leader committed, by new status.",
		}, []string{"to"}),
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_registry_health_probes_total",
			Help: "Active health probes run by the leader, by check type and result.",
		}, []string{"type", "result"}),
		reaped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchyard_registry_health_deregistrations_total",
			Help: "Instances removed after staying critical past deregister_critical_after.",
		}),
	}
	reg.MustRegister(m.transitions, m.probes, m.reaped)
	return m
}

func (m *Metrics) transition(to catalog.Health) { m.transitions.WithLabelValues(to.String()).Inc() }

func (m *Metrics) probe(t catalog.CheckType, err error) {
	result := "pass"
	if err != nil {
		result = "fail"
	}
	m.probes.WithLabelValues(t.String(), result).Inc()
}
