// Package breaker implements Envoy-style resource circuit breakers: per
// cluster caps on connections, pending requests, requests in flight and
// retries in flight. A request over a cap fails fast with the reason, instead
// of queueing until its timeout.
package breaker

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Resource is one capped resource; its String is the reason reported to callers.
type Resource string

// Resources a breaker caps.
const (
	Connections Resource = "max_connections"
	Pending     Resource = "max_pending_requests"
	Requests    Resource = "max_requests"
	Retries     Resource = "max_retries"
)

// Limits are the caps; Envoy's defaults are 1024 for each except retries (3).
type Limits struct {
	MaxConnections, MaxPending, MaxRequests, MaxRetries int64
}

// DefaultLimits are Envoy's default thresholds.
func DefaultLimits() Limits {
	return Limits{MaxConnections: 1024, MaxPending: 1024, MaxRequests: 1024, MaxRetries: 3}
}

// Breaker tracks usage against Limits. Requests over MaxRequests wait (as
// pending) for a slot while fewer than MaxPending are already waiting; beyond
// that they are refused at once.
type Breaker struct {
	limits Limits

	conns, retries atomic.Int64
	overflows      [4]atomic.Uint64

	mu       sync.Mutex
	requests int64
	pending  int64
	waiters  []chan struct{}
	release  func() // releaseRequest, bound once rather than per request
}

// New returns a breaker enforcing l.
func New(l Limits) *Breaker {
	b := &Breaker{limits: l}
	b.release = b.releaseRequest
	return b
}

// Limits returns the breaker's caps.
func (b *Breaker) Limits() Limits { return b.limits }

// AcquireRequest takes a request slot, waiting as a pending request if the
// cap is reached and the pending queue has room, until ctx ends or the
// deadline (if not zero) passes. It returns the resource that overflowed,
// or ctx's error (context.DeadlineExceeded past the deadline), when no
// slot was obtained.
func (b *Breaker) AcquireRequest(ctx context.Context, deadline time.Time) (release func(), overflow Resource, err error) {
	b.mu.Lock()
	if b.requests < b.limits.MaxRequests {
		b.requests++
		b.mu.Unlock()
		return b.release, "", nil
	}
	if b.pending >= b.limits.MaxPending {
		b.mu.Unlock()
		r := Pending
		if b.limits.MaxPending == 0 {
			r = Requests // no queue configured: the request cap itself overflowed
		}
		b.count(r)
		return nil, r, nil
	}
	b.pending++
	ch := make(chan struct{})
	b.waiters = append(b.waiters, ch)
	b.mu.Unlock()
	var expired <-chan time.Time
	if !deadline.IsZero() {
		timer := time.NewTimer(time.Until(deadline))
		defer timer.Stop()
		expired = timer.C
	}
	select {
	case <-ch: // releaseRequest handed its slot over to us
		return b.release, "", nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-expired:
		err = context.DeadlineExceeded
	}
	b.mu.Lock()
	for i, w := range b.waiters {
		if w == ch {
			b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
			b.pending--
			b.mu.Unlock()
			return nil, "", err
		}
	}
	b.mu.Unlock()
	// The slot was handed over just as we gave up: pass it on.
	b.releaseRequest()
	return nil, "", err
}

func (b *Breaker) releaseRequest() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.waiters) > 0 {
		ch := b.waiters[0]
		b.waiters = b.waiters[1:]
		b.pending--
		close(ch)
		return
	}
	b.requests--
}

// TryAcquire takes one unit of Connections or Retries without waiting.
func (b *Breaker) TryAcquire(r Resource) (release func(), ok bool) {
	var c *atomic.Int64
	var limit int64
	switch r {
	case Connections:
		c, limit = &b.conns, b.limits.MaxConnections
	case Retries:
		c, limit = &b.retries, b.limits.MaxRetries
	default:
		panic("breaker: TryAcquire supports Connections and Retries, not " + string(r))
	}
	if c.Add(1) > limit {
		c.Add(-1)
		b.count(r)
		return nil, false
	}
	return func() { c.Add(-1) }, true
}

func (b *Breaker) count(r Resource) {
	switch r {
	case Connections:
		b.overflows[0].Add(1)
	case Pending:
		b.overflows[1].Add(1)
	case Requests:
		b.overflows[2].Add(1)
	case Retries:
		b.overflows[3].Add(1)
	}
}

// State is a snapshot for the admin /clusters page.
type State struct {
	Connections, Pending, Requests, Retries int64
	Overflows                               map[Resource]uint64
}

// State returns current usage and overflow counts.
func (b *Breaker) State() State {
	b.mu.Lock()
	req, pend := b.requests, b.pending
	b.mu.Unlock()
	return State{
		Connections: b.conns.Load(), Pending: pend, Requests: req, Retries: b.retries.Load(),
		Overflows: map[Resource]uint64{
			Connections: b.overflows[0].Load(), Pending: b.overflows[1].Load(),
			Requests: b.overflows[2].Load(), Retries: b.overflows[3].Load(),
		},
	}
}
