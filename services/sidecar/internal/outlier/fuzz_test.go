package outlier

import (
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/fuzzbytes"
)

// Operations, chosen by an op byte modulo 8; reports weigh half.
const (
	opAdvance  = 4 // +1 byte: seconds
	opTick     = 6
	opSetHosts = 7 // +1 byte: bitmask over fuzzPool
	// 0–3: report, +2 bytes: host, result
)

var fuzzPool = []string{"h0", "h1", "h2", "h3", "h4", "h5"}

var fuzzResults = []Result{
	{Status: 200}, {Status: 404}, {Status: 0}, {Status: 500}, {Status: 501},
	{Status: 502}, {Status: 503}, {Status: 504}, {ConnectFailure: true},
}

// FuzzDetectorMatchesModel runs arbitrary sequences of reports, clock
// advances, ticks and host-set changes against a Detector and a small model
// of the documented rules, checking after every step that:
//   - a host is ejected by a consecutive rule exactly when its streak (reset
//     by a success, and for gateway errors by a non-gateway 5xx) reaches the
//     threshold, and the ejection is allowed by the percentage cap;
//   - a new ejection never leaves more than max(1, ⌊pct×hosts/100⌋) ejected;
//   - an ejection lasts exactly base×ejections, capped at max(max, base), and
//     a Tick at or after that time returns the host;
//   - the multiplier drops by one per Tick while a host is healthy;
//   - a success-rate ejection only hits a host with enough volume, among
//     enough such hosts, whose rate is strictly below their exact mean.
func FuzzDetectorMatchesModel(f *testing.F) {
	// Config bytes: c5xx, gateway, base s, max s, pct, min hosts, volume, stdev×10, host mask.
	f.Add([]byte{3, 0, 30, 75, 100, 0, 0, 0, 0,
		0, 0, 3, 0, 0, 3, 0, 0, 3, // h0: three 500s, ejected
		opAdvance, 29, opTick, opAdvance, 1, opTick, // back after 30 s
		0, 0, 3, 0, 0, 3, 0, 0, 3, opAdvance, 59, opTick, opAdvance, 1, opTick})
	f.Add([]byte{2, 2, 10, 0, 20, 0, 0, 0, 0,
		0, 0, 8, 0, 0, 5, 0, 1, 3, 0, 1, 3, 0, 2, 7, 0, 2, 6, 0, 3, 3, 0, 3, 3, // cap at one of six
		opSetHosts, 3, opAdvance, 10, opTick})
	f.Add([]byte{0, 3, 40, 20, 50, 0, 0, 0, 0, // base above max
		0, 0, 5, 0, 0, 3, 0, 0, 5, 0, 0, 5, 0, 0, 5, 0, 0, 0, 0, 0, 5,
		opAdvance, 39, opTick, opAdvance, 1, opTick})
	sr := []byte{0, 0, 30, 0, 50, 3, 4, 10, 0}
	for i := range 6 * 4 {
		res := byte(0)
		if i%6 == 5 && i%4 != 0 {
			res = 3
		}
		sr = append(sr, 0, byte(i%6), res)
	}
	f.Add(append(sr, opTick, opAdvance, 30, opTick))

	f.Fuzz(func(t *testing.T, data []byte) {
		in := fuzzbytes.Reader(data)
		cfg := Config{
			Consecutive5xx:            uint32(in.Next() % 6),
			ConsecutiveGatewayFailure: uint32(in.Next() % 6),
			Interval:                  10 * time.Second,
			BaseEjectionTime:          time.Duration(in.Next()%64) * time.Second,
			MaxEjectionTime:           time.Duration(in.Next()) * time.Second,
			MaxEjectionPercent:        uint32(in.Next() % 101),
			SuccessRateMinimumHosts:   uint32(in.Next() % 6),
			SuccessRateRequestVolume:  uint32(in.Next() % 8),
			SuccessRateStdevFactor:    float64(in.Next()%32) / 10,
		}
		c := &clock{t: time.Unix(1000, 0)}
		d := New(cfg, c.now)
		m := &model{cfg: cfg, hosts: map[string]*modelHost{}}
		setHosts := func(mask byte) {
			var addrs []string
			for i, a := range fuzzPool {
				if mask&(1<<i) != 0 {
					addrs = append(addrs, a)
				}
			}
			d.SetHosts(addrs)
			m.setHosts(addrs)
		}
		setHosts(^in.Next()) // a zero byte tracks every host

		for step := 0; len(in) > 0 && step < 200; step++ {
			before := snapshot(d)
			switch op := in.Next() % 8; op {
			case opAdvance, opAdvance + 1:
				c.t = c.t.Add(time.Duration(in.Next()) * time.Second)
			case opTick:
				got := d.Tick()
				if want := m.tick(t, d, c.t); got != want {
					t.Fatalf("step %d: Tick changed = %v, want %v", step, got, want)
				}
			case opSetHosts:
				setHosts(in.Next())
			default:
				addr := fuzzPool[int(in.Next())%len(fuzzPool)]
				r := fuzzResults[int(in.Next())%len(fuzzResults)]
				h := m.hosts[addr]
				var streak5xx, streakGW uint32
				if h != nil {
					streak5xx, streakGW = h.consec5xx, h.consecGW
				}
				got := d.Report(addr, r)
				if want := m.report(addr, r, c.t); got != want {
					t.Fatalf("step %d: Report(%s, %+v) = %v, want %v (streaks before: 5xx %d, gateway %d; %d of %d ejected; cfg %+v)",
						step, addr, r, got, want, streak5xx, streakGW, countEjected(before), len(m.hosts), cfg)
				}
			}
			after := snapshot(d)
			checkCap(t, step, cfg, before, after, len(m.hosts))
			m.compare(t, step, d)
		}
	})
}

// snapshot returns the state of every pool host; untracked ones are zero.
func snapshot(d *Detector) map[string]HostState {
	s := map[string]HostState{}
	for _, a := range fuzzPool {
		s[a] = d.State(a)
	}
	return s
}

func countEjected(s map[string]HostState) int {
	n := 0
	for _, h := range s {
		if h.Ejected {
			n++
		}
	}
	return n
}

// checkCap: a step that ejected a host (or re-ejected it, raising its
// multiplier) must leave at most max(1, ⌊pct×hosts/100⌋) hosts ejected.
// Shrinking the host set may exceed the cap without any new ejection.
func checkCap(t *testing.T, step int, cfg Config, before, after map[string]HostState, hosts int) {
	t.Helper()
	newEjection := false
	for a, h := range after {
		if h.Ejected && (!before[a].Ejected || h.Ejections > before[a].Ejections) {
			newEjection = true
		}
	}
	limit := max(1, int(cfg.MaxEjectionPercent)*hosts/100)
	if n := countEjected(after); newEjection && n > limit {
		t.Fatalf("step %d: %d of %d hosts ejected, max %d%% allows %d", step, n, hosts, cfg.MaxEjectionPercent, limit)
	}
}

type modelHost struct {
	consec5xx, consecGW uint32
	success, total      uint64 // this interval
	ejected             bool
	at                  time.Time
	ejections           int
	reason              Reason
}

func (h *modelHost) rate() *big.Rat {
	return big.NewRat(int64(h.success), int64(h.total))
}

type model struct {
	cfg   Config
	hosts map[string]*modelHost
}

func (m *model) setHosts(addrs []string) {
	next := map[string]*modelHost{}
	for _, a := range addrs {
		if h, ok := m.hosts[a]; ok {
			next[a] = h
		} else {
			next[a] = &modelHost{}
		}
	}
	m.hosts = next
}

// wantEjectionTime is the documented duration of a host's k-th ejection.
func (m *model) wantEjectionTime(k int) time.Duration {
	d := m.cfg.BaseEjectionTime * time.Duration(k)
	if m.cfg.MaxEjectionTime > 0 {
		d = min(d, max(m.cfg.MaxEjectionTime, m.cfg.BaseEjectionTime))
	}
	return d
}

// mayEject: the first ejection is always allowed, later ones only while
// the ejected share stays within MaxEjectionPercent.
func (m *model) mayEject() bool {
	n := 0
	for _, h := range m.hosts {
		if h.ejected {
			n++
		}
	}
	return n == 0 || (n+1)*100 <= int(m.cfg.MaxEjectionPercent)*len(m.hosts)
}

func (m *model) eject(h *modelHost, why Reason, now time.Time) {
	h.ejected, h.at, h.reason = true, now, why
	h.ejections++
	h.consec5xx, h.consecGW = 0, 0
}

func (m *model) report(addr string, r Result, now time.Time) bool {
	h, ok := m.hosts[addr]
	if !ok {
		return false
	}
	h.total++
	fail := r.ConnectFailure || r.Status >= 500
	gateway := r.ConnectFailure || r.Status == 502 || r.Status == 503 || r.Status == 504
	if !fail {
		h.success++
		h.consec5xx, h.consecGW = 0, 0
		return false
	}
	h.consec5xx++
	if gateway {
		h.consecGW++
	} else {
		h.consecGW = 0
	}
	var why Reason
	switch {
	case h.ejected:
		return false
	case m.cfg.Consecutive5xx > 0 && h.consec5xx >= m.cfg.Consecutive5xx:
		why = Consecutive5xx
	case m.cfg.ConsecutiveGatewayFailure > 0 && h.consecGW >= m.cfg.ConsecutiveGatewayFailure:
		why = ConsecutiveGateway
	default:
		return false
	}
	if !m.mayEject() {
		return false
	}
	m.eject(h, why, now)
	return true
}

// tick applies returns and decay, then checks each success-rate ejection
// the detector made (the model does not predict them) and adopts it.
func (m *model) tick(t *testing.T, d *Detector, now time.Time) (changed bool) {
	t.Helper()
	for _, h := range m.hosts {
		switch {
		case h.ejected && now.Sub(h.at) >= m.wantEjectionTime(h.ejections):
			h.ejected, h.reason = false, ""
			changed = true
		case !h.ejected && h.ejections > 0:
			h.ejections--
		}
	}
	// Exact rates: the check must not inherit the detector's rounding.
	var qualified int64
	sum := new(big.Rat)
	for _, h := range m.hosts {
		if !h.ejected && h.total > 0 && h.total >= uint64(m.cfg.SuccessRateRequestVolume) {
			qualified++
			sum.Add(sum, h.rate())
		}
	}
	for a, h := range m.hosts {
		got := d.State(a)
		if !got.Ejected || h.ejected {
			continue
		}
		switch {
		case got.Reason != SuccessRate:
			t.Fatalf("Tick ejected %s for %q", a, got.Reason)
		case m.cfg.SuccessRateStdevFactor <= 0:
			t.Fatalf("Tick ejected %s by success rate, which is disabled", a)
		case h.total == 0 || h.total < uint64(m.cfg.SuccessRateRequestVolume):
			t.Fatalf("Tick ejected %s by success rate with %d requests, below volume %d", a, h.total, m.cfg.SuccessRateRequestVolume)
		case qualified < max(int64(m.cfg.SuccessRateMinimumHosts), 1):
			t.Fatalf("Tick ejected %s by success rate with %d hosts of volume, below minimum %d", a, qualified, m.cfg.SuccessRateMinimumHosts)
		case new(big.Rat).Mul(h.rate(), big.NewRat(qualified, 1)).Cmp(sum) >= 0:
			t.Fatalf("Tick ejected %s by success rate %d/%d, not below the mean %s of %d hosts",
				a, h.success, h.total, new(big.Rat).Quo(sum, big.NewRat(qualified, 1)).FloatString(6), qualified)
		}
		m.eject(h, SuccessRate, now)
		changed = true
	}
	for _, h := range m.hosts {
		h.success, h.total = 0, 0
	}
	return changed
}

// compare checks every pool host's state against the model.
func (m *model) compare(t *testing.T, step int, d *Detector) {
	t.Helper()
	for _, a := range fuzzPool {
		var want HostState
		if h, ok := m.hosts[a]; ok {
			want = HostState{Ejected: h.ejected, Reason: h.reason, Ejections: h.ejections}
			if h.ejected {
				want.Until = h.at.Add(m.wantEjectionTime(h.ejections))
			}
		}
		got := d.State(a)
		if got.Ejected != want.Ejected || got.Reason != want.Reason || got.Ejections != want.Ejections ||
			!got.Until.Equal(want.Until) || d.Ejected(a) != want.Ejected {
			t.Fatalf("step %d: %s: State = %s, want %s", step, a, fmtState(got), fmtState(want))
		}
	}
}

func fmtState(s HostState) string {
	return fmt.Sprintf("{ejected %v %q ejections %d until %v}", s.Ejected, s.Reason, s.Ejections, s.Until.Unix())
}
