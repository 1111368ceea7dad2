package lb

import (
	"slices"
	"strings"
)

// maglevTableSize is prime, as the Maglev paper requires; Envoy's default.
const maglevTableSize = 65537

// maglev is Google's Maglev consistent hashing: a lookup table filled from
// per-host permutations so that hosts own near-equal (weighted) shares and a
// host set change moves few keys.
type maglev struct {
	table []*Host
	rand  func() uint64
}

func newMaglev(hosts []*Host, o Options) *maglev {
	return newMaglevSize(hosts, o, maglevTableSize)
}

func newMaglevSize(hosts []*Host, o Options, m uint64) *maglev {
	// Hosts take turns in address order, not in the order the endpoints
	// arrived: the table, and so where a key goes, must be the same in every
	// sidecar (Envoy sorts them too since its issue 20703).
	hosts = slices.SortedStableFunc(slices.Values(hosts), func(a, b *Host) int { return strings.Compare(a.Addr, b.Addr) })
	type perm struct {
		offset, skip, next uint64
		filled             float64
	}
	perms := make([]perm, len(hosts))
	var maxW uint64
	for i, h := range hosts {
		perms[i].offset = HashString(h.Addr) % m
		perms[i].skip = HashString(h.Addr+"#skip")%(m-1) + 1
		maxW = max(maxW, h.weight())
	}
	table := make([]*Host, m)
	var filled uint64
	for round := 1; filled < m; round++ {
		for i, h := range hosts {
			// Weighted Maglev: a host takes a turn only while its share so
			// far is below weight/maxWeight of the rounds played.
			if perms[i].filled >= float64(round)*float64(h.weight())/float64(maxW) {
				continue
			}
			p := &perms[i]
			for {
				c := (p.offset + p.next*p.skip) % m
				p.next++
				if table[c] == nil {
					table[c] = h
					p.filled++
					filled++
					break
				}
			}
			if filled == m {
				break
			}
		}
	}
	return &maglev{table: table, rand: o.rand()}
}

func (g *maglev) Pick(req Request) *Host {
	key := req.Hash
	if !req.HasHash {
		key = g.rand()
	}
	return g.table[key%uint64(len(g.table))]
}
