package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/breaker"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/h1"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/lb"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/retry"
)

// proxyError is an answer the sidecar gives itself, with the reason header.
type proxyError struct {
	status int
	reason string
	msg    string
	header map[string][]string
}

func (e *proxyError) Error() string { return e.reason + ": " + e.msg }

// send carries req upstream for decision d: it picks hosts, enforces the
// cluster's circuit breakers, retries per the route's policy within the
// retry budget, applies per-try timeouts and feeds outlier detection. The
// response's body, when closed, ends the attempt that answered.
func (p *Proxy) send(req *http.Request, d *decision) (*http.Response, error) {
	c := d.cluster
	m, cs := p.m, c.series
	if c.noTLS {
		return nil, &proxyError{status: http.StatusServiceUnavailable, reason: "no_identity",
			msg: "cluster " + c.cfg.Name + " requires mTLS but this sidecar has no identity"}
	}
	release, overflow, err := c.breaker.AcquireRequest(req.Context(), d.deadline)
	if overflow != "" {
		m.upstreamOverflow.WithLabelValues(c.cfg.Name, string(overflow)).Inc()
		return nil, &proxyError{status: http.StatusServiceUnavailable, reason: "overflow:" + string(overflow),
			msg: fmt.Sprintf("circuit breaker open for cluster %s: %s reached", c.cfg.Name, overflow)}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return nil, errRouteTimeout
	}
	if err != nil {
		return nil, err
	}
	cs.active.Inc()
	if c.budget != nil {
		c.budget.Request()
	}
	policy := d.route.Action.Retry
	var retrySlot func() // max_retries slot held by the attempt being sent
	for try := 0; ; try++ {
		host := c.pick(d.hash)
		if host == nil {
			if retrySlot != nil {
				retrySlot()
			}
			release()
			cs.active.Dec()
			return nil, &proxyError{status: http.StatusServiceUnavailable, reason: "no_healthy_upstream",
				msg: "no healthy upstream in cluster " + c.cfg.Name}
		}
		// a carries what must be undone when the attempt ends: for the
		// attempt that answers, only once its response body is closed.
		a := &attempt{release: release, active: cs.active, host: host, retrySlot: retrySlot}
		retrySlot = nil
		ctx := req.Context()
		rt := c.roundTripper(req)
		h1t, _ := rt.(*h1.Transport)
		if h1t == nil && !d.deadline.IsZero() {
			// h2 upstream: the route timeout as a context deadline.
			ctx, a.cancel = context.WithDeadline(ctx, d.deadline)
		}
		if policy != nil && policy.PerTryTimeout > 0 {
			routeCancel := a.cancel
			var cancel context.CancelFunc
			ctx, cancel = context.WithCancel(ctx)
			a.cancel = cancel
			if routeCancel != nil {
				a.cancel = func() { cancel(); routeCancel() }
			}
			a.timer = time.AfterFunc(policy.PerTryTimeout, func() { a.expired.Store(true); cancel() })
		}
		// The request is the handler's own, already rewritten for
		// upstream; a retry only needs its own URL (and body when
		// replayed), so a shallow copy does instead of a deep Clone.
		out := req
		if ctx != req.Context() {
			out = req.WithContext(ctx)
		}
		if try == 0 {
			out.URL.Scheme, out.URL.Host = c.scheme(), host.Addr
		} else {
			u := *req.URL
			u.Scheme, u.Host = c.scheme(), host.Addr
			out.URL = &u
		}
		if d.replay {
			out.Body, out.GetBody = http.NoBody, nil
			if body := d.body; body != nil {
				// GetBody lets the transport resend on a connection the
				// upstream closed while idle.
				out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
				out.Body, _ = out.GetBody()
			}
		} else if d.stream != nil {
			out.Body, out.GetBody = d.stream.attempt(), d.stream.getBody
		}
		host.Acquire()
		start := time.Now()
		var resp *http.Response
		if h1t != nil {
			resp, err = h1t.RoundTripUntil(out, d.deadline)
		} else {
			resp, err = rt.RoundTrip(out)
		}
		if a.timer != nil {
			a.timer.Stop()
		}
		cs.duration.Observe(time.Since(start).Seconds())
		expired := a.expired.Load()
		o := classify(resp, err)
		grpcCode, trailersOnly := trailersOnlyStatus(resp)
		if trailersOnly {
			o.GRPCStatus = int(grpcCode)
		}
		if expired {
			o = retry.Outcome{Status: http.StatusGatewayTimeout}
		}
		if err != nil && (req.Context().Err() != nil || past(d.deadline)) {
			// The caller left or the route timeout fired: not the host's fault.
			a.finish(true)
			cs.requests[len(codeClasses)].Inc() // reset
			if req.Context().Err() == nil {
				return nil, errRouteTimeout
			}
			return nil, err
		}
		// A trailers-only gRPC response is HTTP 200 whatever its
		// grpc-status, so, as in Envoy, outlier detection judges it by the
		// HTTP status that stands for: a replica answering UNAVAILABLE
		// counts as a 503.
		judged := o.Status
		if trailersOnly {
			judged = httpStatusForGRPC(grpcCode)
		}
		c.report(host.Addr, judged, o.ConnectFailure || expired)
		cs.request(m, c.cfg.Name, o.Status)
		if policy != nil && try < policy.NumRetries && (d.replay || d.stream != nil) && policy.Retryable(o) {
			slot, ok := p.canRetry(c)
			// A streamed body is taken back from this attempt only now,
			// when a retry will follow: a response relayed instead may
			// still be reading it.
			if ok && !d.replay && !d.stream.reclaim(streamReclaimWait) {
				slot()
				ok = false
			}
			if ok {
				if resp != nil {
					_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
					_ = resp.Body.Close()
				}
				a.finish(false)
				cs.retries.Inc()
				backoff := policy.Backoff(try+1, rand.Float64)
				timesOut := !d.deadline.IsZero() && time.Until(d.deadline) <= backoff
				if timesOut {
					backoff = time.Until(d.deadline)
				}
				if !sleep(req.Context(), backoff) || timesOut {
					slot()
					release()
					cs.active.Dec()
					if err := req.Context().Err(); err != nil {
						return nil, err
					}
					return nil, errRouteTimeout
				}
				retrySlot = slot
				continue
			}
		}
		if err != nil {
			a.finish(true)
			if expired {
				return nil, &proxyError{status: http.StatusGatewayTimeout, reason: "upstream_per_try_timeout", msg: "upstream per-try timeout"}
			}
			if errors.Is(err, errConnOverflow) { // counted by the dialer
				return nil, &proxyError{status: http.StatusServiceUnavailable, reason: "overflow:" + string(breaker.Connections),
					msg: fmt.Sprintf("circuit breaker open for cluster %s: %s reached", c.cfg.Name, breaker.Connections)}
			}
			if o.ConnectFailure {
				return nil, &proxyError{status: http.StatusServiceUnavailable, reason: "upstream_connect_failure",
					msg: "cannot connect to " + host.Addr + ": " + err.Error()}
			}
			return nil, err
		}
		resp.Body = a.wrap(resp.Body)
		return resp, nil
	}
}

// errRouteTimeout is the route timeout passing before the answer is complete.
var errRouteTimeout = &proxyError{status: http.StatusGatewayTimeout, reason: "upstream_timeout", msg: "upstream request timeout"}

// past reports whether deadline is set and has passed.
func past(deadline time.Time) bool { return !deadline.IsZero() && !time.Now().Before(deadline) }

// attempt is the state of one try upstream that must be released when it
// ends: the host's in-flight count, a held retry slot, the per-try timer's
// context and, for the last attempt, the request's breaker slot.
type attempt struct {
	release   func() // breaker request slot
	active    prometheus.Gauge
	host      *lb.Host
	retrySlot func() // nil: none held
	cancel    context.CancelFunc
	timer     *time.Timer
	expired   atomic.Bool
	done      atomic.Bool
	body      body // the response body wrap hands out: one allocation for both
}

// finish ends the attempt; last also gives back the request's slot.
func (a *attempt) finish(last bool) {
	if !a.done.CompareAndSwap(false, true) {
		return
	}
	a.host.Release()
	if a.retrySlot != nil {
		a.retrySlot()
	}
	if a.cancel != nil {
		a.cancel()
	}
	if last {
		a.release()
		a.active.Dec()
	}
}

// wrap makes closing the response body finish the attempt, keeping the
// io.ReadWriteCloser of a 101 Switching Protocols response intact.
func (a *attempt) wrap(b io.ReadCloser) io.ReadCloser {
	if rw, ok := b.(io.ReadWriteCloser); ok {
		return &rwBody{ReadWriteCloser: rw, a: a}
	}
	a.body = body{ReadCloser: b, a: a}
	return &a.body
}

type body struct {
	io.ReadCloser
	a *attempt
}

func (b *body) Close() error {
	err := b.ReadCloser.Close()
	b.a.finish(true)
	return err
}

type rwBody struct {
	io.ReadWriteCloser
	a *attempt
}

func (b *rwBody) Close() error {
	err := b.ReadWriteCloser.Close()
	b.a.finish(true)
	return err
}

// canRetry checks the max_retries breaker and the retry budget; on success
// the caller holds a retry slot until the retry attempt ends.
func (p *Proxy) canRetry(c *cluster) (release func(), ok bool) {
	rel, ok := c.breaker.TryAcquire(breaker.Retries)
	if !ok {
		p.m.upstreamOverflow.WithLabelValues(c.cfg.Name, string(breaker.Retries)).Inc()
		return nil, false
	}
	if c.budget != nil && !c.budget.TryRetry() {
		rel()
		p.m.upstreamOverflow.WithLabelValues(c.cfg.Name, "retry_budget").Inc()
		return nil, false
	}
	return rel, true
}

// streamReclaimWait bounds the wait for a streamed request body to come
// back from an attempt for a retry: a caller that has sent its whole body
// (every unary gRPC call) gives it back at once; one still streaming its
// request is not retried.
const streamReclaimWait = 20 * time.Millisecond

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// classify turns a transport result into a retry/outlier outcome (send
// adds the grpc-status of a trailers-only response).
func classify(resp *http.Response, err error) retry.Outcome {
	if err == nil {
		return retry.Outcome{Status: resp.StatusCode}
	}
	var op *net.OpError
	if errors.Is(err, errConnOverflow) {
		return retry.Outcome{}
	}
	if errors.As(err, &op) && op.Op == "dial" {
		return retry.Outcome{ConnectFailure: true}
	}
	if strings.Contains(err.Error(), "REFUSED_STREAM") {
		return retry.Outcome{Refused: true, Reset: true}
	}
	return retry.Outcome{Reset: true}
}
