// Package tokenbucket is a local rate limiter with Envoy's local_ratelimit
// token bucket semantics: MaxTokens capacity, TokensPerFill added every
// FillInterval (in whole fills, not continuously). Time is injected.
package tokenbucket

import (
	"sync"
	"time"
)

// Bucket is a token bucket, safe for concurrent use.
type Bucket struct {
	max, perFill int64
	interval     time.Duration
	now          func() time.Time

	mu       sync.Mutex
	tokens   int64
	lastFill time.Time
}

// New returns a full bucket. now nil means time.Now.
func New(maxTokens, tokensPerFill int64, fillInterval time.Duration, now func() time.Time) *Bucket {
	if now == nil {
		now = time.Now
	}
	return &Bucket{max: maxTokens, perFill: tokensPerFill, interval: fillInterval, now: now, tokens: maxTokens, lastFill: now()}
}

// Allow takes one token, reporting false when the bucket is empty.
func (b *Bucket) Allow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if now := b.now(); b.interval > 0 {
		if fills := int64(now.Sub(b.lastFill) / b.interval); fills > 0 {
			// Saturate before multiplying: after a long idle with a tiny
			// interval, fills×perFill overflows int64.
			if room := b.max - b.tokens; b.perFill > 0 && fills > room/b.perFill {
				b.tokens = b.max
			} else {
				b.tokens = min(b.max, b.tokens+fills*b.perFill)
			}
			b.lastFill = b.lastFill.Add(time.Duration(fills) * b.interval)
		}
	}
	if b.tokens <= 0 {
		return false
	}
	b.tokens--
	return true
}
