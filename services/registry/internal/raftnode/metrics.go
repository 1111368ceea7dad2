package raftnode

import (
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the node's Raft metrics.
type Metrics struct {
	leaderChanges prometheus.Counter
	isLeader      prometheus.Gauge
	applySeconds  prometheus.Histogram
	applyErrors   prometheus.Counter
}

// NewMetrics registers the Raft metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchyard_registry_raft_leader_changes_total",
			Help: "Leader changes this node observed (including to no leader).",
		}),
		isLeader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchyard_registry_raft_is_leader",
			Help: "1 while this node is the established leader.",
		}),
		applySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "switchyard_registry_raft_apply_seconds",
			Help:    "Time from proposing a write on the leader until it is committed and applied.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
		applyErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchyard_registry_raft_apply_errors_total",
			Help: "Writes Raft failed to commit (leadership lost, timeouts).",
		}),
	}
	reg.MustRegister(m.leaderChanges, m.isLeader, m.applySeconds, m.applyErrors)
	return m
}

// RegisterNodeGauges exposes the node's state and indexes, read at scrape.
func (m *Metrics) RegisterNodeGauges(reg prometheus.Registerer, n *Node) {
	state := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "switchyard_registry_raft_state",
		Help: "1 for this node's current Raft state.",
	}, []string{"state"})
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "switchyard_registry_raft_last_index",
		Help: "Last index in this node's Raft log.",
	}, func() float64 { return float64(n.raft.LastIndex()) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "switchyard_registry_raft_commit_index",
		Help: "Commit index this node knows.",
	}, func() float64 { return float64(n.raft.CommitIndex()) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "switchyard_registry_raft_applied_index",
		Help: "Index this node's state machine has applied.",
	}, func() float64 { return float64(n.raft.AppliedIndex()) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "switchyard_registry_raft_has_leader",
		Help: "1 when this node knows a leader.",
	}, func() float64 {
		if _, id := n.raft.LeaderWithID(); id != "" {
			return 1
		}
		return 0
	}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "switchyard_registry_raft_voters",
		Help: "Voters in the Raft configuration.",
	}, func() float64 {
		cf := n.raft.GetConfiguration()
		if cf.Error() != nil {
			return 0
		}
		v := 0
		for _, s := range cf.Configuration().Servers {
			if s.Suffrage == raft.Voter {
				v++
			}
		}
		return float64(v)
	}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "switchyard_registry_raft_last_contact_seconds",
		Help: "Seconds since this follower last heard from the leader (0 on the leader).",
	}, func() float64 {
		if n.raft.State() == raft.Leader {
			return 0
		}
		lc := n.raft.LastContact()
		if lc.IsZero() {
			return -1
		}
		return time.Since(lc).Seconds()
	}))
	reg.MustRegister(&stateCollector{vec: state, n: n})
}

type stateCollector struct {
	vec *prometheus.GaugeVec
	n   *Node
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) { c.vec.Describe(ch) }

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	cur := c.n.raft.State().String()
	for _, s := range []string{"Follower", "Candidate", "Leader", "Shutdown"} {
		v := 0.0
		if s == cur {
			v = 1
		}
		c.vec.WithLabelValues(s).Set(v)
	}
	c.vec.Collect(ch)
}

func (m *Metrics) leaderChange(string) { m.leaderChanges.Inc() }

func (m *Metrics) setReady(ready bool) {
	if ready {
		m.isLeader.Set(1)
	} else {
		m.isLeader.Set(0)
	}
}

func (m *Metrics) observeApply(d time.Duration, err error) {
	m.applySeconds.Observe(d.Seconds())
	if err != nil {
		m.applyErrors.Inc()
	}
}
