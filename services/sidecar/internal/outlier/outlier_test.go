package outlier

import (
	"fmt"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func setup(cfg Config, n int) (*Detector, *clock, []string) {
	c := &clock{t: time.Unix(0, 0)}
	d := New(cfg, c.now)
	var addrs []string
	for i := range n {
		addrs = append(addrs, fmt.Sprintf("h%d", i))
	}
	d.SetHosts(addrs)
	return d, c, addrs
}

func TestConsecutive(t *testing.T) {
	tests := []struct {
		name      string
		cfg       Config
		results   []Result
		wantEject bool
		reason    Reason
	}{
		{"five 500s", Config{Consecutive5xx: 5, MaxEjectionPercent: 100}, rep(Result{Status: 500}, 5), true, Consecutive5xx},
		{"four 500s", Config{Consecutive5xx: 5, MaxEjectionPercent: 100}, rep(Result{Status: 500}, 4), false, ""},
		{"success resets", Config{Consecutive5xx: 3, MaxEjectionPercent: 100}, []Result{{Status: 500}, {Status: 500}, {Status: 200}, {Status: 500}, {Status: 500}}, false, ""},
		{"gateway errors", Config{ConsecutiveGatewayFailure: 2, MaxEjectionPercent: 100}, []Result{{ConnectFailure: true}, {Status: 503}}, true, ConsecutiveGateway},
		{"500 breaks gateway streak", Config{ConsecutiveGatewayFailure: 2, MaxEjectionPercent: 100}, []Result{{Status: 502}, {Status: 500}, {Status: 502}}, false, ""},
		{"disabled", Config{MaxEjectionPercent: 100}, rep(Result{Status: 500}, 50), false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, _, a := setup(tt.cfg, 3)
			for _, r := range tt.results {
				d.Report(a[0], r)
			}
			if got := d.Ejected(a[0]); got != tt.wantEject {
				t.Fatalf("ejected = %v, want %v", got, tt.wantEject)
			}
			if d.State(a[0]).Reason != tt.reason {
				t.Fatalf("reason %q want %q", d.State(a[0]).Reason, tt.reason)
			}
		})
	}
}

func rep(r Result, n int) []Result {
	out := make([]Result, n)
	for i := range out {
		out[i] = r
	}
	return out
}

func TestGrowingEjectionTime(t *testing.T) {
	cfg := Config{Consecutive5xx: 1, BaseEjectionTime: 30 * time.Second, MaxEjectionTime: 75 * time.Second, MaxEjectionPercent: 100}
	d, c, a := setup(cfg, 2)
	for i, want := range []time.Duration{30 * time.Second, 60 * time.Second, 75 * time.Second} {
		if !d.Report(a[0], Result{Status: 500}) {
			t.Fatalf("ejection %d did not happen", i+1)
		}
		c.t = c.t.Add(want - time.Second)
		if d.Tick(); !d.Ejected(a[0]) {
			t.Fatalf("ejection %d ended before %v", i+1, want)
		}
		c.t = c.t.Add(time.Second)
		if d.Tick(); d.Ejected(a[0]) {
			t.Fatalf("ejection %d still on after %v", i+1, want)
		}
	}
	// Healthy intervals decay the multiplier.
	for range 3 {
		d.Tick()
	}
	if got := d.State(a[0]).Ejections; got != 0 {
		t.Fatalf("multiplier %d after healthy intervals, want 0", got)
	}
}

func TestMaxEjectionPercent(t *testing.T) {
	cfg := Config{Consecutive5xx: 1, BaseEjectionTime: time.Minute, MaxEjectionPercent: 20}
	d, _, a := setup(cfg, 10)
	ejected := 0
	for _, h := range a {
		if d.Report(h, Result{Status: 500}) {
			ejected++
		}
	}
	if ejected != 2 {
		t.Fatalf("ejected %d of 10 at 20%%, want 2", ejected)
	}
	// At least one host may always be ejected.
	d2, _, a2 := setup(Config{Consecutive5xx: 1, BaseEjectionTime: time.Minute, MaxEjectionPercent: 10}, 3)
	if !d2.Report(a2[0], Result{Status: 500}) || d2.Report(a2[1], Result{Status: 500}) {
		t.Fatal("want exactly one ejection when 10% of 3 hosts rounds below one")
	}
}

func TestSuccessRate(t *testing.T) {
	cfg := Config{BaseEjectionTime: time.Minute, MaxEjectionPercent: 50, SuccessRateMinimumHosts: 5, SuccessRateRequestVolume: 100, SuccessRateStdevFactor: 1.9}
	d, _, a := setup(cfg, 6)
	for i, h := range a {
		for j := range 100 {
			st := 200
			if i == 5 && j%2 == 0 { // h5 fails half its requests
				st = 500
			}
			d.Report(h, Result{Status: st})
		}
	}
	if !d.Tick() || !d.Ejected(a[5]) {
		t.Fatal("success-rate outlier not ejected")
	}
	for _, h := range a[:5] {
		if d.Ejected(h) {
			t.Fatalf("%s ejected though healthy", h)
		}
	}
	if d.State(a[5]).Reason != SuccessRate {
		t.Fatal("wrong reason")
	}
}

func TestSuccessRateNeedsVolume(t *testing.T) {
	cfg := Config{BaseEjectionTime: time.Minute, MaxEjectionPercent: 50, SuccessRateMinimumHosts: 5, SuccessRateRequestVolume: 100, SuccessRateStdevFactor: 1.9}
	d, _, a := setup(cfg, 6)
	for _, h := range a {
		d.Report(h, Result{Status: 500})
	}
	if d.Tick() {
		t.Fatal("ejection without request volume")
	}
}

// Rounding once put the mean of equal rates (4/5 each) above them, and a
// factor below 1 then ejected a host that was no outlier.
func TestSuccessRateEqualRatesEjectNobody(t *testing.T) {
	cfg := Config{BaseEjectionTime: time.Minute, MaxEjectionPercent: 100, SuccessRateMinimumHosts: 3, SuccessRateRequestVolume: 5, SuccessRateStdevFactor: 0.1}
	d, _, a := setup(cfg, 3)
	for _, h := range a {
		for j := range 5 {
			st := 200
			if j == 0 {
				st = 500
			}
			d.Report(h, Result{Status: st})
		}
	}
	if d.Tick() {
		t.Fatal("a host was ejected though every host had the same success rate")
	}
}
