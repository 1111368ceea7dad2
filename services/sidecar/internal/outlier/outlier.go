// Package outlier implements passive health checking (Envoy's outlier
// detection): hosts are ejected for consecutive 5xx responses, consecutive
// gateway errors, or a success rate far below their peers'. Each ejection
// lasts base × number of ejections (capped), and no more than a maximum
// percentage of hosts is ejected at once (though always at least one may be).
// Time is injected; the caller runs Tick every Interval.
package outlier

import (
	"math"
	"slices"
	"sync"
	"time"
)

// Config mirrors Envoy's OutlierDetection fields that are implemented.
type Config struct {
	Consecutive5xx            uint32 // 0 disables
	ConsecutiveGatewayFailure uint32 // 0 disables
	Interval                  time.Duration
	BaseEjectionTime          time.Duration
	MaxEjectionTime           time.Duration
	MaxEjectionPercent        uint32
	SuccessRateMinimumHosts   uint32
	SuccessRateRequestVolume  uint32
	SuccessRateStdevFactor    float64 // e.g. 1.9; 0 disables success-rate ejection
}

// DefaultConfig has Envoy's defaults, except that success-rate ejection is
// enabled only when configured.
func DefaultConfig() Config {
	return Config{
		Consecutive5xx: 5, ConsecutiveGatewayFailure: 0,
		Interval: 10 * time.Second, BaseEjectionTime: 30 * time.Second, MaxEjectionTime: 300 * time.Second,
		MaxEjectionPercent: 10, SuccessRateMinimumHosts: 5, SuccessRateRequestVolume: 100,
	}
}

// Reason says why a host was ejected.
type Reason string

// Ejection reasons.
const (
	Consecutive5xx     Reason = "consecutive_5xx"
	ConsecutiveGateway Reason = "consecutive_gateway_failure"
	SuccessRate        Reason = "success_rate"
)

type hostState struct {
	consec5xx, consecGateway uint32
	success, total           uint64 // this interval
	ejected                  bool
	ejectedAt                time.Time
	ejections                int // multiplier, decays while healthy
	reason                   Reason
}

// Detector tracks hosts of one cluster.
type Detector struct {
	cfg Config
	now func() time.Time

	mu    sync.Mutex
	hosts map[string]*hostState
	total uint64 // ejections ever, for metrics
}

// New returns a detector; now nil means time.Now.
func New(cfg Config, now func() time.Time) *Detector {
	if now == nil {
		now = time.Now
	}
	return &Detector{cfg: cfg, now: now, hosts: map[string]*hostState{}}
}

// SetHosts replaces the tracked set, keeping the state of hosts that remain.
func (d *Detector) SetHosts(addrs []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	next := make(map[string]*hostState, len(addrs))
	for _, a := range addrs {
		if s, ok := d.hosts[a]; ok {
			next[a] = s
		} else {
			next[a] = &hostState{}
		}
	}
	d.hosts = next
}

// Result is one request's outcome as the detector sees it.
type Result struct {
	Status         int  // 0 when there was no response
	ConnectFailure bool // connection refused, reset or timed out: a gateway error
}

func (r Result) is5xx() bool { return r.Status >= 500 || r.ConnectFailure }
func (r Result) isGateway() bool {
	return r.Status == 502 || r.Status == 503 || r.Status == 504 || r.ConnectFailure
}

// Report records a result for addr and reports whether addr was ejected by it.
func (d *Detector) Report(addr string, r Result) (ejected bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.hosts[addr]
	if !ok {
		return false
	}
	s.total++
	if !r.is5xx() {
		s.success++
		s.consec5xx, s.consecGateway = 0, 0
		return false
	}
	s.consec5xx++
	if r.isGateway() {
		s.consecGateway++
	} else {
		s.consecGateway = 0
	}
	if s.ejected {
		return false
	}
	switch {
	case d.cfg.Consecutive5xx > 0 && s.consec5xx >= d.cfg.Consecutive5xx:
		return d.eject(s, Consecutive5xx)
	case d.cfg.ConsecutiveGatewayFailure > 0 && s.consecGateway >= d.cfg.ConsecutiveGatewayFailure:
		return d.eject(s, ConsecutiveGateway)
	}
	return false
}

// eject ejects s unless that would exceed the max ejection percentage; one
// host may always be ejected, as in Envoy.
func (d *Detector) eject(s *hostState, why Reason) bool {
	ejected := 0
	for _, h := range d.hosts {
		if h.ejected {
			ejected++
		}
	}
	if ejected > 0 && float64(ejected+1)*100 > float64(d.cfg.MaxEjectionPercent)*float64(len(d.hosts)) {
		return false
	}
	s.ejected, s.ejectedAt, s.reason = true, d.now(), why
	s.ejections++
	s.consec5xx, s.consecGateway = 0, 0
	d.total++
	return true
}

func (d *Detector) ejectionTime(s *hostState) time.Duration {
	t := d.cfg.BaseEjectionTime * time.Duration(s.ejections)
	if d.cfg.MaxEjectionTime > 0 {
		t = min(t, max(d.cfg.MaxEjectionTime, d.cfg.BaseEjectionTime))
	}
	return t
}

// Tick runs once per Interval: it returns hosts whose ejection expired,
// decays the ejection multiplier of healthy hosts, and applies success-rate
// ejection. changed reports whether the available set changed.
func (d *Detector) Tick() (changed bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	for _, s := range d.hosts {
		switch {
		case s.ejected && now.Sub(s.ejectedAt) >= d.ejectionTime(s):
			s.ejected, s.reason = false, ""
			changed = true
		case !s.ejected && s.ejections > 0:
			s.ejections--
		}
	}
	if d.successRate() {
		changed = true
	}
	for _, s := range d.hosts {
		s.success, s.total = 0, 0
	}
	return changed
}

func (d *Detector) successRate() (changed bool) {
	if d.cfg.SuccessRateStdevFactor <= 0 {
		return false
	}
	var rates []float64
	var sts []*hostState
	for _, s := range d.hosts {
		if !s.ejected && s.total >= uint64(d.cfg.SuccessRateRequestVolume) && s.total > 0 {
			rates = append(rates, float64(s.success)/float64(s.total))
			sts = append(sts, s)
		}
	}
	if len(rates) < int(max(d.cfg.SuccessRateMinimumHosts, 1)) {
		return false
	}
	// Equal rates have no outlier, yet rounding can put their float mean,
	// and with a factor below 1 the threshold, just above them.
	if slices.Min(rates) == slices.Max(rates) {
		return false
	}
	var mean float64
	for _, r := range rates {
		mean += r
	}
	mean /= float64(len(rates))
	var variance float64
	for _, r := range rates {
		variance += (r - mean) * (r - mean)
	}
	threshold := mean - d.cfg.SuccessRateStdevFactor*math.Sqrt(variance/float64(len(rates)))
	for i, r := range rates {
		if r < threshold && d.eject(sts[i], SuccessRate) {
			changed = true
		}
	}
	return changed
}

// Ejected reports whether addr is currently ejected.
func (d *Detector) Ejected(addr string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.hosts[addr]
	return ok && s.ejected
}

// HostState is a host's state for the admin /clusters page.
type HostState struct {
	Ejected   bool
	Reason    Reason
	Ejections int
	Until     time.Time
}

// State returns the state of addr.
func (d *Detector) State(addr string) HostState {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.hosts[addr]
	if !ok {
		return HostState{}
	}
	hs := HostState{Ejected: s.ejected, Reason: s.reason, Ejections: s.ejections}
	if s.ejected {
		hs.Until = s.ejectedAt.Add(d.ejectionTime(s))
	}
	return hs
}

// Interval is how often the owner must call Tick.
func (d *Detector) Interval() time.Duration { return d.cfg.Interval }
