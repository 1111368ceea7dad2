package paired

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestMedianInterval(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	tests := []struct {
		name     string
		v        []time.Duration
		lo, hi   time.Duration
		coverage float64
	}{
		// n = 8: k = 1 covers 1 − 2/256; k = 2 only 1 − 2·9/256 ≈ 93 %.
		{"8 rounds", ms(8, 1, 7, 2, 6, 3, 5, 4), time.Millisecond, 8 * time.Millisecond, 1 - 2.0/256},
		// n = 16: k = 4 covers 1 − 2·697/65536 ≈ 97.9 %; k = 5 ≈ 92.3 %.
		{"16 rounds", ms(16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1), 4 * time.Millisecond, 13 * time.Millisecond, 1 - 2*697.0/65536},
		// n = 3: no k reaches 95 %: the whole range, at 75 %.
		{"3 rounds", ms(3, -1, 2), -time.Millisecond, 3 * time.Millisecond, 0.75},
		{"1 round", ms(5), 5 * time.Millisecond, 5 * time.Millisecond, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lo, hi, coverage := MedianInterval(tc.v, 0.95)
			if lo != tc.lo || hi != tc.hi || math.Abs(coverage-tc.coverage) > 1e-9 {
				t.Fatalf("got [%v, %v] at %.4f, want [%v, %v] at %.4f", lo, hi, coverage, tc.lo, tc.hi, tc.coverage)
			}
		})
	}
}

func TestVerdict(t *testing.T) {
	for _, tc := range []struct {
		lo, hi time.Duration
		want   string
	}{
		{1, 5, "the sidecar pair's is higher"},
		{-5, -1, "the sidecar pair's is lower"},
		{-1, 1, "not distinguishable from 0"},
		{0, 3, "not distinguishable from 0"},
	} {
		if got := Verdict(tc.lo, tc.hi); got != tc.want {
			t.Errorf("[%d, %d]: %q, want %q", tc.lo, tc.hi, got, tc.want)
		}
	}
}

// A report as go test -v prints it (rounds, medians, other lines).
const report = `=== RUN   TestBenchmarkSidecarPair
    bench_test.go:244: 
        target                 round        p50       p90       p99     p99.9 errors  added p50  added p99  vCPU/1k rps switches/req   preempt/1k
        direct                 1        0.649ms   1.134ms   1.308ms   2.655ms      0
        direct                 2        0.649ms   1.128ms   1.292ms   2.534ms      0
        direct                 median   0.649ms   1.131ms   1.300ms   2.594ms      0
        sidecar pair (mTLS)    1        0.939ms   1.539ms   2.099ms   6.310ms      0   +0.290ms   +0.790ms   0.146/0.135   2.7/2.2   1007.2/580.6
        sidecar pair (mTLS)    2        0.881ms   1.463ms   1.839ms   3.612ms      0   +0.231ms   +0.546ms   0.134/0.121   2.7/2.2   966.5/599.0
        nginx pair, 1 worker   1        0.917ms   1.517ms   3.445ms  19.462ms      0   +0.267ms   +2.137ms   0.124/0.119   2.5/2.1   851.6/604.9
        nginx pair, 1 worker   2        0.872ms   1.405ms   1.672ms   4.192ms      0   +0.223ms   +0.379ms   0.114/0.110   2.7/2.1   954.3/577.2
        maximum throughput, 32 concurrent keep-alive clients, 5s:
          direct                    41295 rps
`

func TestReadP99s(t *testing.T) {
	got, err := ReadP99s(strings.NewReader(report))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]time.Duration{
		"direct":               {1308 * time.Microsecond, 1292 * time.Microsecond},
		"sidecar pair (mTLS)":  {2099 * time.Microsecond, 1839 * time.Microsecond},
		"nginx pair, 1 worker": {3445 * time.Microsecond, 1672 * time.Microsecond},
	}
	if len(got) != len(want) {
		t.Fatalf("targets %v, want %v", got, want)
	}
	for name, w := range want {
		g := got[name]
		if len(g) != len(w) {
			t.Fatalf("%s: %v, want %v", name, g, w)
		}
		for i := range w {
			if (g[i] - w[i]).Abs() > time.Microsecond/2 {
				t.Errorf("%s round %d: %v, want %v", name, i+1, g[i], w[i])
			}
		}
	}
	if _, err := ReadP99s(strings.NewReader("        direct                 2        0.649ms   1.128ms   1.292ms   2.534ms      0\n")); err == nil {
		t.Error("a report starting at round 2 was read")
	}
}
