// Package decider turns a rate-limit request (a domain and its descriptors)
// into a decision: it matches the descriptors to the configured limits,
// answers from the cache of keys known to be over their limit when it can,
// otherwise asks the store under a deadline, and falls back to the
// configured failure mode (open or closed) when the store fails or is down.
// It also computes the per-descriptor statuses and the X-RateLimit-* and
// Retry-After headers clients expect.
package decider

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/limits"
	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/overlimit"
	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/quota"
	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/store"
)

// ErrInvalidRequest marks requests the decider refuses to judge.
var ErrInvalidRequest = errors.New("invalid rate limit request")

// Code is the answer for a request or one descriptor.
type Code int

const (
	// OK lets the request through.
	OK Code = iota + 1
	// OverLimit refuses it.
	OverLimit
)

func (c Code) String() string {
	if c == OverLimit {
		return "over_limit"
	}
	return "ok"
}

// Source says where a decision came from.
type Source string

// Sources of decisions.
const (
	FromStore      Source = "store"
	FromCache      Source = "cache"
	FromFailOpen   Source = "fail_open"
	FromFailClosed Source = "fail_closed"
	FromNoLimits   Source = "no_limits"
)

// Descriptor is one descriptor of a request.
type Descriptor struct {
	Entries []limits.Entry
	// Hits overrides the request's hits for this descriptor when > 0.
	Hits uint32
	// Override, when set, replaces the configured limits (as Envoy's
	// per-descriptor limit override does) with one fixed-window limit.
	Override *limits.Limit
}

// Request asks for one decision.
type Request struct {
	Domain      string
	Descriptors []Descriptor
	// Hits consumed by each descriptor; 0 means 1.
	Hits uint32
	// DryRun decides without consuming anything or recording metrics.
	DryRun bool
}

// Status is the answer for one descriptor.
type Status struct {
	Code Code
	// Rule is the matched configuration path, "" when none matched.
	Rule      string
	Unlimited bool
	Shadow    bool
	// Limit is the most restrictive limit of the rule, nil when none.
	Limit *limits.Limit
	// Remaining is the hits left under Limit, -1 when not known (a
	// descriptor not asked about because another one was known over).
	Remaining  int64
	Reset      time.Duration
	RetryAfter time.Duration
}

// Header is one response header to add.
type Header struct{ Name, Value string }

// Response is the decision on a request.
type Response struct {
	Code     Code
	Statuses []Status
	Headers  []Header
	Source   Source
}

// Config tunes a Decider.
type Config struct {
	// Timeout bounds one store call.
	Timeout time.Duration
	// FailOpen allows requests when the store fails; otherwise they are
	// refused.
	FailOpen bool
	// FailuresToDown is how many consecutive store errors (timeouts do not
	// count) mark the store down; while down, requests take the failure
	// mode at once and a probe looks for the store's return.
	FailuresToDown int
	// ProbeInterval is how often a down store is pinged.
	ProbeInterval time.Duration
	// NearLimitRatio is the fraction of a limit above which an allowed
	// descriptor counts as near its limit.
	NearLimitRatio float64
	Clock          func() time.Time
	Log            *slog.Logger
	Metrics        *Metrics
}

// Decider makes decisions. It is safe for concurrent use.
type Decider struct {
	cfg   Config
	rules atomic.Pointer[limits.Config]
	store store.Store
	cache *overlimit.Cache
	log   *slog.Logger
	m     *Metrics

	failures atomic.Int32
	down     atomic.Bool
	lastLog  atomic.Int64 // unix ns of the last failure logged
	wake     chan struct{}
}

// New returns a Decider over st with the given rules.
func New(cfg Config, st store.Store, rules *limits.Config) *Decider {
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.FailuresToDown <= 0 {
		cfg.FailuresToDown = 3
	}
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = 250 * time.Millisecond
	}
	if cfg.NearLimitRatio <= 0 {
		cfg.NearLimitRatio = 0.8
	}
	d := &Decider{cfg: cfg, store: st, cache: overlimit.New(), log: cfg.Log, m: cfg.Metrics, wake: make(chan struct{}, 1)}
	d.rules.Store(rules)
	return d
}

// SetRules switches to new rules and forgets remembered refusals, which
// may not hold under the new limits.
func (d *Decider) SetRules(r *limits.Config) {
	d.rules.Store(r)
	d.cache.Clear()
}

// Rules returns the rules in force.
func (d *Decider) Rules() *limits.Config { return d.rules.Load() }

// check ties a quota check to the descriptor it came from.
type check struct {
	desc int
	c    quota.Check
}

// Decide answers req. It fails only for an invalid request; a store failure
// is answered in the failure mode.
func (d *Decider) Decide(ctx context.Context, req Request) (Response, error) {
	if req.Domain == "" {
		return Response{}, fmt.Errorf("%w: domain is empty", ErrInvalidRequest)
	}
	if len(req.Descriptors) == 0 {
		return Response{}, fmt.Errorf("%w: no descriptors", ErrInvalidRequest)
	}
	rules := d.rules.Load()
	now := d.cfg.Clock()
	nowUs := now.UnixMicro()
	domainLabel := req.Domain
	if !rules.HasDomain(req.Domain) {
		domainLabel = "unknown"
	}

	resp := Response{Code: OK, Statuses: make([]Status, len(req.Descriptors)), Source: FromNoLimits}
	var checks []check
	for i, desc := range req.Descriptors {
		if len(desc.Entries) == 0 {
			return Response{}, fmt.Errorf("%w: descriptors[%d] has no entries", ErrInvalidRequest, i)
		}
		for j, e := range desc.Entries {
			if e.Key == "" {
				return Response{}, fmt.Errorf("%w: descriptors[%d].entries[%d].key is empty", ErrInvalidRequest, i, j)
			}
		}
		rule, ok := rules.Match(req.Domain, desc.Entries)
		if desc.Override != nil {
			rule = limits.Rule{Domain: req.Domain, Path: "override", Limits: []limits.Limit{*desc.Override}, Shadow: ok && rule.Shadow}
			ok = true
		}
		st := &resp.Statuses[i]
		st.Code, st.Remaining = OK, -1
		if !ok {
			continue
		}
		st.Rule, st.Unlimited, st.Shadow = rule.Path, rule.Unlimited, rule.Shadow
		hits := req.Hits
		if desc.Hits > 0 {
			hits = desc.Hits
		}
		for j, l := range rule.Limits {
			k := j
			if desc.Override != nil {
				k = -1 // an override never shares state with configured limits
			}
			checks = append(checks, check{desc: i, c: quota.Check{
				Key:    quota.KeyFor(req.Domain, desc.Entries, k, l, now),
				Limit:  l,
				Hits:   max(hits, 1),
				Shadow: rule.Shadow,
			}})
		}
		if len(rule.Limits) > 0 {
			st.Limit = &rule.Limits[0]
		}
	}

	if len(checks) > 0 {
		d.decideChecks(ctx, req, now, nowUs, checks, &resp)
	}
	resp.Headers = headers(resp)
	if !req.DryRun {
		d.record(domainLabel, req, resp)
	}
	return resp, nil
}

func (d *Decider) decideChecks(ctx context.Context, req Request, now time.Time, nowUs int64, checks []check, resp *Response) {
	// A key known to be over its limit refuses the request without the
	// store: nothing would be consumed anyway.
	known := false
	for _, ch := range checks {
		if ch.c.Shadow {
			continue
		}
		if until, ok := d.cache.Until(ch.c.Key, nowUs); ok {
			known = true
			st := &resp.Statuses[ch.desc]
			retry := time.Duration(until-nowUs) * time.Microsecond
			if st.Code != OverLimit || retry > st.RetryAfter {
				l := ch.c.Limit
				st.Code, st.Limit, st.Remaining, st.Reset, st.RetryAfter = OverLimit, &l, 0, retry, retry
			}
		}
	}
	if known {
		resp.Code, resp.Source = OverLimit, FromCache
		return
	}

	qs := make([]quota.Check, len(checks))
	for i, ch := range checks {
		qs[i] = ch.c
	}
	res, err := d.callStore(ctx, now, qs, !req.DryRun)
	if err != nil {
		if d.cfg.FailOpen {
			resp.Source = FromFailOpen
		} else {
			resp.Code, resp.Source = OverLimit, FromFailClosed
			for i := range resp.Statuses {
				if resp.Statuses[i].Limit != nil && !resp.Statuses[i].Shadow {
					resp.Statuses[i].Code = OverLimit
				}
			}
		}
		return
	}
	resp.Source = FromStore
	if !res.Allowed {
		resp.Code = OverLimit
	}
	first := make([]bool, len(resp.Statuses))
	for i, ch := range checks {
		o := res.Outcomes[i]
		if !req.DryRun && !ch.c.Shadow && o.Remaining == 0 && o.RetryAfter > 0 {
			d.cache.Add(ch.c.Key, nowUs+o.RetryAfter, nowUs)
		}
		st := &resp.Statuses[ch.desc]
		if !first[ch.desc] || moreRestrictive(o, st, ch.c.Shadow) {
			first[ch.desc] = true
			l := ch.c.Limit
			st.Limit, st.Remaining = &l, o.Remaining
			st.Reset = time.Duration(o.Reset) * time.Microsecond
			st.RetryAfter = time.Duration(o.RetryAfter) * time.Microsecond
			if o.Over && !ch.c.Shadow {
				st.Code = OverLimit
			}
		}
	}
}

// moreRestrictive reports whether outcome o should describe the descriptor
// instead of what st holds: an over limit beats one with room, a later
// retry beats an earlier one, and fewer remaining hits beat more.
func moreRestrictive(o quota.Outcome, st *Status, shadow bool) bool {
	over := o.Over && !shadow
	if over != (st.Code == OverLimit) {
		return over
	}
	if over {
		return time.Duration(o.RetryAfter)*time.Microsecond > st.RetryAfter
	}
	return o.Remaining < st.Remaining
}

// deadlineStore is a store that bounds a decision by a deadline itself
// (store.Redis does, with a timer reused across decisions). A derived
// context per call costs a timer and a registration with the gRPC
// stream's context: several percent of the CPU of a whole decision.
type deadlineStore interface {
	DecideBy(ctx context.Context, deadline, now time.Time, checks []quota.Check, commit bool) (store.Result, error)
}

var _ deadlineStore = (*store.Redis)(nil)

func (d *Decider) callStore(ctx context.Context, now time.Time, checks []quota.Check, commit bool) (store.Result, error) {
	if d.down.Load() {
		d.m.backendErrors.WithLabelValues("unavailable").Inc()
		return store.Result{}, errors.New("backend is down")
	}
	start := time.Now()
	var res store.Result
	var err error
	if ds, ok := d.store.(deadlineStore); ok {
		res, err = ds.DecideBy(ctx, start.Add(d.cfg.Timeout), now, checks, commit)
	} else {
		cctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
		res, err = d.store.Decide(cctx, now, checks, commit)
		cancel()
	}
	d.m.backendSeconds.Observe(time.Since(start).Seconds())
	if err == nil {
		d.failures.Store(0)
		return res, nil
	}
	// A slow answer says nothing about whether the store is there: the
	// deadline already bounds it. Only errors (refused, reset, protocol)
	// count towards marking the store down.
	var ne net.Error
	timeout := errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil || errors.As(err, &ne) && ne.Timeout()
	reason := "error"
	if timeout {
		reason = "timeout"
	}
	d.m.backendErrors.WithLabelValues(reason).Inc()
	if now := time.Now().UnixNano(); now-d.lastLog.Load() > int64(time.Second) {
		d.lastLog.Store(now)
		d.log.Warn("rate limit backend call failed; answering in the failure mode", "reason", reason, "fail_open", d.cfg.FailOpen, "err", err)
	}
	if timeout {
		return store.Result{}, err
	}
	if n := d.failures.Add(1); int(n) >= d.cfg.FailuresToDown && d.down.CompareAndSwap(false, true) {
		d.m.backendUp.Set(0)
		mode := "closed: refusing limited requests"
		if d.cfg.FailOpen {
			mode = "open: allowing requests"
		}
		d.log.Error("rate limit backend down; failing "+mode, "consecutive_failures", n, "err", err)
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
	return store.Result{}, err
}

// Run probes the store while it is down and marks it up again when it
// answers, until ctx ends.
func (d *Decider) Run(ctx context.Context) error {
	t := time.NewTicker(d.cfg.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-d.wake:
		case <-t.C:
		}
		if !d.down.Load() {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, max(d.cfg.Timeout, 100*time.Millisecond))
		err := d.store.Ping(pctx)
		cancel()
		if err == nil {
			d.failures.Store(0)
			d.down.Store(false)
			d.m.backendUp.Set(1)
			d.log.Info("rate limit backend is back; deciding from it again")
		}
	}
}

// Healthy reports an error while the store is down, for readiness.
func (d *Decider) Healthy(context.Context) error {
	if d.down.Load() {
		return errors.New("rate limit backend is down")
	}
	return nil
}

func (d *Decider) record(domain string, req Request, resp Response) {
	switch resp.Source {
	case FromCache:
		d.m.cacheHits.Inc()
	case FromFailOpen:
		d.m.failOpen.Inc()
	case FromFailClosed:
		d.m.failClosed.Inc()
	}
	for _, st := range resp.Statuses {
		rule := st.Rule
		result := "ok"
		switch {
		case rule == "":
			rule, result = "none", "no_rule"
		case st.Unlimited:
			result = "unlimited"
		case resp.Source == FromFailOpen:
			result = "fail_open"
		case resp.Source == FromFailClosed:
			result = "fail_closed"
		case st.Code == OverLimit:
			result = "over_limit"
		case st.Shadow && st.Remaining == 0 && st.RetryAfter > 0:
			result = "shadow_over_limit"
		case st.Limit != nil && st.Remaining >= 0 && float64(int64(st.Limit.RequestsPerUnit)-st.Remaining) > d.cfg.NearLimitRatio*float64(st.Limit.RequestsPerUnit):
			d.m.counter(d.m.nearLimit, domain, rule, "").Inc()
		}
		d.m.counter(d.m.decisions, domain, rule, result).Inc()
	}
}

// headers picks the most restrictive descriptor status and describes it the
// way clients expect: X-RateLimit-Limit, -Remaining, -Reset (seconds), and
// Retry-After (seconds) on a refusal.
func headers(resp Response) []Header {
	var pick *Status
	for i := range resp.Statuses {
		st := &resp.Statuses[i]
		if st.Limit == nil || st.Shadow || st.Remaining < 0 {
			continue
		}
		if pick == nil || (st.Code == OverLimit) != (pick.Code == OverLimit) && st.Code == OverLimit ||
			st.Code == pick.Code && (st.Code == OverLimit && st.RetryAfter > pick.RetryAfter || st.Code == OK && st.Remaining < pick.Remaining) {
			pick = st
		}
	}
	if pick == nil {
		return nil
	}
	h := []Header{
		{"X-RateLimit-Limit", strconv.FormatUint(uint64(pick.Limit.RequestsPerUnit), 10)},
		{"X-RateLimit-Remaining", strconv.FormatInt(pick.Remaining, 10)},
		{"X-RateLimit-Reset", strconv.FormatInt(ceilSeconds(pick.Reset), 10)},
	}
	if pick.Code == OverLimit {
		h = append(h, Header{"Retry-After", strconv.FormatInt(max(ceilSeconds(pick.RetryAfter), 1), 10)})
	}
	return h
}

func ceilSeconds(d time.Duration) int64 {
	return int64(math.Ceil(d.Seconds()))
}
