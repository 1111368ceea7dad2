package store

import (
	"context"
	"sync"
	"time"

	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/quota"
)

// Memory keeps state in this process only: each replica limits on its own.
// It is meant for development and for tests of the code above it.
type Memory struct {
	mu        sync.Mutex
	state     map[string]quota.Write
	lastSweep int64
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-process store.
func NewMemory() *Memory {
	return &Memory{state: map[string]quota.Write{}}
}

// Decide implements Store.
func (m *Memory) Decide(_ context.Context, now time.Time, checks []quota.Check, commit bool) (Result, error) {
	us := now.UnixMicro()
	ps := params(checks, us)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(us)
	stored := make([]int64, len(checks))
	for i, c := range checks {
		if w, ok := m.state[c.Key]; ok && w.ExpireAt > us {
			stored[i] = w.Value
		}
	}
	allowed, outs, writes := quota.Decide(ps, us, stored)
	for i, w := range writes {
		if commit && w.ExpireAt != 0 {
			m.state[checks[i].Key] = w
		}
	}
	return Result{Allowed: allowed, Outcomes: outs}, nil
}

// sweep forgets expired keys at most once a second.
func (m *Memory) sweep(now int64) {
	if now-m.lastSweep < int64(time.Second/time.Microsecond) {
		return
	}
	m.lastSweep = now
	for k, w := range m.state {
		if w.ExpireAt <= now {
			delete(m.state, k)
		}
	}
}

// Len is how many keys are held.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.state)
}

// Ping implements Store; memory is always there.
func (m *Memory) Ping(context.Context) error { return nil }
