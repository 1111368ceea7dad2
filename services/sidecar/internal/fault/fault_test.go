package fault

import (
	"math"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"
)

func TestShares(t *testing.T) {
	c := Config{DelayPerMillion: 250_000, Delay: 5 * time.Millisecond, AbortPerMillion: 100_000, AbortStatus: 503}
	r := rand.New(rand.NewPCG(3, 4))
	n, delayed, aborted := 100_000, 0, 0
	for range n {
		d := c.Decide(nil, r.Uint32)
		if d.Delay == 5*time.Millisecond {
			delayed++
		}
		if d.AbortStatus == 503 {
			aborted++
		}
	}
	check := func(name string, got int, p float64) {
		sd := math.Sqrt(float64(n) * p * (1 - p))
		if math.Abs(float64(got)-p*float64(n)) > 5*sd {
			t.Errorf("%s: %d of %d, want ≈%.0f", name, got, n, p*float64(n))
		}
	}
	check("delay", delayed, 0.25)
	check("abort", aborted, 0.10)
}

func TestHeaderControlled(t *testing.T) {
	all := Config{DelayPerMillion: 1_000_000, DelayFromHeader: true, AbortPerMillion: 1_000_000, AbortFromHeader: true}
	tests := []struct {
		name      string
		headers   map[string]string
		wantDelay time.Duration
		wantAbort int
	}{
		{"both headers", map[string]string{HeaderDelay: "20", HeaderAbort: "418"}, 20 * time.Millisecond, 418},
		{"no headers: nothing", nil, 0, 0},
		{"garbage ignored", map[string]string{HeaderDelay: "-1", HeaderAbort: "abc"}, 0, 0},
		{"out of range status ignored", map[string]string{HeaderAbort: "700"}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.headers {
				h.Set(k, v)
			}
			d := all.Decide(h, nil)
			if d.Delay != tt.wantDelay || d.AbortStatus != tt.wantAbort {
				t.Fatalf("got %+v", d)
			}
		})
	}
}

func FuzzDecide(f *testing.F) {
	f.Add("10", "503")
	f.Fuzz(func(t *testing.T, delay, abort string) {
		c := Config{DelayPerMillion: 1_000_000, DelayFromHeader: true, AbortPerMillion: 1_000_000, AbortFromHeader: true}
		h := http.Header{}
		h.Set(HeaderDelay, delay)
		h.Set(HeaderAbort, abort)
		d := c.Decide(h, nil)
		if d.Delay < 0 || (d.AbortStatus != 0 && (d.AbortStatus < 200 || d.AbortStatus >= 600)) {
			t.Fatalf("bad decision %+v", d)
		}
	})
}
