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
	"sync"
	"time"

	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/breaker"
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

func asProxyError(err error, pe **proxyError) bool { return errors.As(err, pe) }

// forwarder is the ReverseProxy transport: it picks hosts, enforces the
// cluster's circuit breakers, retries per the route's policy within the
// retry budget, applies per-try timeouts and feeds outlier detection.
type forwarder struct{ p *Proxy }

func (f *forwarder) RoundTrip(req *http.Request) (*http.Response, error) {
	d := decisionFrom(req.Context())
	c := d.cluster
	m := f.p.m
	if c.noTLS {
		return nil, &proxyError{status: http.StatusServiceUnavailable, reason: "no_identity",
			msg: "cluster " + c.cfg.Name + " requires mTLS but this sidecar has no identity"}
	}
	release, overflow, err := c.breaker.AcquireRequest(req.Context())
	if overflow != "" {
		m.upstreamOverflow.WithLabelValues(c.cfg.Name, string(overflow)).Inc()
		return nil, &proxyError{status: http.StatusServiceUnavailable, reason: "overflow:" + string(overflow),
			msg: fmt.Sprintf("circuit breaker open for cluster %s: %s reached", c.cfg.Name, overflow)}
	}
	if err != nil {
		return nil, err
	}
	active := m.upstreamActive.WithLabelValues(c.cfg.Name)
	active.Inc()
	done := func() { release(); active.Dec() }
	if c.budget != nil {
		c.budget.Request()
	}
	policy := d.route.Action.Retry
	var retrySlot func() // max_retries slot held by the attempt being sent
	for attempt := 0; ; attempt++ {
		host := c.pick(d.hash)
		if host == nil {
			if retrySlot != nil {
				retrySlot()
			}
			done()
			return nil, &proxyError{status: http.StatusServiceUnavailable, reason: "no_healthy_upstream",
				msg: "no healthy upstream in cluster " + c.cfg.Name}
		}
		ctx, cancel := context.WithCancel(req.Context())
		var timer *time.Timer
		var perTryExpired bool
		var mu sync.Mutex
		if policy != nil && policy.PerTryTimeout > 0 {
			timer = time.AfterFunc(policy.PerTryTimeout, func() {
				mu.Lock()
				perTryExpired = true
				mu.Unlock()
				cancel()
			})
		}
		out := req.Clone(ctx)
		out.URL.Scheme, out.URL.Host = c.scheme(), host.Addr
		if d.replay {
			out.Body, out.GetBody = http.NoBody, nil
			if d.body != nil {
				out.Body = io.NopCloser(bytes.NewReader(d.body))
			}
		}
		end := host.Begin()
		if retrySlot != nil {
			hostEnd, slot := end, retrySlot
			end = func() { hostEnd(); slot() }
			retrySlot = nil
		}
		start := time.Now()
		resp, err := c.transport.RoundTrip(out)
		if timer != nil {
			timer.Stop()
		}
		m.upstreamDuration.WithLabelValues(c.cfg.Name).Observe(time.Since(start).Seconds())
		mu.Lock()
		expired := perTryExpired
		mu.Unlock()
		o := classify(resp, err)
		if expired {
			o = retry.Outcome{Status: http.StatusGatewayTimeout}
		}
		if err != nil && req.Context().Err() != nil {
			// The caller left or the route timeout fired: not the host's fault.
			end()
			cancel()
			done()
			m.upstreamRequests.WithLabelValues(c.cfg.Name, "reset").Inc()
			return nil, err
		}
		c.report(host.Addr, o.Status, o.ConnectFailure || expired)
		m.upstreamRequests.WithLabelValues(c.cfg.Name, codeClass(o.Status)).Inc()
		if policy != nil && attempt < policy.NumRetries && d.replay && policy.Retryable(o) {
			if slot, ok := f.canRetry(c); ok {
				if resp != nil {
					_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
					_ = resp.Body.Close()
				}
				end()
				cancel()
				m.upstreamRetries.WithLabelValues(c.cfg.Name).Inc()
				if !sleep(req.Context(), policy.Backoff(attempt+1, rand.Float64)) {
					slot()
					done()
					return nil, req.Context().Err()
				}
				retrySlot = slot
				continue
			}
		}
		if err != nil {
			end()
			cancel()
			done()
			if expired {
				return nil, &proxyError{status: http.StatusGatewayTimeout, reason: "upstream_per_try_timeout", msg: "upstream per-try timeout"}
			}
			if o.ConnectFailure {
				return nil, &proxyError{status: http.StatusServiceUnavailable, reason: "upstream_connect_failure",
					msg: "cannot connect to " + host.Addr + ": " + err.Error()}
			}
			return nil, err
		}
		resp.Body = wrapBody(resp.Body, func() { end(); cancel(); done() })
		return resp, nil
	}
}

// canRetry checks the max_retries breaker and the retry budget; on success
// the caller holds a retry slot until the retry attempt ends.
func (f *forwarder) canRetry(c *cluster) (release func(), ok bool) {
	rel, ok := c.breaker.TryAcquire(breaker.Retries)
	if !ok {
		f.p.m.upstreamOverflow.WithLabelValues(c.cfg.Name, string(breaker.Retries)).Inc()
		return nil, false
	}
	if c.budget != nil && !c.budget.TryRetry() {
		rel()
		f.p.m.upstreamOverflow.WithLabelValues(c.cfg.Name, "retry_budget").Inc()
		return nil, false
	}
	return rel, true
}

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

// classify turns a transport result into a retry/outlier outcome.
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

// wrapBody calls done once when the body is closed, keeping the
// io.ReadWriteCloser of a 101 Switching Protocols response intact.
func wrapBody(b io.ReadCloser, done func()) io.ReadCloser {
	var once sync.Once
	fin := func() { once.Do(done) }
	if rw, ok := b.(io.ReadWriteCloser); ok {
		return &rwBody{ReadWriteCloser: rw, fin: fin}
	}
	return &body{ReadCloser: b, fin: fin}
}

type body struct {
	io.ReadCloser
	fin func()
}

func (b *body) Close() error {
	err := b.ReadCloser.Close()
	b.fin()
	return err
}

type rwBody struct {
	io.ReadWriteCloser
	fin func()
}

func (b *rwBody) Close() error {
	err := b.ReadWriteCloser.Close()
	b.fin()
	return err
}
