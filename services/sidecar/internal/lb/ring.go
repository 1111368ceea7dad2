package lb

import (
	"fmt"
	"math/bits"
	"slices"
	"sort"
)

// ring is a consistent hash ring (Ketama style): each host owns a number of
// points proportional to its weight; a key goes to the first point at or
// after its hash.
type ring struct {
	points []ringPoint
	rand   func() uint64
}

type ringPoint struct {
	hash uint64
	host *Host
}

// maxRingSize caps the ring like Envoy's default maximum_ring_size: weights
// are uint32, so one point per unit of weight could mean billions of points.
const maxRingSize = 1 << 23

func newRing(hosts []*Host, o Options) *ring {
	return newRingMax(hosts, o, maxRingSize)
}

func newRingMax(hosts []*Host, o Options, maxSize uint64) *ring {
	size := o.MinRingSize
	if size <= 0 {
		size = 1024
	}
	var total uint64
	for _, h := range hosts {
		total += h.weight()
	}
	// Points per unit of weight, rounded up to a power of two so that adding
	// or removing one host rarely changes the others' points (a key then
	// only moves if its own host went away).
	per := uint64(1)
	for per*total < uint64(size) {
		per <<= 1
	}
	points := func(w uint64) uint64 { return per * w }
	if per*total > maxSize {
		// Scale down to the cap as Envoy does, keeping every host on the ring.
		points = func(w uint64) uint64 {
			hi, lo := bits.Mul64(w, maxSize)
			q, _ := bits.Div64(hi, lo, total) // w <= total, so hi < total
			return max(q, 1)
		}
	}
	r := &ring{rand: o.rand()}
	for _, h := range hosts {
		for i := range points(h.weight()) {
			r.points = append(r.points, ringPoint{hash: HashString(fmt.Sprintf("%s_%d", h.Addr, i)), host: h})
		}
	}
	slices.SortFunc(r.points, func(a, b ringPoint) int {
		switch {
		case a.hash < b.hash:
			return -1
		case a.hash > b.hash:
			return 1
		}
		return 0
	})
	return r
}

func (r *ring) Pick(req Request) *Host {
	key := req.Hash
	if !req.HasHash {
		key = r.rand()
	}
	i := sort.Search(len(r.points), func(i int) bool { return r.points[i].hash >= key })
	if i == len(r.points) {
		i = 0
	}
	return r.points[i].host
}
