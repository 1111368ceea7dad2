package decider

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the decider's Prometheus series. Labels stay low-cardinality:
// domain is a configured domain (or "unknown"), descriptor the matched
// configuration path (never a request's own values).
type Metrics struct {
	decisions      *prometheus.CounterVec
	nearLimit      *prometheus.CounterVec
	backendSeconds prometheus.Histogram
	backendErrors  *prometheus.CounterVec
	failOpen       prometheus.Counter
	failClosed     prometheus.Counter
	cacheHits      prometheus.Counter
	backendUp      prometheus.Gauge

	// children caches the labelled counters: WithLabelValues hashes and
	// validates every label and takes a lock shared by all cores, on every
	// descriptor decided. The label values are bounded by the rules.
	children sync.Map // childKey -> prometheus.Counter
}

type childKey struct {
	vec                        *prometheus.CounterVec
	domain, descriptor, result string
}

// counter returns vec's child for the labels (result is "" for nearLimit).
func (m *Metrics) counter(vec *prometheus.CounterVec, domain, descriptor, result string) prometheus.Counter {
	k := childKey{vec, domain, descriptor, result}
	if c, ok := m.children.Load(k); ok {
		return c.(prometheus.Counter)
	}
	var c prometheus.Counter
	if result == "" {
		c = vec.WithLabelValues(domain, descriptor)
	} else {
		c = vec.WithLabelValues(domain, descriptor, result)
	}
	m.children.Store(k, c)
	return c
}

// NewMetrics registers the decider's series on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_ratelimit_decisions_total",
			Help: "Descriptors decided, by domain, matched descriptor and result (ok, over_limit, shadow_over_limit, unlimited, no_rule, fail_open, fail_closed).",
		}, []string{"domain", "descriptor", "result"}),
		nearLimit: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_ratelimit_near_limit_total",
			Help: "Allowed descriptors that used more than 80% of their limit.",
		}, []string{"domain", "descriptor"}),
		backendSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "switchyard_ratelimit_backend_request_duration_seconds",
			Help:    "Time of one decision round trip to the backend (Redis or memory).",
			Buckets: []float64{.0001, .00025, .0005, .001, .002, .005, .01, .025, .05, .1},
		}),
		backendErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_ratelimit_backend_errors_total",
			Help: "Backend calls that failed (timeout, error) or were skipped because the backend is down (unavailable).",
		}, []string{"reason"}),
		failOpen: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchyard_ratelimit_fail_open_total",
			Help: "Requests allowed without a decision because the backend failed (failure_mode: open).",
		}),
		failClosed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchyard_ratelimit_fail_closed_total",
			Help: "Requests refused without a decision because the backend failed (failure_mode: closed).",
		}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchyard_ratelimit_overlimit_cache_hits_total",
			Help: "Requests refused from the in-process cache of keys known to be over their limit, without a backend call.",
		}),
		backendUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchyard_ratelimit_backend_up",
			Help: "1 while the backend answers, 0 while decisions fall back to the failure mode.",
		}),
	}
	m.backendUp.Set(1)
	for _, reason := range []string{"timeout", "error", "unavailable"} {
		m.backendErrors.WithLabelValues(reason)
	}
	if reg != nil {
		reg.MustRegister(m.decisions, m.nearLimit, m.backendSeconds, m.backendErrors, m.failOpen, m.failClosed, m.cacheHits, m.backendUp)
	}
	return m
}
