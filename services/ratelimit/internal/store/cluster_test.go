package store

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/limits"
	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/quota"
	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/testutil"
)

// TestRedisCluster runs the store against a real three-node Redis Cluster:
// a UniversalClient with several addresses becomes a cluster client, every
// request with one descriptor (however many limits) answers exactly as the
// Go arithmetic, and a request whose descriptors live in different slots is
// decided without a CROSSSLOT error, each descriptor all-or-nothing.
func TestRedisCluster(t *testing.T) {
	addrs := testutil.StartRedisCluster(t)
	client := NewClient(Options{Addrs: addrs, Timeout: time.Second, PoolSize: 4})
	t.Cleanup(func() { client.Close() })
	if _, ok := client.(*redis.ClusterClient); !ok {
		t.Fatalf("client for %d addresses is %T, want a cluster client", len(addrs), client)
	}
	r := NewRedis(client, 4)
	t.Cleanup(r.Close)
	ctx := context.Background()
	if err := r.Load(ctx); err != nil {
		t.Fatal(err)
	}

	mem := NewMemory()
	times, reqs := randomRequests(7, 1500, time.Now())
	compared := 0
	for i := range reqs {
		if !oneDescriptor(reqs[i]) {
			continue
		}
		want, err := mem.Decide(ctx, times[i], reqs[i], true)
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.Decide(ctx, times[i], reqs[i], true)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("request %d %+v:\ncluster %+v\nmemory  %+v", i, reqs[i], got, want)
		}
		compared++
	}
	if compared < 500 {
		t.Fatalf("only %d single-descriptor requests compared", compared)
	}

	// Two descriptors in (almost certainly) different slots: one with room,
	// one at zero.
	now := time.Now()
	open := limits.Limit{Unit: limits.Minute, RequestsPerUnit: 5, Burst: 5}
	shut := limits.Limit{Unit: limits.Minute, RequestsPerUnit: 0}
	checks := []quota.Check{
		{Key: quota.KeyFor("x", []limits.Entry{{Key: "a", Value: "1"}}, 0, open, now), Limit: open, Hits: 1},
		{Key: quota.KeyFor("x", []limits.Entry{{Key: "b", Value: "2"}}, 0, shut, now), Limit: shut, Hits: 1},
	}
	res, err := r.Decide(ctx, now, checks, true)
	if err != nil {
		t.Fatalf("multi-slot request: %v", err)
	}
	if res.Allowed || res.Outcomes[0].Over || !res.Outcomes[1].Over {
		t.Fatalf("multi-slot request: %+v", res)
	}
	// A restarted script cache (SCRIPT FLUSH on every node) is recovered.
	if err := client.(*redis.ClusterClient).ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		return c.ScriptFlush(ctx).Err()
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Decide(ctx, now, checks, true); err != nil {
		t.Fatalf("after SCRIPT FLUSH: %v", err)
	}
}

func oneDescriptor(cs []quota.Check) bool {
	for _, c := range cs[1:] {
		if hashTag(c.Key) != hashTag(cs[0].Key) {
			return false
		}
	}
	return true
}
