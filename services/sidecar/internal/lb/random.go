package lb

import "sort"

// random picks a host with probability proportional to its weight.
type random struct {
	hosts []*Host
	cum   []uint64 // cumulative weights
	rand  func() uint64
}

func newRandom(hosts []*Host, o Options) *random {
	r := &random{hosts: hosts, cum: make([]uint64, len(hosts)), rand: o.rand()}
	var sum uint64
	for i, h := range hosts {
		sum += h.weight()
		r.cum[i] = sum
	}
	return r
}

func (r *random) Pick(Request) *Host {
	x := r.rand() % r.cum[len(r.cum)-1]
	i := sort.Search(len(r.cum), func(i int) bool { return r.cum[i] > x })
	return r.hosts[i]
}
