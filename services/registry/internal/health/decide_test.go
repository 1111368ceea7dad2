package health

import (
	"testing"
	"time"

	"github.com/switchyard-mesh/switchyard/services/registry/internal/catalog"
)

var t0 = time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)

func ttlInstance(id string, h catalog.Health, changed time.Time, deregAfter time.Duration) *catalog.Instance {
	return &catalog.Instance{
		Service: "orders", ID: id, Health: h, HealthChangedAt: changed, ModifyIndex: 7,
		Check: catalog.Check{Type: catalog.CheckTTL, TTL: time.Second, DeregisterCriticalAfter: deregAfter},
	}
}

func TestHeartbeatsDecide(t *testing.T) {
	tests := []struct {
		name  string
		beat  time.Duration // last heartbeat before now; <0: never seen
		in    *catalog.Instance
		now   time.Duration
		wantT string // "", "critical", "deregister"
	}{
		{"fresh heartbeat", 500 * time.Millisecond, ttlInstance("a", catalog.HealthPassing, t0, 0), 0, ""},
		{"ttl expired", 1500 * time.Millisecond, ttlInstance("a", catalog.HealthPassing, t0, 0), 0, "critical"},
		{"already critical", 5 * time.Second, ttlInstance("a", catalog.HealthCritical, t0.Add(-time.Second), 0), 0, ""},
		{"never seen gets a grace ttl", -1, ttlInstance("a", catalog.HealthPassing, t0, 0), 0, ""},
		{"critical past deregister_critical_after", 5 * time.Second, ttlInstance("a", catalog.HealthCritical, t0.Add(-3*time.Second), 2*time.Second), 0, "deregister"},
		{"critical within deregister_critical_after", 5 * time.Second, ttlInstance("a", catalog.HealthCritical, t0.Add(-time.Second), 2*time.Second), 0, ""},
		{"non-ttl critical reaped too", -1, &catalog.Instance{Service: "orders", ID: "b", Health: catalog.HealthCritical, HealthChangedAt: t0.Add(-time.Minute), Check: catalog.Check{Type: catalog.CheckHTTP, DeregisterCriticalAfter: time.Second}}, 0, "deregister"},
		{"non-ttl passing ignored", -1, &catalog.Instance{Service: "orders", ID: "b", Health: catalog.HealthPassing, Check: catalog.Check{Type: catalog.CheckHTTP}}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := NewHeartbeats()
			if tt.beat >= 0 {
				h.Beat(tt.in.Key(), t0.Add(-tt.beat))
			}
			cmds := h.Decide(t0.Add(tt.now), []*catalog.Instance{tt.in})
			got := ""
			if len(cmds) == 1 {
				switch c := cmds[0].(type) {
				case catalog.SetHealth:
					if c.Health == catalog.HealthCritical && c.IfModifyIndex == tt.in.ModifyIndex {
						got = "critical"
					}
				case catalog.Deregister:
					if c.IfModifyIndex == tt.in.ModifyIndex {
						got = "deregister"
					}
				}
			} else if len(cmds) > 1 {
				t.Fatalf("%d commands", len(cmds))
			}
			if got != tt.wantT {
				t.Fatalf("got %q (%+v), want %q", got, cmds, tt.wantT)
			}
		})
	}
}

func TestHeartbeatsForgetRemovedInstances(t *testing.T) {
	h := NewHeartbeats()
	in := ttlInstance("a", catalog.HealthPassing, t0, 0)
	h.Beat(in.Key(), t0.Add(-10*time.Second))
	h.Decide(t0, nil) // instance gone
	if cmds := h.Decide(t0, []*catalog.Instance{in}); len(cmds) != 0 {
		t.Fatalf("a re-registered instance must start with a fresh grace period, got %+v", cmds)
	}
}

func TestStreakThresholds(t *testing.T) {
	check := catalog.Check{FailuresBeforeCritical: 3, SuccessesBeforePassing: 2}
	seq := []struct {
		ok   bool
		want catalog.Health
		chg  bool
	}{
		{false, catalog.HealthPassing, false},
		{false, catalog.HealthPassing, false},
		{true, catalog.HealthPassing, false}, // a success resets the failures: a blip does not flap
		{false, catalog.HealthPassing, false},
		{false, catalog.HealthPassing, false},
		{false, catalog.HealthCritical, true},
		{false, catalog.HealthCritical, false},
		{true, catalog.HealthCritical, false},
		{true, catalog.HealthPassing, true},
	}
	var s Streak
	cur := catalog.HealthPassing
	for i, st := range seq {
		next, changed := s.Observe(st.ok, cur, check)
		if next != st.want || changed != st.chg {
			t.Fatalf("step %d: got %v/%v, want %v/%v", i, next, changed, st.want, st.chg)
		}
		cur = next
	}
}
