package xds

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the control plane's xDS metrics.
type Metrics struct {
	ConnectedProxies prometheus.Gauge
	Pushes           *prometheus.CounterVec
	PushLatency      prometheus.Histogram
	NACKs            *prometheus.CounterVec
	BuildSeconds     prometheus.Histogram
	Snapshots        prometheus.Counter
	ProxiesBehind    prometheus.Gauge
}

// NewMetrics registers the metrics on reg (nil: unregistered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		ConnectedProxies: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchyard_controlplane_connected_proxies",
			Help: "Proxies with at least one open xDS stream.",
		}),
		Pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_controlplane_pushes_total",
			Help: "xDS responses sent, by resource type (cds, eds, lds, rds).",
		}, []string{"type"}),
		PushLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "switchyard_controlplane_push_latency_seconds",
			Help:    "Time from a registry change reaching the control plane to a proxy ACKing the config built from it.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		NACKs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_controlplane_nacks_total",
			Help: "xDS responses rejected by proxies, by resource type.",
		}, []string{"type"}),
		BuildSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "switchyard_controlplane_snapshot_build_seconds",
			Help:    "Time to translate the catalog and documents and set every proxy's snapshot.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
		Snapshots: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchyard_controlplane_snapshot_builds_total",
			Help: "Translations of the whole catalog (one per debounced burst of changes).",
		}),
		ProxiesBehind: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchyard_controlplane_proxies_behind",
			Help: "Connected proxies that have not ACKed the current config of some type for over a minute.",
		}),
	}
	// Every type's series exists from the start, so rate() and alerts see
	// zeros rather than nothing.
	for _, t := range []string{"lds", "rds", "cds", "eds"} {
		m.Pushes.WithLabelValues(t)
		m.NACKs.WithLabelValues(t)
	}
	if reg != nil {
		reg.MustRegister(m.ConnectedProxies, m.Pushes, m.PushLatency, m.NACKs, m.BuildSeconds, m.Snapshots, m.ProxiesBehind)
	}
	return m
}
