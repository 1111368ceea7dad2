package lb

// DefaultOverprovisioning is Envoy's overprovisioning factor (1.4): a
// priority keeps all traffic while at least 1/1.4 ≈ 71 % of its hosts are
// available.
const DefaultOverprovisioning = 1.4

// Locality spreads requests over priority levels (0 = same locality, then
// farther ones) the way Envoy does: each level takes the share its available
// fraction × overprovisioning allows, and the rest spills to the next level.
type Locality struct {
	levels []Picker
	share  []uint64 // cumulative share out of shareScale
	rand   func() uint64
}

const shareScale = 1 << 20

// Level is the set of hosts at one priority: all of them, and the ones currently available.
type Level struct {
	Total     int
	Available []*Host
}

// NewLocality builds a picker over levels indexed by priority.
func NewLocality(p Policy, levels []Level, overprovisioning float64, o Options) Picker {
	if overprovisioning <= 0 {
		overprovisioning = DefaultOverprovisioning
	}
	loc := &Locality{rand: o.rand()}
	remaining := 1.0
	var cum float64
	cums := make([]float64, 0, len(levels))
	var anyAvailable bool
	for _, lv := range levels {
		if len(lv.Available) > 0 {
			anyAvailable = true
		}
		health := 0.0
		if lv.Total > 0 {
			health = min(1, overprovisioning*float64(len(lv.Available))/float64(lv.Total))
		}
		take := min(health, remaining)
		remaining -= take
		cum += take
		cums = append(cums, cum)
		loc.levels = append(loc.levels, New(p, lv.Available, o))
	}
	if !anyAvailable {
		return empty{}
	}
	// When nothing is healthy enough to absorb everything the shares are
	// normalised over what there is (Envoy's "degraded" normalisation);
	// before rounding, or the rounding error would grow by 1/cum.
	total := 1.0
	if remaining > 0 {
		total = cum
	}
	for _, c := range cums {
		loc.share = append(loc.share, uint64(c/total*shareScale))
	}
	if len(loc.levels) == 1 {
		return loc.levels[0]
	}
	return loc
}

// Pick chooses a level by its share, then a host within it.
func (l *Locality) Pick(req Request) *Host {
	x := l.rand() % shareScale
	for i, s := range l.share {
		if x < s {
			if h := l.levels[i].Pick(req); h != nil {
				return h
			}
		}
	}
	for _, lv := range l.levels {
		if h := lv.Pick(req); h != nil {
			return h
		}
	}
	return nil
}
