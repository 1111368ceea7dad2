package overlimit

import (
	"fmt"
	"testing"
)

func TestCache(t *testing.T) {
	c := New()
	c.Add("a", 100, 10)
	c.Add("past", 5, 10)
	tests := []struct {
		key  string
		now  int64
		want bool
	}{
		{"a", 10, true},
		{"a", 99, true},
		{"a", 100, false},
		{"past", 10, false},
		{"missing", 10, false},
	}
	for _, tt := range tests {
		if _, got := c.Until(tt.key, tt.now); got != tt.want {
			t.Errorf("Until(%q, %d) = %v, want %v", tt.key, tt.now, got, tt.want)
		}
	}
	c.Add("a", 50, 10) // an earlier moment never shortens a known refusal
	if u, _ := c.Until("a", 10); u != 100 {
		t.Fatalf("until = %d, want 100", u)
	}
	c.Clear()
	if c.Len() != 0 {
		t.Fatal("Clear left keys")
	}
}

func TestCacheBounded(t *testing.T) {
	c := New()
	for i := range shards * maxPerShard * 2 {
		c.Add(fmt.Sprint(i), 1000, 0)
	}
	if n := c.Len(); n > shards*maxPerShard {
		t.Fatalf("len = %d, above the bound %d", n, shards*maxPerShard)
	}
}
