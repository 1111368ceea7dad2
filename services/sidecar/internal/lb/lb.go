// Package lb picks an upstream endpoint for a request.
//
// A Picker is immutable and built over the endpoints that are currently
// available (healthy and not ejected); the cluster builds a new one whenever
// that set changes, the way grpc-go's balancers hand out pickers. Policies:
// round robin (smooth weighted), least request (power of two choices), ring
// hash, maglev and random. Locality (priority) spill-over is layered on top in
// priority.go.
package lb

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
)

// Policy names a load-balancing algorithm.
type Policy int

// Supported policies.
const (
	RoundRobin Policy = iota
	LeastRequest
	RingHash
	Maglev
	Random
)

func (p Policy) String() string {
	switch p {
	case RoundRobin:
		return "ROUND_ROBIN"
	case LeastRequest:
		return "LEAST_REQUEST"
	case RingHash:
		return "RING_HASH"
	case Maglev:
		return "MAGLEV"
	case Random:
		return "RANDOM"
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

// Host is one upstream endpoint. Hosts are shared between successive pickers
// so the in-flight request count survives a rebuild.
type Host struct {
	Addr     string
	Weight   uint32 // 0 is treated as 1
	Priority uint32 // 0 is the most preferred locality
	Locality string

	active atomic.Int64
}

// Begin marks one more request in flight to h; call the returned func when it ends.
func (h *Host) Begin() (end func()) {
	h.active.Add(1)
	return func() { h.active.Add(-1) }
}

// Acquire marks one more request in flight to h, like Begin without
// allocating a closure (the request path); pair it with Release.
func (h *Host) Acquire() { h.active.Add(1) }

// Release ends a request counted by Acquire.
func (h *Host) Release() { h.active.Add(-1) }

// Active is the number of requests in flight to h.
func (h *Host) Active() int64 { return h.active.Load() }

func (h *Host) weight() uint64 {
	if h.Weight == 0 {
		return 1
	}
	return uint64(h.Weight)
}

// Request carries what a hashing policy needs to pick; other policies ignore it.
type Request struct {
	Hash    uint64
	HasHash bool
}

// Picker selects one of a fixed set of hosts. Pick returns nil only when the
// set is empty. Pickers are safe for concurrent use.
type Picker interface {
	Pick(Request) *Host
}

// Options tune how pickers are built.
type Options struct {
	// Rand returns uniformly distributed 64-bit numbers; nil uses math/rand/v2.
	Rand func() uint64
	// MinRingSize is the ring hash ring's minimum number of entries (default 1024).
	MinRingSize int
	// ChoiceCount is how many hosts least request samples (default 2).
	ChoiceCount int
}

func (o Options) rand() func() uint64 {
	if o.Rand != nil {
		return o.Rand
	}
	return rand.Uint64
}

// New builds a picker for policy over hosts.
func New(p Policy, hosts []*Host, o Options) Picker {
	if len(hosts) == 0 {
		return empty{}
	}
	switch p {
	case LeastRequest:
		return newLeastRequest(hosts, o)
	case RingHash:
		return newRing(hosts, o)
	case Maglev:
		return newMaglev(hosts, o)
	case Random:
		return newRandom(hosts, o)
	default:
		return newRoundRobin(hosts)
	}
}

type empty struct{}

func (empty) Pick(Request) *Host { return nil }
