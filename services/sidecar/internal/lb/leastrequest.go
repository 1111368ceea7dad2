package lb

// leastRequest samples ChoiceCount hosts at random and keeps the one with the
// fewest requests in flight relative to its weight (power of two choices).
type leastRequest struct {
	hosts   []*Host
	choices int
	rand    func() uint64
}

func newLeastRequest(hosts []*Host, o Options) *leastRequest {
	c := o.ChoiceCount
	if c < 2 {
		c = 2
	}
	return &leastRequest{hosts: hosts, choices: c, rand: o.rand()}
}

func (l *leastRequest) Pick(Request) *Host {
	n := uint64(len(l.hosts))
	best := l.hosts[l.rand()%n]
	for i := 1; i < l.choices; i++ {
		h := l.hosts[l.rand()%n]
		// Compare active/weight without division: a/wa < b/wb ⇔ a*wb < b*wa.
		if uint64(h.Active())*best.weight() < uint64(best.Active())*h.weight() {
			best = h
		}
	}
	return best
}
