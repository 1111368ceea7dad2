package lb

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"testing"
)

func hosts(weights ...uint32) []*Host {
	hs := make([]*Host, len(weights))
	for i, w := range weights {
		hs[i] = &Host{Addr: fmt.Sprintf("10.0.0.%d:80", i+1), Weight: w}
	}
	return hs
}

func seeded() Options {
	r := rand.New(rand.NewPCG(1, 2))
	return Options{Rand: r.Uint64}
}

func counts(p Picker, n int, key func(i int) Request) map[string]int {
	c := map[string]int{}
	for i := range n {
		c[p.Pick(key(i)).Addr]++
	}
	return c
}

func noKey(int) Request { return Request{} }

func TestRoundRobinExact(t *testing.T) {
	tests := []struct {
		name    string
		weights []uint32
		n       int
		want    []int
	}{
		{"equal 3-3-3", []uint32{1, 1, 1}, 9, []int{3, 3, 3}},
		{"zero weight means one", []uint32{0, 0}, 4, []int{2, 2}},
		{"weighted 3:1", []uint32{3, 1}, 8, []int{6, 2}},
		{"weighted 5:1:1", []uint32{5, 1, 1}, 70, []int{50, 10, 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := hosts(tt.weights...)
			c := counts(New(RoundRobin, hs, Options{}), tt.n, noKey)
			for i, h := range hs {
				if c[h.Addr] != tt.want[i] {
					t.Fatalf("host %d got %d picks, want %d (all %v)", i, c[h.Addr], tt.want[i], c)
				}
			}
		})
	}
}

func TestRoundRobinSmooth(t *testing.T) {
	hs := hosts(2, 1)
	p := New(RoundRobin, hs, Options{})
	var seq []string
	for range 6 {
		seq = append(seq, p.Pick(Request{}).Addr[7:8])
	}
	if got := fmt.Sprint(seq); got != "[1 2 1 1 2 1]" {
		t.Fatalf("sequence %s, want interleaved [1 2 1 1 2 1]", got)
	}
}

// within checks that observed counts are within 5 standard deviations of the
// binomial expectation for share w/sum.
func within(t *testing.T, hs []*Host, c map[string]int, n int) {
	t.Helper()
	var sum float64
	for _, h := range hs {
		sum += float64(h.weight())
	}
	for _, h := range hs {
		p := float64(h.weight()) / sum
		mean := p * float64(n)
		sd := math.Sqrt(float64(n) * p * (1 - p))
		if math.Abs(float64(c[h.Addr])-mean) > 5*sd+1 {
			t.Errorf("%s: %d picks, expected %.0f±%.0f", h.Addr, c[h.Addr], mean, 5*sd)
		}
	}
}

func TestWeightedDistributions(t *testing.T) {
	for _, p := range []Policy{Random, RingHash, Maglev, LeastRequest} {
		t.Run(p.String(), func(t *testing.T) {
			hs := hosts(1, 2, 3, 4)
			o := seeded()
			o.MinRingSize = 4096
			pk := New(p, hs, o)
			n := 40000
			var c map[string]int
			if p == LeastRequest {
				// With nothing in flight P2C degenerates to random among
				// equals; weights still matter through active/weight.
				hs = hosts(1, 1, 1, 1)
				pk = New(p, hs, o)
			}
			c = counts(pk, n, noKey)
			if p == RingHash || p == Maglev {
				// Ring shares are approximate; allow 15 % relative error.
				var sum float64
				for _, h := range hs {
					sum += float64(h.weight())
				}
				for _, h := range hs {
					want := float64(n) * float64(h.weight()) / sum
					if math.Abs(float64(c[h.Addr])-want) > 0.15*want {
						t.Errorf("%s got %d, want ≈%.0f", h.Addr, c[h.Addr], want)
					}
				}
				return
			}
			within(t, hs, c, n)
		})
	}
}

func TestLeastRequestPrefersIdle(t *testing.T) {
	hs := hosts(1, 1, 1)
	for range 10 {
		hs[0].Begin()
		hs[1].Begin()
	}
	p := New(LeastRequest, hs, seeded())
	c := counts(p, 1000, noKey)
	// The idle host wins every comparison it is part of: P(sampled) = 1-(2/3)^2.
	if c[hs[2].Addr] < 500 {
		t.Fatalf("idle host got %d of 1000 picks: %v", c[hs[2].Addr], c)
	}
}

func TestConsistentHashStability(t *testing.T) {
	for _, p := range []Policy{RingHash, Maglev} {
		t.Run(p.String(), func(t *testing.T) {
			hs := hosts(1, 1, 1, 1, 1)
			before := New(p, hs, seeded())
			after := New(p, hs[:4], seeded()) // one host removed
			moved, keys := 0, 5000
			for i := range keys {
				k := Request{Hash: HashString(fmt.Sprint("user-", i)), HasHash: true}
				a, b := before.Pick(k), after.Pick(k)
				if a != before.Pick(k) {
					t.Fatal("same key picked different hosts")
				}
				if a != hs[4] && a != b {
					moved++
				}
			}
			// Only keys of the removed host should move (allow a little churn for maglev).
			if float64(moved) > 0.05*float64(keys) {
				t.Fatalf("%d of %d keys on surviving hosts moved", moved, keys)
			}
		})
	}
}

func TestHashKey(t *testing.T) {
	r, _ := http.NewRequest("GET", "http://x/", nil)
	r.Header.Set("x-user", "alice")
	r.AddCookie(&http.Cookie{Name: "session", Value: "s1"})
	r.RemoteAddr = "192.0.2.7:5555"
	tests := []struct {
		name     string
		policies []HashPolicy
		want     string
		ok       bool
	}{
		{"header", []HashPolicy{{Header: "x-user"}}, "alice", true},
		{"missing header falls through to cookie", []HashPolicy{{Header: "x-none"}, {Cookie: "session"}}, "s1", true},
		{"source ip", []HashPolicy{{SourceIP: true}}, "192.0.2.7", true},
		{"nothing matches", []HashPolicy{{Header: "x-none"}}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Key(tt.policies, r)
			if ok != tt.ok || (ok && got != HashString(tt.want)) {
				t.Fatalf("Key = %d,%v want hash(%q),%v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestLocalitySpillOver(t *testing.T) {
	near := hosts(1, 1, 1, 1, 1, 1, 1, 1, 1, 1)
	far := []*Host{{Addr: "far-1:80"}, {Addr: "far-2:80"}}
	tests := []struct {
		name         string
		nearUp       int
		wantFarShare float64
	}{
		{"all near healthy: no spill", 10, 0},
		{"80% near healthy: 1.4*0.8 ≥ 1, no spill", 8, 0},
		{"50% near healthy: 30% spills", 5, 0.30},
		{"no near host: all far", 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewLocality(RoundRobin, []Level{
				{Total: len(near), Available: near[:tt.nearUp]},
				{Total: len(far), Available: far},
			}, 0, seeded())
			n, farN := 20000, 0
			for range n {
				if h := p.Pick(Request{}); h == far[0] || h == far[1] {
					farN++
				}
			}
			if got := float64(farN) / float64(n); math.Abs(got-tt.wantFarShare) > 0.02 {
				t.Fatalf("far share %.3f, want %.2f", got, tt.wantFarShare)
			}
		})
	}
}

func TestEmpty(t *testing.T) {
	for _, p := range []Policy{RoundRobin, LeastRequest, RingHash, Maglev, Random} {
		if h := New(p, nil, Options{}).Pick(Request{}); h != nil {
			t.Fatalf("%v picked %v from no hosts", p, h)
		}
	}
	if h := NewLocality(RoundRobin, []Level{{Total: 3}}, 0, Options{}).Pick(Request{}); h != nil {
		t.Fatal("locality picked from no available hosts")
	}
}

func BenchmarkPick(b *testing.B) {
	hs := hosts(1, 1, 1, 1, 1, 1, 1, 1)
	for _, p := range []Policy{RoundRobin, LeastRequest, RingHash, Maglev, Random} {
		pk := New(p, hs, Options{})
		b.Run(p.String(), func(b *testing.B) {
			req := Request{Hash: 12345, HasHash: true}
			for b.Loop() {
				pk.Pick(req)
			}
		})
	}
}
