package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/limits"
	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/quota"
)

// BenchmarkRedisDecide is one request (two limits, like the free tier)
// decided by the Lua script on a real redis-server, from 32 goroutines as in
// the load test, so concurrent calls are pipelined.
func BenchmarkRedisDecide(b *testing.B) {
	r, _ := newRedisStore(b)
	ls := []limits.Limit{
		{Unit: limits.Hour, RequestsPerUnit: 1 << 30, Burst: 1 << 30},
		{Unit: limits.Day, RequestsPerUnit: 1 << 30, Burst: 1 << 30},
	}
	now := time.Now()
	reqs := make([][]quota.Check, 1000)
	for i := range reqs {
		es := []limits.Entry{{Key: "user", Value: fmt.Sprint(i)}}
		for j, l := range ls {
			reqs[i] = append(reqs[i], quota.Check{Key: quota.KeyFor("d", es, j, l, now), Limit: l, Hits: 1})
		}
	}
	b.SetParallelism(16) // 32 goroutines on 2 cores
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := r.Decide(context.Background(), now, reqs[i%len(reqs)], true); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkMemoryDecide is the same request on the in-memory store.
func BenchmarkMemoryDecide(b *testing.B) {
	m := NewMemory()
	l := limits.Limit{Unit: limits.Hour, RequestsPerUnit: 1 << 30, Burst: 1 << 30}
	now := time.Now()
	checks := []quota.Check{{Key: quota.KeyFor("d", []limits.Entry{{Key: "user", Value: "1"}}, 0, l, now), Limit: l, Hits: 1}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Decide(context.Background(), now, checks, true); err != nil {
			b.Fatal(err)
		}
	}
}
