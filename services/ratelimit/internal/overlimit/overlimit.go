// Package overlimit remembers keys known to be over their limit until the
// moment at least one hit fits again, so a client hammering a refused key
// costs no Redis traffic. The moment comes from the store's own answer
// (window end, or GCRA retry time), and counters only move towards "more
// used" until then, so a remembered refusal is exactly what Redis would say.
package overlimit

import (
	"hash/maphash"
	"sync"
)

const shards = 32

// maxPerShard bounds memory: a full shard first drops expired keys, then,
// if still full, everything it holds (the cost is a few extra Redis calls).
const maxPerShard = 1 << 14

// Cache maps key → Unix µs until which the key is over its limit.
type Cache struct {
	seed   maphash.Seed
	shards [shards]shard
}

type shard struct {
	mu    sync.RWMutex
	until map[string]int64
}

// New returns an empty cache.
func New() *Cache {
	c := &Cache{seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].until = map[string]int64{}
	}
	return c
}

func (c *Cache) shard(key string) *shard {
	return &c.shards[maphash.String(c.seed, key)%shards]
}

// Until returns when key stops being over its limit, if it is over at now.
func (c *Cache) Until(key string, now int64) (int64, bool) {
	s := c.shard(key)
	s.mu.RLock()
	until, ok := s.until[key]
	s.mu.RUnlock()
	if !ok || until <= now {
		return 0, false
	}
	return until, true
}

// Add remembers that key is over its limit until until (Unix µs).
func (c *Cache) Add(key string, until, now int64) {
	if until <= now {
		return
	}
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.until) >= maxPerShard {
		for k, u := range s.until {
			if u <= now {
				delete(s.until, k)
			}
		}
		if len(s.until) >= maxPerShard {
			clear(s.until)
		}
	}
	if until > s.until[key] {
		s.until[key] = until
	}
}

// Clear forgets everything, e.g. when the limits change.
func (c *Cache) Clear() {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		clear(s.until)
		s.mu.Unlock()
	}
}

// Len is the number of remembered keys, expired ones included.
func (c *Cache) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.until)
		s.mu.RUnlock()
	}
	return n
}
