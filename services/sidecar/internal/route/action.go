package route

import (
	"net"
	"net/http"
	"time"

	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/fault"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/lb"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/retry"
)

// Route is one match → action rule.
type Route struct {
	Name   string
	Match  Match
	Action Action
	// Per-route filter overrides (typed_per_filter_config); nil means the
	// listener's filter config applies.
	Fault *fault.Config
	// Header edits; nil when there are none.
	RequestHeaders, ResponseHeaders *HeaderEdits
}

// HeaderValue is one header line.
type HeaderValue struct{ Key, Value string }

// HeaderEdits add, overwrite and remove headers.
type HeaderEdits struct {
	Set, Add []HeaderValue
	Remove   []string
}

// Apply edits h: removals first, then overwrites, then appends.
func (e *HeaderEdits) Apply(h http.Header) {
	if e == nil {
		return
	}
	for _, k := range e.Remove {
		h.Del(k)
	}
	for _, v := range e.Set {
		h.Set(v.Key, v.Value)
	}
	for _, v := range e.Add {
		h.Add(v.Key, v.Value)
	}
}

// WeightedCluster is one backend of a traffic split.
type WeightedCluster struct {
	Name   string
	Weight uint32
}

// Mirror copies a share of requests to another cluster.
type Mirror struct {
	Cluster    string
	PerMillion uint32
}

// Action is what to do with a matched request.
type Action struct {
	Clusters      []WeightedCluster // one entry for a plain cluster route
	Timeout       time.Duration     // 0: none
	Retry         *retry.Policy
	HashPolicies  []lb.HashPolicy
	Mirrors       []Mirror
	PrefixRewrite string
	RateLimits    []RateLimit
}

// PickCluster chooses a cluster by weight; x is a uniform random number.
func (a *Action) PickCluster(x uint64) string {
	if len(a.Clusters) == 1 {
		return a.Clusters[0].Name
	}
	var total uint64
	for _, c := range a.Clusters {
		total += uint64(c.Weight)
	}
	if total == 0 {
		return a.Clusters[0].Name
	}
	x %= total
	for _, c := range a.Clusters {
		if x < uint64(c.Weight) {
			return c.Name
		}
		x -= uint64(c.Weight)
	}
	return a.Clusters[len(a.Clusters)-1].Name
}

// RateLimit is one Envoy route rate_limits entry: its actions build one
// descriptor for the global rate limit service; if any action cannot produce
// its entry, the descriptor is not sent (Envoy's rule).
type RateLimit struct {
	Actions []RateLimitAction
}

// RateLimitAction produces one descriptor entry; exactly one field group is set.
type RateLimitAction struct {
	// request_headers
	Header, HeaderKey string
	// remote_address (key "remote_address")
	RemoteAddress bool
	// generic_key
	GenericKey, GenericValue string
	// destination_cluster (key "destination_cluster")
	DestinationCluster bool
}

// Entry is one descriptor key/value.
type Entry struct{ Key, Value string }

// Descriptor builds rl's descriptor for r routed to cluster; ok is false when
// an action had nothing to contribute.
func (rl *RateLimit) Descriptor(r *http.Request, cluster string) (entries []Entry, ok bool) {
	for _, a := range rl.Actions {
		switch {
		case a.Header != "":
			v := r.Header.Get(a.Header)
			if v == "" {
				return nil, false
			}
			entries = append(entries, Entry{a.HeaderKey, v})
		case a.RemoteAddress:
			host, _, err := net.SplitHostPort(r.RemoteAddr)
			if err != nil {
				return nil, false
			}
			entries = append(entries, Entry{"remote_address", host})
		case a.GenericValue != "":
			k := a.GenericKey
			if k == "" {
				k = "generic_key"
			}
			entries = append(entries, Entry{k, a.GenericValue})
		case a.DestinationCluster:
			entries = append(entries, Entry{"destination_cluster", cluster})
		}
	}
	return entries, len(entries) > 0
}
