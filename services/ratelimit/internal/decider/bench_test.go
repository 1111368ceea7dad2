package decider

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/limits"
	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/store"
)

func benchDecider(b *testing.B) *Decider {
	b.Helper()
	rules, err := limits.Parse("rules.yaml", []byte(rulesYAML))
	if err != nil {
		b.Fatal(err)
	}
	// A fixed clock keeps every iteration in one window.
	now := time.Now()
	return New(Config{Timeout: time.Second, Clock: func() time.Time { return now }, Log: slog.New(slog.DiscardHandler),
		Metrics: NewMetrics(prometheus.NewRegistry())}, store.NewMemory(), rules)
}

func benchRequests(n int, kv ...string) []Request {
	out := make([]Request, n)
	for i := range out {
		es := []limits.Entry{}
		for j := 0; j+1 < len(kv); j += 2 {
			es = append(es, limits.Entry{Key: kv[j], Value: kv[j+1]})
		}
		es[len(es)-1].Value = fmt.Sprint(es[len(es)-1].Value, i)
		out[i] = Request{Domain: "api", Descriptors: []Descriptor{{Entries: es}}}
	}
	return out
}

// BenchmarkDecide is the hot path above the store: matching, keys, the
// known-over cache, statuses, headers and metrics, with the in-memory store
// (the Redis round trip is measured by the store benchmarks and the load test).
func BenchmarkDecide(b *testing.B) {
	d := benchDecider(b)
	reqs := benchRequests(1000, "plan", "pro", "user", "u")
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if _, err := d.Decide(ctx, reqs[i%len(reqs)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkDecideKnownOver is a refused key answered from the cache.
func BenchmarkDecideKnownOver(b *testing.B) {
	d := benchDecider(b)
	ctx := context.Background()
	req := Request{Domain: "api", Descriptors: []Descriptor{{Entries: []limits.Entry{{Key: "path", Value: "/seed"}}}}}
	for range 11 {
		if _, err := d.Decide(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		resp, err := d.Decide(ctx, req)
		if err != nil || resp.Source != FromCache {
			b.Fatalf("%v %v", resp.Source, err)
		}
	}
}

// BenchmarkDecideParallel runs the hot path from many goroutines.
func BenchmarkDecideParallel(b *testing.B) {
	d := benchDecider(b)
	reqs := benchRequests(1000, "plan", "free", "user", "u")
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := d.Decide(ctx, reqs[i%len(reqs)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}
