// Package paired is the statistics of the sidecar pair benchmark's
// comparison with its references: per round, the sidecar pair's p99 minus
// a reference's in the same round (what the machine did to both cancels
// out), summarised by the median of those differences and a
// distribution-free confidence interval for it. TestBenchmarkSidecarPair
// reports one run with it; pairpool pools the rounds of several runs.
package paired

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// Median is the median of v (the mean of the middle two for an even count).
func Median[T int | float64 | time.Duration](v []T) T {
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// MedianInterval is a distribution-free confidence interval for the
// median of v: the k-th smallest and k-th largest values, for the largest
// k whose coverage, 1 − 2·P(Binomial(n, ½) < k), is at least level (k = 1,
// the whole range, when no k reaches it). It needs no assumption about
// how the rounds' figures are distributed, only that rounds are
// independent.
func MedianInterval(v []time.Duration, level float64) (lo, hi time.Duration, coverage float64) {
	sorted := slices.Clone(v)
	slices.Sort(sorted)
	n := len(sorted)
	// below[k] = P(X < k) for X ~ Binomial(n, ½).
	below := make([]float64, n+1)
	p := math.Pow(0.5, float64(n)) // P(X = 0)
	for k := 1; k <= n; k++ {
		below[k] = below[k-1] + p
		p = p * float64(n-k+1) / float64(k)
	}
	k := 1
	for k+1 <= (n+1)/2 && 1-2*below[k+1] >= level {
		k++
	}
	return sorted[k-1], sorted[n-k], 1 - 2*below[k]
}

// Verdict says what an interval of the sidecar pair's p99 minus a
// reference's shows.
func Verdict(lo, hi time.Duration) string {
	switch {
	case lo > 0:
		return "the sidecar pair's is higher"
	case hi < 0:
		return "the sidecar pair's is lower"
	}
	return "not distinguishable from 0"
}

// Summary is the paired comparison over a set of rounds.
type Summary struct {
	Rounds, Higher int
	Median, Lo, Hi time.Duration
	Coverage       float64
}

// Summarize takes the per-round differences (sidecar pair minus a
// reference) and gives the median with its interval at level.
func Summarize(diffs []time.Duration, level float64) Summary {
	s := Summary{Rounds: len(diffs), Median: Median(diffs)}
	for _, d := range diffs {
		if d > 0 {
			s.Higher++
		}
	}
	s.Lo, s.Hi, s.Coverage = MedianInterval(diffs, level)
	return s
}

func (s Summary) String() string {
	return fmt.Sprintf("median %s, higher in %d of %d rounds; %.0f %% interval of the median [%s, %s]: %s",
		SignedMs(s.Median), s.Higher, s.Rounds, 100*s.Coverage, SignedMs(s.Lo), SignedMs(s.Hi), Verdict(s.Lo, s.Hi))
}

// Ms writes d in milliseconds, as the report does.
func Ms(d time.Duration) string { return fmt.Sprintf("%.3fms", float64(d.Microseconds())/1000) }

// SignedMs is Ms with a sign.
func SignedMs(d time.Duration) string {
	if d < 0 {
		return "-" + Ms(-d)
	}
	return "+" + Ms(d)
}

// roundRow is a row of the report's table for one round of one target:
// the target, the round number, p50, p90, p99 (then more columns).
var roundRow = regexp.MustCompile(`^\s*(\S.*?)\s+(\d+)\s+(\d+\.\d+)ms\s+(\d+\.\d+)ms\s+(\d+\.\d+)ms\s`)

// ReadP99s reads each target's p99 per round from a report of
// TestBenchmarkSidecarPair (or the go test -v output holding it), in
// round order.
func ReadP99s(r io.Reader) (map[string][]time.Duration, error) {
	out := map[string][]time.Duration{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		m := roundRow.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		round, _ := strconv.Atoi(m[2])
		if round != len(out[m[1]])+1 {
			return nil, fmt.Errorf("%s: round %d after %d rounds", m[1], round, len(out[m[1]]))
		}
		ms, err := strconv.ParseFloat(m[5], 64)
		if err != nil {
			return nil, fmt.Errorf("%s round %d: p99 %q", m[1], round, m[5])
		}
		out[m[1]] = append(out[m[1]], time.Duration(ms*float64(time.Millisecond)))
	}
	return out, sc.Err()
}
