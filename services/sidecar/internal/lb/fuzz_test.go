package lb

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// maxFuzzHosts keeps one fuzz iteration to microseconds or a few milliseconds.
const maxFuzzHosts = 16

// fuzzHosts makes one host per byte of spec: the byte is the weight, except
// 254 (huge) and 255 (MaxUint32), so 0, 1, small and near-uint32 weights all
// occur. salt moves the addresses, and with them the hash positions.
func fuzzHosts(spec []byte, huge uint32, salt uint8) []*Host {
	if len(spec) > maxFuzzHosts {
		spec = spec[:maxFuzzHosts]
	}
	hs := make([]*Host, len(spec))
	for i, b := range spec {
		w := uint32(b)
		switch b {
		case 254:
			w = huge
		case 255:
			w = math.MaxUint32
		}
		hs[i] = &Host{Addr: fmt.Sprintf("10.%d.0.%d:8080", salt, i+1), Weight: w}
	}
	return hs
}

// docWeight is Host.Weight as documented: 0 counts as 1.
func docWeight(h *Host) uint64 {
	if h.Weight == 0 {
		return 1
	}
	return uint64(h.Weight)
}

func totalWeight(hs []*Host) uint64 {
	var t uint64
	for _, h := range hs {
		t += docWeight(h)
	}
	return t
}

// tape replays fuzzer-chosen numbers as Options.Rand and records what it
// handed out, so a test knows which "random" choices a picker made.
type tape struct {
	vals []uint64
	i    int
	log  []uint64
}

func newTape(b []byte) *tape {
	t := &tape{}
	for len(b) > 0 {
		var buf [8]byte
		n := copy(buf[:], b)
		b = b[n:]
		t.vals = append(t.vals, binary.LittleEndian.Uint64(buf[:]))
	}
	if len(t.vals) == 0 {
		t.vals = []uint64{0}
	}
	return t
}

func (t *tape) next() uint64 {
	// Later passes over the tape are shifted so a short tape still varies.
	v := t.vals[t.i%len(t.vals)] + uint64(t.i/len(t.vals))*0x9e3779b97f4a7c15
	t.i++
	t.log = append(t.log, v)
	return v
}

// keysFrom reads 64-bit hash keys from b, plus the two extremes.
func keysFrom(b []byte) []uint64 {
	keys := []uint64{0, math.MaxUint64}
	for len(b) >= 8 && len(keys) < 64 {
		keys = append(keys, binary.LittleEndian.Uint64(b))
		b = b[8:]
	}
	return keys
}

func ceilDiv(a, b uint64) uint64 { return (a + b - 1) / b }

// FuzzRoundRobinIsSmoothAndExactPerCycle checks nginx smooth weighted round
// robin: its "current" value c_i = k*w_i - picks_i*W (after k picks, W the
// weight sum) always lies in (-W, (n-1)W), i.e. no host is ever a full pick
// ahead of its share or n-1 picks behind it, and after exactly W picks every
// host has had exactly its weight.
func FuzzRoundRobinIsSmoothAndExactPerCycle(f *testing.F) {
	f.Add([]byte{}, uint32(0))
	f.Add([]byte{1}, uint32(0))
	f.Add([]byte{0, 0}, uint32(0))
	f.Add([]byte{3, 1}, uint32(0))
	f.Add([]byte{5, 1, 1}, uint32(0))
	f.Add([]byte{0, 7, 2, 200, 1}, uint32(0))
	f.Add([]byte{254, 1}, uint32(1<<31))
	f.Add([]byte{255, 0, 255, 3}, uint32(0))
	f.Fuzz(func(t *testing.T, spec []byte, huge uint32) {
		hs := fuzzHosts(spec, huge, 0)
		p := New(RoundRobin, hs, Options{})
		if len(hs) == 0 {
			if h := p.Pick(Request{}); h != nil {
				t.Fatalf("picked %v from no hosts", h.Addr)
			}
			return
		}
		n := int64(len(hs))
		W := int64(totalWeight(hs))
		picks := min(W, 4096)
		got := make([]int64, n)
		for k := int64(1); k <= picks; k++ {
			i := slices.Index(hs, p.Pick(Request{}))
			if i < 0 {
				t.Fatalf("pick %d returned a host outside the set", k)
			}
			got[i]++
			for j, h := range hs {
				c := k*int64(docWeight(h)) - got[j]*W
				if c <= -W || (n > 1 && c >= (n-1)*W) {
					t.Fatalf("after %d picks host %d (weight %d) has %d picks, outside its smooth share (W=%d, n=%d)", k, j, h.Weight, got[j], W, n)
				}
			}
		}
		if picks == W {
			for j, h := range hs {
				if uint64(got[j]) != docWeight(h) {
					t.Fatalf("one cycle of %d picks gave host %d (weight %d) %d picks: %v", W, j, h.Weight, got[j], got)
				}
			}
		}
	})
}

// lessOrEqualLoad reports active(a)/w(a) <= active(b)/w(b) in exact 128-bit arithmetic.
func lessOrEqualLoad(a, b *Host) bool {
	ahi, alo := bits.Mul64(uint64(a.Active()), docWeight(b))
	bhi, blo := bits.Mul64(uint64(b.Active()), docWeight(a))
	return ahi < bhi || (ahi == bhi && alo <= blo)
}

// FuzzLeastRequestPicksLeastLoadedSample checks power of two (or
// ChoiceCount) choices: each pick draws max(2, ChoiceCount) samples and
// returns one of them whose active/weight is no greater than any other sample's.
func FuzzLeastRequestPicksLeastLoadedSample(f *testing.F) {
	f.Add([]byte{}, uint32(0), []byte{}, uint8(0), []byte{})
	f.Add([]byte{1}, uint32(0), []byte{9}, uint8(0), []byte{1, 2, 3})
	f.Add([]byte{1, 1, 1}, uint32(0), []byte{10, 10, 0}, uint8(2), []byte{0, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Add([]byte{0, 4, 1}, uint32(0), []byte{3, 8, 2}, uint8(3), []byte{7, 1, 5, 2, 9, 4})
	f.Add([]byte{255, 1, 254}, uint32(1<<30), []byte{255, 0, 254}, uint8(5), []byte{2, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, spec []byte, huge uint32, active []byte, choices uint8, rnd []byte) {
		hs := fuzzHosts(spec, huge, 0)
		for i, h := range hs {
			if i < len(active) {
				// 254 and 255 stand for large in-flight counts that still fit the
				// uint32 range a real host could reach.
				switch a := active[i]; a {
				case 254:
					h.active.Store(1 << 31)
				case 255:
					h.active.Store(math.MaxUint32 - 32) // +16 acquires stays below 2^32
				default:
					h.active.Store(int64(a))
				}
			}
		}
		tp := newTape(rnd)
		cc := int(choices % 8)
		p := New(LeastRequest, hs, Options{Rand: tp.next, ChoiceCount: cc})
		if len(hs) == 0 {
			if h := p.Pick(Request{}); h != nil {
				t.Fatalf("picked %v from no hosts", h.Addr)
			}
			return
		}
		for round := range 16 {
			tp.log = tp.log[:0]
			h := p.Pick(Request{})
			if want := max(2, cc); len(tp.log) != want {
				t.Fatalf("pick %d drew %d samples, want %d", round, len(tp.log), want)
			}
			picked := false
			for _, r := range tp.log {
				s := hs[r%uint64(len(hs))]
				picked = picked || s == h
				if !lessOrEqualLoad(h, s) {
					t.Fatalf("pick %d chose %s (active %d, weight %d) over less loaded sample %s (active %d, weight %d)",
						round, h.Addr, h.Active(), h.Weight, s.Addr, s.Active(), s.Weight)
				}
			}
			if !picked {
				t.Fatalf("pick %d returned %v, which was not sampled", round, h)
			}
			h.Acquire() // the request stays in flight, so later picks see the load
		}
	})
}

// FuzzRandomPicksByCumulativeWeight checks that the random picker maps a
// random number r to the host whose slice [cum_{i-1}, cum_i) of the weight
// line holds r mod W, so every host's chance is exactly weight/W.
func FuzzRandomPicksByCumulativeWeight(f *testing.F) {
	f.Add([]byte{}, uint32(0), []byte{})
	f.Add([]byte{1}, uint32(0), []byte{5})
	f.Add([]byte{0, 0, 3}, uint32(0), []byte{0, 1, 2, 3, 4, 5, 6, 7, 1, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{254, 1, 255}, uint32(1<<31), []byte{255, 255, 255, 255, 255, 255, 255, 255})
	f.Fuzz(func(t *testing.T, spec []byte, huge uint32, rnd []byte) {
		hs := fuzzHosts(spec, huge, 0)
		tp := newTape(rnd)
		p := New(Random, hs, Options{Rand: tp.next})
		if len(hs) == 0 {
			if h := p.Pick(Request{}); h != nil {
				t.Fatalf("picked %v from no hosts", h.Addr)
			}
			return
		}
		W := totalWeight(hs)
		owner := func(x uint64) int {
			x %= W
			var cum uint64
			for i, h := range hs {
				cum += docWeight(h)
				if x < cum {
					return i
				}
			}
			panic("unreachable")
		}
		for range 32 {
			tp.log = tp.log[:0]
			h := p.Pick(Request{})
			if len(tp.log) != 1 {
				t.Fatalf("one pick drew %d random numbers, want 1", len(tp.log))
			}
			if want := hs[owner(tp.log[0])]; h != want {
				t.Fatalf("r=%d (mod %d = %d) picked %v, want %s", tp.log[0], W, tp.log[0]%W, h, want.Addr)
			}
		}
		if W <= 4096 {
			// Every residue once: each host must come out exactly weight times.
			var x uint64
			p := New(Random, hs, Options{Rand: func() uint64 { x++; return x - 1 }})
			got := make([]uint64, len(hs))
			for range W {
				got[slices.Index(hs, p.Pick(Request{}))]++
			}
			for i, h := range hs {
				if got[i] != docWeight(h) {
					t.Fatalf("over all %d residues host %d (weight %d) got %d picks", W, i, h.Weight, got[i])
				}
			}
		}
	})
}

// ringOwner is the documented ring lookup done the slow way: the first point
// at or after key, wrapping to the lowest.
func ringOwner(r *ring, key uint64) *Host {
	var best *ringPoint
	for i := range r.points {
		pt := &r.points[i]
		if pt.hash >= key && (best == nil || pt.hash < best.hash) {
			best = pt
		}
	}
	if best == nil {
		best = &r.points[0]
		for i := range r.points {
			if r.points[i].hash < best.hash {
				best = &r.points[i]
			}
		}
	}
	return best.host
}

// FuzzRingHashIsConsistentAndBounded checks the ring hash: it never exceeds
// its maximum size (plus one point per host), reaches its minimum unless the
// maximum is lower, gives each host at least one point and points in
// proportion to weight, looks keys up as documented, is the same whatever
// the host order, and — when removing a host does not change the points per
// unit of weight — no key of a surviving host moves.
func FuzzRingHashIsConsistentAndBounded(f *testing.F) {
	f.Add([]byte{}, uint32(0), uint8(0), uint16(0), uint16(1024), uint8(0), []byte{})
	f.Add([]byte{1}, uint32(0), uint8(0), uint16(0), uint16(1024), uint8(0), []byte{1, 2, 3, 4, 5, 6, 7, 8})
	f.Add([]byte{1, 1, 1, 1, 1}, uint32(0), uint8(3), uint16(64), uint16(4096), uint8(4), []byte("user-1..user-2..user-3.."))
	f.Add([]byte{0, 3, 2, 1}, uint32(0), uint8(1), uint16(100), uint16(8000), uint8(1), []byte("0123456789abcdef"))
	f.Add([]byte{254, 1, 2}, uint32(1<<31), uint8(2), uint16(0), uint16(2048), uint8(0), []byte("hugeweight......"))
	f.Add([]byte{255, 255, 0}, uint32(0), uint8(9), uint16(8192), uint16(300), uint8(2), []byte{})
	f.Fuzz(func(t *testing.T, spec []byte, huge uint32, salt uint8, minRing, maxRing uint16, removed uint8, keyBytes []byte) {
		hs := fuzzHosts(spec, huge, salt)
		if len(hs) == 0 {
			if h := New(RingHash, nil, Options{}).Pick(Request{Hash: 1, HasHash: true}); h != nil {
				t.Fatalf("picked %v from no hosts", h.Addr)
			}
			return
		}
		tp := newTape(keyBytes)
		o := Options{Rand: tp.next, MinRingSize: int(minRing % 8192)}
		maxSize := 64 + uint64(maxRing%8192) // small, so each build stays fast
		r := newRingMax(hs, o, maxSize)

		n, T := uint64(len(hs)), totalWeight(hs)
		minSize := uint64(o.MinRingSize)
		if minSize == 0 {
			minSize = 1024 // documented default
		}
		L := uint64(len(r.points))
		if L > maxSize+n {
			t.Fatalf("ring has %d points, more than its maximum %d plus one per host (%d)", L, maxSize, n)
		}
		if L+n < min(minSize, maxSize) {
			t.Fatalf("ring has %d points, fewer than min(MinRingSize %d, max %d) less one per host", L, minSize, maxSize)
		}
		if !slices.IsSortedFunc(r.points, func(a, b ringPoint) int {
			if a.hash < b.hash {
				return -1
			}
			if a.hash > b.hash {
				return 1
			}
			return 0
		}) {
			t.Fatal("ring points are not sorted by hash")
		}
		count := map[*Host]uint64{}
		for _, pt := range r.points {
			if !slices.Contains(hs, pt.host) {
				t.Fatalf("ring point owned by a host outside the set: %v", pt.host)
			}
			count[pt.host]++
		}
		for _, h := range hs {
			c := count[h]
			if c == 0 {
				t.Fatalf("host %s (weight %d) has no point on the ring", h.Addr, h.Weight)
			}
			// |c*T - w*L| <= (n+1)*T, i.e. the share c/L is within (n+1)/L of w/T;
			// exact (zero) when no scaling to the maximum was needed.
			a := new(big.Int).Mul(new(big.Int).SetUint64(c), new(big.Int).SetUint64(T))
			b := new(big.Int).Mul(new(big.Int).SetUint64(docWeight(h)), new(big.Int).SetUint64(L))
			d := new(big.Int).Abs(a.Sub(a, b))
			if d.Cmp(new(big.Int).Mul(new(big.Int).SetUint64(n+1), new(big.Int).SetUint64(T))) > 0 {
				t.Fatalf("host %s (weight %d of %d) has %d of %d points, out of proportion", h.Addr, h.Weight, T, c, L)
			}
		}

		keys := keysFrom(keyBytes)
		for i := range min(len(r.points), 8) {
			pt := r.points[i*len(r.points)/8].hash
			keys = append(keys, pt, pt+1) // a key on a point belongs to that point
		}
		for i := range 64 {
			keys = append(keys, HashString("k"+strconv.Itoa(i)))
		}
		again := newRingMax(hs, o, maxSize)
		reversed := slices.Clone(hs)
		slices.Reverse(reversed)
		rev := newRingMax(reversed, o, maxSize)
		for _, k := range keys {
			req := Request{Hash: k, HasHash: true}
			h := r.Pick(req)
			if want := ringOwner(r, k); h != want {
				t.Fatalf("key %#x picked %v, want the owner of the next point %s", k, h, want.Addr)
			}
			if again.Pick(req) != h || rev.Pick(req) != h {
				t.Fatalf("key %#x maps differently on a rebuilt or reordered ring", k)
			}
		}
		if h := r.Pick(Request{}); !slices.Contains(hs, h) {
			t.Fatalf("keyless pick returned %v, not one of the hosts", h)
		}

		if n < 2 {
			return
		}
		gone := hs[int(removed)%len(hs)]
		rest := slices.DeleteFunc(slices.Clone(hs), func(h *Host) bool { return h == gone })
		per := uint64(1) // the documented points per unit of weight
		for per*T < minSize {
			per <<= 1
		}
		if per*T > maxSize || per*(T-docWeight(gone)) < minSize {
			return // scaled, or the survivors' point count changes: keys may move
		}
		after := newRingMax(rest, o, maxSize)
		for _, k := range keys {
			req := Request{Hash: k, HasHash: true}
			if b := r.Pick(req); b != gone && after.Pick(req) != b {
				t.Fatalf("removing %s moved key %#x from surviving host %s to %s", gone.Addr, k, b.Addr, after.Pick(req).Addr)
			}
		}
	})
}

// checkMaglevTable checks a Maglev table over hs: every slot holds one of
// the hosts, and each host's slot count is exactly what the documented
// weighted turn rule gives — in round r a host fills one more slot while it
// holds fewer than r*w/maxW — for some last round R and some host at which
// that round stopped, hosts taking turns in address order.
func checkMaglevTable(t *testing.T, hs, table []*Host) {
	t.Helper()
	hs = slices.SortedFunc(slices.Values(hs), func(a, b *Host) int { return strings.Compare(a.Addr, b.Addr) })
	count := map[*Host]uint64{}
	for i, h := range table {
		if !slices.Contains(hs, h) {
			t.Fatalf("slot %d holds %v, not one of the hosts", i, h)
		}
		count[h]++
	}
	var maxW, rounds uint64
	for _, h := range hs {
		maxW = max(maxW, docWeight(h))
	}
	for _, h := range hs {
		if docWeight(h) == maxW {
			rounds = max(rounds, count[h]) // a heaviest host takes every turn
		}
	}
	// The last round R is rounds or rounds+1; hosts before the stop point
	// have ceil(R*w/maxW) slots, the rest ceil((R-1)*w/maxW).
	fits := func(R uint64) bool {
		stopped := false
		for _, h := range hs {
			c, w := count[h], docWeight(h)
			full, short := ceilDiv(R*w, maxW), ceilDiv((R-1)*w, maxW)
			switch {
			case !stopped && c == full:
			case c == short:
				stopped = true
			default:
				return false
			}
		}
		return true
	}
	if !fits(rounds+1) && (rounds == 0 || !fits(rounds)) {
		got := make([]string, len(hs))
		for i, h := range hs {
			got[i] = fmt.Sprintf("w%d:%d", h.Weight, count[h])
		}
		t.Fatalf("slot counts %v (table %d) do not follow the weighted turn rule", got, len(table))
	}
}

// maglevPrimes are table sizes for the fuzzer: the permutation needs a prime,
// and small ones keep an iteration well under a millisecond (a 65537-slot
// build takes ~5 ms; TestMaglevFullTableFollowsWeightedTurns covers it).
var maglevPrimes = []uint64{2, 3, 5, 13, 101, 251, 1021, 4099}

// FuzzMaglevFollowsWeightedTurns checks the Maglev table (checkMaglevTable),
// that it is the same when rebuilt or built from the hosts in another order, and that Pick reads slot key mod size.
// Maglev does not strictly bound how many keys of surviving hosts move when a
// host goes away, so that is not asserted.
func FuzzMaglevFollowsWeightedTurns(f *testing.F) {
	f.Add([]byte{}, uint32(0), uint8(0), uint8(0), []byte{})
	f.Add([]byte{1}, uint32(0), uint8(0), uint8(4), []byte{1})
	f.Add([]byte{1, 1, 1, 1, 1}, uint32(0), uint8(0), uint8(7), []byte("abcdefgh"))
	f.Add([]byte{1, 2, 3, 4}, uint32(0), uint8(1), uint8(6), []byte("12345678abcdefgh"))
	f.Add([]byte{0, 3, 0, 9}, uint32(0), uint8(2), uint8(5), []byte{})
	f.Add([]byte{254, 1, 255}, uint32(3), uint8(3), uint8(7), []byte{9, 9, 9, 9, 9, 9, 9, 9})
	f.Add([]byte{1, 1, 5}, uint32(0), uint8(4), uint8(0), []byte{})
	f.Fuzz(func(t *testing.T, spec []byte, huge uint32, salt, size uint8, keyBytes []byte) {
		hs := fuzzHosts(spec, huge, salt)
		if len(hs) == 0 {
			if h := New(Maglev, nil, Options{}).Pick(Request{Hash: 1, HasHash: true}); h != nil {
				t.Fatalf("picked %v from no hosts", h.Addr)
			}
			return
		}
		m := maglevPrimes[int(size)%len(maglevPrimes)]
		tp := newTape(keyBytes)
		o := Options{Rand: tp.next}
		g := newMaglevSize(hs, o, m)
		if uint64(len(g.table)) != m {
			t.Fatalf("table has %d slots, want %d", len(g.table), m)
		}
		checkMaglevTable(t, hs, g.table)
		again := newMaglevSize(hs, o, m)
		reversed := slices.Clone(hs)
		slices.Reverse(reversed)
		reordered := newMaglevSize(reversed, o, m)
		for i := range g.table {
			if again.table[i] != g.table[i] {
				t.Fatalf("rebuilt table differs at slot %d", i)
			}
			if reordered.table[i] != g.table[i] {
				t.Fatalf("the table built from the hosts in reverse order differs at slot %d: sidecars given the endpoints in another order would send a key elsewhere", i)
			}
		}
		for _, k := range keysFrom(keyBytes) {
			if h := g.Pick(Request{Hash: k, HasHash: true}); h != g.table[k%m] {
				t.Fatalf("key %#x picked %v, want slot %d's %s", k, h, k%m, g.table[k%m].Addr)
			}
		}
		tp.log = tp.log[:0]
		if h := g.Pick(Request{}); len(tp.log) != 1 || h != g.table[tp.log[0]%m] {
			t.Fatalf("keyless pick %v does not read the slot of its random key", h)
		}
	})
}

// TestMaglevFullTableFollowsWeightedTurns runs the fuzz invariant on the real
// 65537-slot table, which is too slow to build in every fuzz iteration.
func TestMaglevFullTableFollowsWeightedTurns(t *testing.T) {
	tests := []struct {
		name    string
		weights []byte
		huge    uint32
	}{
		{"one host", []byte{1}, 0},
		{"equal", []byte{1, 1, 1, 1, 1}, 0},
		{"weighted 1:2:3:4", []byte{1, 2, 3, 4}, 0},
		{"zero weights count as one", []byte{0, 0, 2}, 0},
		{"uint32 max beside weight 1", []byte{255, 1, 1}, 0},
		{"sixteen mixed", []byte{0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 254, 255, 7}, 1 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := fuzzHosts(tt.weights, tt.huge, 0)
			g := New(Maglev, hs, Options{}).(*maglev)
			if len(g.table) != maglevTableSize {
				t.Fatalf("table has %d slots, want %d", len(g.table), maglevTableSize)
			}
			checkMaglevTable(t, hs, g.table)
		})
	}
}

// FuzzLocalityFillsPrioritiesInOrder checks priority spill-over against
// Envoy's priority load computed exactly: level i is healthy to
// h_i = min(1, op*available/total); levels take min(h_i, what is left) in
// priority order; if the h_i sum to less than 1 the loads are h_i/sum. For a
// random number x in [0, 2^20), the pick must come from the level whose
// cumulative load interval holds x/2^20 (x near a boundary is skipped:
// shares are rounded to 1/2^20). No available host means nil.
func FuzzLocalityFillsPrioritiesInOrder(f *testing.F) {
	f.Add([]byte{}, uint16(0), []byte{})
	f.Add([]byte{10, 10, 2, 2}, uint16(0), []byte{1, 2, 3})
	f.Add([]byte{10, 8, 2, 2}, uint16(0), []byte{})
	f.Add([]byte{10, 5, 2, 2}, uint16(0), []byte{0xff, 0xff, 0x0f, 0x00, 0x00, 0x08})
	f.Add([]byte{10, 0, 2, 2}, uint16(0), []byte{})
	f.Add([]byte{4, 1, 0, 0, 6, 1, 3, 0}, uint16(0), []byte{})
	f.Add([]byte{4, 1, 5, 1, 8, 2}, uint16(200), []byte{})
	f.Add([]byte{3, 0, 2, 0}, uint16(140), []byte{})
	f.Add([]byte{20, 7, 9, 9, 1, 1}, uint16(50), []byte{7, 7, 7})
	f.Fuzz(func(t *testing.T, spec []byte, opPct uint16, xs []byte) {
		var levels []Level
		for i := 0; i+1 < len(spec) && len(levels) < 4; i += 2 {
			total := int(spec[i] % 64)
			avail := int(spec[i+1]) % (total + 1)
			lv := Level{Total: total}
			for j := range avail {
				lv.Available = append(lv.Available, &Host{Addr: fmt.Sprintf("p%d-%d:80", len(levels), j)})
			}
			levels = append(levels, lv)
		}
		pct := int64(opPct % 1000)
		op := float64(pct) / 100
		opRat := big.NewRat(pct, 100)
		if pct == 0 {
			opRat = big.NewRat(7, 5) // 0 means the documented default 1.4
		}

		var x uint64
		p := NewLocality(RoundRobin, levels, op, Options{Rand: func() uint64 { return x }})
		anyAvail := slices.ContainsFunc(levels, func(lv Level) bool { return len(lv.Available) > 0 })
		if !anyAvail {
			if h := p.Pick(Request{}); h != nil {
				t.Fatalf("picked %v with no available host", h.Addr)
			}
			return
		}

		// Expected loads, exactly.
		one := big.NewRat(1, 1)
		health := make([]*big.Rat, len(levels))
		sum, left := new(big.Rat), new(big.Rat).Set(one)
		load := make([]*big.Rat, len(levels))
		for i, lv := range levels {
			health[i] = new(big.Rat)
			if lv.Total > 0 {
				health[i].Mul(opRat, big.NewRat(int64(len(lv.Available)), int64(lv.Total)))
				if health[i].Cmp(one) > 0 {
					health[i].Set(one)
				}
			}
			sum.Add(sum, health[i])
			load[i] = new(big.Rat).Set(health[i])
			if load[i].Cmp(left) > 0 {
				load[i].Set(left)
			}
			left.Sub(left, load[i])
		}
		margin := 2.0
		if sum.Cmp(one) < 0 {
			for i := range load {
				load[i].Quo(health[i], sum)
			}
		}
		const scale = 1 << 20
		bounds := make([]float64, len(levels)) // cumulative upper bounds, in units of 1/2^20
		cum := new(big.Rat)
		for i := range load {
			cum.Add(cum, load[i])
			bounds[i], _ = new(big.Rat).Mul(cum, big.NewRat(scale, 1)).Float64()
		}

		samples := []uint64{0, scale - 1, scale / 2}
		for _, b := range bounds {
			for _, d := range []float64{-margin - 1, -margin, margin, margin + 1} {
				if v := math.Floor(b + d); v >= 0 && v < scale {
					samples = append(samples, uint64(v))
				}
			}
		}
		for i := 0; i+3 <= len(xs) && len(samples) < 64; i += 3 {
			samples = append(samples, uint64(xs[i])|uint64(xs[i+1])<<8|uint64(xs[i+2])<<16)
		}
	sample:
		for _, s := range samples {
			x = s
			xf := float64(s % scale)
			want := -1
			lo := 0.0
			for i, b := range bounds {
				if math.Abs(xf-lo) < margin || math.Abs(xf-b) < margin {
					continue sample // too close to a rounded share boundary
				}
				if want < 0 && xf < b {
					want = i
				}
				lo = b
			}
			if want < 0 {
				t.Fatalf("x=%d lies beyond every expected share %v", s, bounds)
			}
			h := p.Pick(Request{})
			if !slices.Contains(levels[want].Available, h) {
				where := -1
				for i, lv := range levels {
					if slices.Contains(lv.Available, h) {
						where = i
					}
				}
				t.Fatalf("x=%d/2^20 should go to priority %d (cumulative loads %v of 2^20), went to priority %d (%v)", s%scale, want, bounds, where, h)
			}
		}
	})
}

// FuzzKeyHashesFirstMatchingPolicy checks request hashing: a header policy
// keys on the header's first value, a missing header falls through to the
// next policy, the source IP key ignores the port, and no match gives (0, false).
func FuzzKeyHashesFirstMatchingPolicy(f *testing.F) {
	f.Add("alice", true, []byte{192, 0, 2, 7}, uint16(5555))
	f.Add("", true, []byte{}, uint16(0))
	f.Add("bob", false, []byte{192, 0, 2, 7}, uint16(1))
	f.Add("x", false, []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, uint16(443))
	f.Add("second", true, []byte{}, uint16(80))
	f.Fuzz(func(t *testing.T, value string, hasHeader bool, ip []byte, port uint16) {
		r := &http.Request{Header: http.Header{}}
		if hasHeader {
			r.Header["X-User"] = []string{value, "second"}
		}
		var host string
		switch {
		case len(ip) >= 16:
			host = net.IP(ip[:16]).String()
		case len(ip) >= 4:
			host = net.IP(ip[:4]).String()
		}
		if host != "" {
			r.RemoteAddr = net.JoinHostPort(host, strconv.Itoa(int(port)))
		}

		if k, ok := Key(nil, r); k != 0 || ok {
			t.Fatalf("no policies gave (%d, %v), want (0, false)", k, ok)
		}
		k, ok := Key([]HashPolicy{{}, {Header: "x-user"}}, r)
		if ok != hasHeader || (ok && k != HashString(value)) || (!ok && k != 0) {
			t.Fatalf("header policy gave (%d, %v), want hash of the first value %q: %v", k, ok, value, hasHeader)
		}
		k, ok = Key([]HashPolicy{{Header: "x-user"}, {SourceIP: true}}, r)
		switch {
		case hasHeader:
			if !ok || k != HashString(value) {
				t.Fatalf("header before source IP gave (%d, %v), want the header's hash", k, ok)
			}
		case host != "":
			if !ok || k != HashString(host) {
				t.Fatalf("missing header fell through to (%d, %v), want hash of source IP %q", k, ok, host)
			}
			r2 := &http.Request{Header: r.Header, RemoteAddr: net.JoinHostPort(host, strconv.Itoa(int(port)+1))}
			if k2, _ := Key([]HashPolicy{{SourceIP: true}}, r2); k2 != k {
				t.Fatalf("source IP key changed with the port (%s vs %s)", r.RemoteAddr, r2.RemoteAddr)
			}
		default:
			if ok || k != 0 {
				t.Fatalf("nothing to hash gave (%d, %v), want (0, false)", k, ok)
			}
		}
	})
}
