package tokenbucket

import (
	"testing"
	"time"
)

func TestBucket(t *testing.T) {
	now := time.Unix(0, 0)
	clk := func() time.Time { return now }
	b := New(3, 2, time.Second, clk)
	steps := []struct {
		advance time.Duration
		allows  int
	}{
		{0, 3},                       // starts full
		{999 * time.Millisecond, 0},  // no partial fills
		{time.Millisecond, 2},        // one fill of 2
		{10 * time.Second, 3},        // capped at max
		{1500 * time.Millisecond, 2}, // one fill; half an interval carried
		{500 * time.Millisecond, 2},  // the carried half completes a fill
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		got := 0
		for b.Allow() {
			got++
		}
		if got != s.allows {
			t.Fatalf("step %d: %d allowed, want %d", i, got, s.allows)
		}
	}
}

// fills×perFill once overflowed int64 after a long idle with a 1 ns
// interval, leaving the bucket negative and refusing everything.
func TestLongIdleRefillsToMaxWithoutOverflow(t *testing.T) {
	now := time.Unix(0, 0)
	b := New(5, 89, time.Nanosecond, func() time.Time { return now })
	for b.Allow() {
	}
	now = now.Add(30768 * time.Hour) // 1.1e17 fills of 89
	got := 0
	for b.Allow() {
		got++
	}
	if got != 5 {
		t.Fatalf("%d allowed after a long idle, want max 5", got)
	}
}
