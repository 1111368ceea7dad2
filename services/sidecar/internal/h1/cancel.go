package h1

import (
	"context"
	"sync"
	"time"
)

// requestContext is the context of the requests a Server connection reads:
// the connection's, cancelled when the client goes away or the connection
// ends. It holds one upstream connection of this package's Transport, the
// one carrying the request in flight, and interrupts its I/O when the
// context ends. A request passed upstream as it arrived is then watched
// for cancellation without the two allocations and the entry in the
// parent's child map that context.AfterFunc costs per request; requests
// with a context of their own (per-try timeouts, mirrors, tracing), and a
// second request in flight on the same context, fall back to AfterFunc.
type requestContext struct {
	context.Context
	mu       sync.Mutex
	upstream *conn // the exchange in flight; nil for none
	ended    bool  // the context ended and the slot was emptied
}

// newRequestContext wraps ctx, which must be cancellable, and interrupts
// the watched exchange when it ends, whatever ends it.
func newRequestContext(ctx context.Context) *requestContext {
	rc := &requestContext{Context: ctx}
	context.AfterFunc(ctx, rc.end)
	return rc
}

func (rc *requestContext) end() {
	rc.mu.Lock()
	c := rc.upstream
	rc.upstream, rc.ended = nil, true
	rc.mu.Unlock()
	if c != nil {
		c.interrupt()
	}
}

// watch puts c in the slot; false if it is taken. When the context has
// ended already, c is interrupted at once.
func (rc *requestContext) watch(c *conn) bool {
	rc.mu.Lock()
	if rc.upstream != nil {
		rc.mu.Unlock()
		return false
	}
	ended := rc.ended
	if !ended {
		rc.upstream = c
	}
	rc.mu.Unlock()
	if ended {
		c.interrupt()
	}
	return true
}

// unwatch empties the slot; false if c was interrupted (its deadline is
// then in the past and it cannot be reused).
func (rc *requestContext) unwatch(c *conn) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.upstream != c {
		return false
	}
	rc.upstream = nil
	return true
}

// cancelWatch interrupts an upstream exchange when its request's context
// ends, through the request context's slot or through context.AfterFunc.
type cancelWatch struct {
	rc       *requestContext
	c        *conn
	stopFunc func() bool
}

func watchCancel(ctx context.Context, c *conn) cancelWatch {
	if rc, ok := ctx.(*requestContext); ok && rc.watch(c) {
		return cancelWatch{rc: rc, c: c}
	}
	return cancelWatch{stopFunc: context.AfterFunc(ctx, c.interrupt)}
}

// stop ends the watch; false if the context ended first and c was (or is
// being) interrupted, as context.AfterFunc's stop reports.
func (w cancelWatch) stop() bool {
	if w.rc != nil {
		return w.rc.unwatch(w.c)
	}
	return w.stopFunc()
}

// interrupt makes the connection's reads and writes fail at once.
func (c *conn) interrupt() { _ = c.nc.SetDeadline(time.Unix(1, 0)) }
