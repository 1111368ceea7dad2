package lb

import "sync"

// roundRobin is nginx's smooth weighted round robin: with equal weights it is
// plain rotation (9 picks over 3 hosts land 3-3-3) and with weights it
// interleaves instead of sending bursts to the heaviest host.
type roundRobin struct {
	mu      sync.Mutex
	hosts   []*Host
	current []int64
	total   int64
}

func newRoundRobin(hosts []*Host) *roundRobin {
	rr := &roundRobin{hosts: hosts, current: make([]int64, len(hosts))}
	for _, h := range hosts {
		rr.total += int64(h.weight())
	}
	return rr
}

func (rr *roundRobin) Pick(Request) *Host {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	best := 0
	for i, h := range rr.hosts {
		rr.current[i] += int64(h.weight())
		if rr.current[i] > rr.current[best] {
			best = i
		}
	}
	rr.current[best] -= rr.total
	return rr.hosts[best]
}
