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
