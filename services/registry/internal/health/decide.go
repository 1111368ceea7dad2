// Package health decides instances' health on the leader: TTL heartbeats,
// active HTTP/TCP/gRPC probes with consecutive-result thresholds, and the
// reaping of instances critical for too long. Every decision becomes a Raft
// command, so all nodes agree on every transition.
//
// The decisions (this file) are pure functions of the catalog, the
// heartbeat times and the clock; the runner and probers do the I/O.
package health

import (
	"fmt"
	"time"

	"github.com/switchyard-mesh/switchyard/services/registry/internal/catalog"
)

// Heartbeats remembers when each TTL instance last checked in. It lives on
// the leader only and is not replicated: a new leader gives every instance
// a full TTL from the moment it took over (as Consul does with sessions),
// so an election never marks healthy instances critical.
type Heartbeats struct {
	last map[catalog.Key]time.Time
}

// NewHeartbeats returns an empty record.
func NewHeartbeats() *Heartbeats { return &Heartbeats{last: map[catalog.Key]time.Time{}} }

// Beat records a heartbeat.
func (h *Heartbeats) Beat(k catalog.Key, now time.Time) { h.last[k] = now }

// Reset forgets every heartbeat; called when leadership starts.
func (h *Heartbeats) Reset() { clear(h.last) }

// Decide returns the commands the catalog needs at now: TTL instances whose
// heartbeat is overdue become critical, and instances critical for longer
// than their DeregisterCriticalAfter are removed. Commands are guarded by
// the instance's ModifyIndex, so a registration or heartbeat that lands
// first wins. Instances never seen get now as their first heartbeat.
func (h *Heartbeats) Decide(now time.Time, instances []*catalog.Instance) []catalog.Command {
	var out []catalog.Command
	seen := make(map[catalog.Key]bool, len(instances))
	for _, in := range instances {
		k := in.Key()
		seen[k] = true
		if in.Health == catalog.HealthCritical && in.Check.DeregisterCriticalAfter > 0 &&
			now.Sub(in.HealthChangedAt) > in.Check.DeregisterCriticalAfter {
			out = append(out, catalog.Deregister{Service: in.Service, ID: in.ID, IfModifyIndex: in.ModifyIndex})
			continue
		}
		if in.Check.Type != catalog.CheckTTL {
			continue
		}
		last, ok := h.last[k]
		if !ok {
			h.last[k] = now
			continue
		}
		if gap := now.Sub(last); gap > in.Check.TTL && in.Health != catalog.HealthCritical {
			out = append(out, catalog.SetHealth{
				Service: in.Service, ID: in.ID, Health: catalog.HealthCritical, At: now, IfModifyIndex: in.ModifyIndex,
				Output: fmt.Sprintf("TTL %s expired: no heartbeat for %s", in.Check.TTL, gap.Round(time.Millisecond)),
			})
		}
	}
	for k := range h.last {
		if !seen[k] {
			delete(h.last, k)
		}
	}
	return out
}

// Streak counts consecutive probe results of one instance, so that a single
// failed probe does not flap a passing instance (FailuresBeforeCritical)
// and a single success does not revive a critical one
// (SuccessesBeforePassing).
type Streak struct {
	failures, successes uint32
}

// Observe records one probe result and returns the health the instance
// should move to, and whether that is a change from cur.
func (s *Streak) Observe(ok bool, cur catalog.Health, c catalog.Check) (catalog.Health, bool) {
	if ok {
		s.successes++
		s.failures = 0
		if cur != catalog.HealthPassing && s.successes >= max(1, c.SuccessesBeforePassing) {
			return catalog.HealthPassing, true
		}
		return cur, false
	}
	s.failures++
	s.successes = 0
	if cur != catalog.HealthCritical && s.failures >= max(1, c.FailuresBeforeCritical) {
		return catalog.HealthCritical, true
	}
	return cur, false
}
