package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/limits"
	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/quota"
	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/testutil"
)

func newRedisStore(t testing.TB) (*Redis, *testutil.Redis) {
	t.Helper()
	srv := testutil.StartRedis(t)
	client := NewClient(Options{Addrs: []string{srv.Addr}, Timeout: time.Second, PoolSize: 4})
	t.Cleanup(func() { client.Close() })
	r := NewRedis(client, 4)
	t.Cleanup(r.Close)
	if err := r.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r, srv
}

// randomRequests builds a reproducible stream of requests mixing fixed
// windows and GCRA, several limits per request, shadow checks, hits > 1 and
// a zero limit, at increasing times.
func randomRequests(seed uint64, n int, start time.Time) ([]time.Time, [][]quota.Check) {
	rng := rand.New(rand.NewPCG(seed, 0))
	ls := []limits.Limit{
		{Unit: limits.Second, RequestsPerUnit: 5, Burst: 5},
		{Unit: limits.Minute, RequestsPerUnit: 20, Burst: 20},
		{Unit: limits.Second, RequestsPerUnit: 7, Burst: 3, Algorithm: limits.GCRA},
		{Unit: limits.Minute, RequestsPerUnit: 30, Burst: 30, Algorithm: limits.GCRA},
		{Unit: limits.Second, RequestsPerUnit: 0, Burst: 0},
	}
	now := start
	var times []time.Time
	var reqs [][]quota.Check
	for range n {
		now = now.Add(time.Duration(rng.IntN(150_000)) * time.Microsecond)
		var checks []quota.Check
		for range 1 + rng.IntN(3) {
			li := rng.IntN(len(ls))
			if li == 4 && rng.IntN(4) != 0 {
				li = 0
			}
			l := ls[li]
			user := fmt.Sprint(rng.IntN(3))
			checks = append(checks, quota.Check{
				Key:    quota.KeyFor("t", []limits.Entry{{Key: "u", Value: user}}, li, l, now),
				Limit:  l,
				Hits:   uint32(1 + rng.IntN(2)),
				Shadow: rng.IntN(5) == 0,
			})
		}
		times = append(times, now)
		reqs = append(reqs, dedupe(checks))
	}
	return times, reqs
}

// dedupe drops repeated keys: a request names each descriptor once.
func dedupe(cs []quota.Check) []quota.Check {
	seen := map[string]bool{}
	var out []quota.Check
	for _, c := range cs {
		if !seen[c.Key] {
			seen[c.Key] = true
			out = append(out, c)
		}
	}
	return out
}

// TestRedisScriptMatchesGo runs the same requests through the Lua script and
// the Go arithmetic and wants identical answers.
func TestRedisScriptMatchesGo(t *testing.T) {
	r, _ := newRedisStore(t)
	mem := NewMemory()
	ctx := context.Background()
	times, reqs := randomRequests(1, 3000, time.Now())
	allowed := 0
	for i := range reqs {
		want, err := mem.Decide(ctx, times[i], reqs[i], true)
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.Decide(ctx, times[i], reqs[i], true)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("request %d %+v:\nredis  %+v\nmemory %+v", i, reqs[i], got, want)
		}
		// The script wrote what the Go arithmetic wrote.
		us := times[i].UnixMicro()
		for _, c := range reqs[i] {
			w, ok := mem.state[c.Key]
			if !ok || w.ExpireAt <= us {
				continue
			}
			if v, err := r.client.Get(ctx, c.Key).Int64(); err != nil || v != w.Value {
				t.Fatalf("request %d: %s = %d (%v) in redis, %d in memory", i, c.Key, v, err, w.Value)
			}
		}
		if got.Allowed {
			allowed++
		}
	}
	if allowed == 0 || allowed == len(reqs) {
		t.Fatalf("allowed %d of %d: the stream does not exercise both answers", allowed, len(reqs))
	}
}

func TestRedisOneRoundTripAndExpiry(t *testing.T) {
	r, srv := newRedisStore(t)
	ctx := context.Background()
	// At the start of a minute window: a key's TTL runs to its window's
	// end, so a now late in a one-second window left it a few ms, and a
	// slow machine saw the key expire before the checks below.
	now := time.Now().Truncate(time.Minute)
	l := limits.Limit{Unit: limits.Minute, RequestsPerUnit: 10, Burst: 10}
	checks := []quota.Check{
		{Key: quota.KeyFor("api", []limits.Entry{{Key: "path", Value: "/seed"}}, 0, l, now), Limit: l, Hits: 1},
		{Key: quota.KeyFor("api", []limits.Entry{{Key: "user", Value: "a"}}, 0, l, now), Limit: l, Hits: 1},
	}
	before, err := srv.CommandStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := r.Decide(ctx, now, checks, true); err != nil {
			t.Fatal(err)
		}
	}
	after, _ := srv.CommandStats(ctx)
	if got := after["evalsha"] - before["evalsha"]; got != 5 {
		t.Fatalf("evalsha calls = %d for 5 decisions, want 5", got)
	}
	if got := after["eval"] - before["eval"]; got != 0 {
		t.Fatalf("eval calls = %d, want 0 (script loaded once)", got)
	}
	ttl := r.client.PTTL(ctx, checks[0].Key).Val()
	if ttl <= 0 || ttl > time.Minute {
		t.Fatalf("key ttl = %v, want within the minute window", ttl)
	}
	// After SCRIPT FLUSH the store re-sends the script by itself.
	if err := r.client.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	res, err := r.Decide(ctx, now, checks, true)
	if err != nil || !res.Allowed || res.Outcomes[0].Remaining != 4 {
		t.Fatalf("after NOSCRIPT: %+v, %v", res, err)
	}
}

func TestMemorySweepsExpiredKeys(t *testing.T) {
	m := NewMemory()
	now := time.Now()
	l := limits.Limit{Unit: limits.Second, RequestsPerUnit: 1, Burst: 1}
	for i := range 100 {
		key := quota.KeyFor("d", []limits.Entry{{Key: "k", Value: fmt.Sprint(i)}}, 0, l, now)
		if _, err := m.Decide(context.Background(), now, []quota.Check{{Key: key, Limit: l, Hits: 1}}, true); err != nil {
			t.Fatal(err)
		}
	}
	if m.Len() != 100 {
		t.Fatalf("len = %d", m.Len())
	}
	if _, err := m.Decide(context.Background(), now.Add(3*time.Second), nil, true); err != nil {
		t.Fatal(err)
	}
	if m.Len() != 0 {
		t.Fatalf("len after expiry = %d, want 0", m.Len())
	}
}

func TestHashTag(t *testing.T) {
	for key, want := range map[string]string{"rl:{a|b=c}:w1.0:5": "a|b=c", "plain": "plain", "x{}y": "x{}y"} {
		if got := hashTag(key); got != want {
			t.Errorf("hashTag(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestDryRunConsumesNothing(t *testing.T) {
	r, _ := newRedisStore(t)
	ctx := context.Background()
	now := time.Now()
	l := limits.Limit{Unit: limits.Minute, RequestsPerUnit: 2, Burst: 2}
	g := limits.Limit{Unit: limits.Minute, RequestsPerUnit: 2, Burst: 2, Algorithm: limits.GCRA}
	checks := []quota.Check{
		{Key: quota.KeyFor("d", []limits.Entry{{Key: "k", Value: "v"}}, 0, l, now), Limit: l, Hits: 1},
		{Key: quota.KeyFor("d", []limits.Entry{{Key: "k", Value: "v"}}, 1, g, now), Limit: g, Hits: 1},
	}
	for _, s := range []Store{r, NewMemory()} {
		for range 5 {
			res, err := s.Decide(ctx, now, checks, false)
			if err != nil || !res.Allowed || res.Outcomes[0].Remaining != 1 || res.Outcomes[1].Remaining != 1 {
				t.Fatalf("%T dry run: %+v, %v", s, res, err)
			}
		}
	}
}

func TestRedisConcurrentRequestsArePipelinedExactly(t *testing.T) {
	r, srv := newRedisStore(t)
	ctx := context.Background()
	now := time.Now()
	l := limits.Limit{Unit: limits.Hour, RequestsPerUnit: 500, Burst: 500}
	key := quota.KeyFor("d", []limits.Entry{{Key: "k", Value: "shared"}}, 0, l, now)
	before, _ := srv.CommandStats(ctx)
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				res, err := r.Decide(ctx, now, []quota.Check{{Key: key, Limit: l, Hits: 1}}, true)
				if err != nil {
					t.Error(err)
					return
				}
				if res.Allowed {
					allowed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if allowed.Load() != 500 {
		t.Fatalf("allowed %d of 1280, want exactly 500", allowed.Load())
	}
	after, _ := srv.CommandStats(ctx)
	if got := after["evalsha"] - before["evalsha"]; got != 1280 {
		t.Fatalf("evalsha calls = %d for 1280 decisions", got)
	}
}

// TestRedisDecideByDeadline: with Redis stalled, a decision gives up at its
// deadline, and the decisions after Redis answers again get their own
// answers (a job given up on is never handed to another caller).
func TestRedisDecideByDeadline(t *testing.T) {
	r, _ := newRedisStore(t)
	ctx := context.Background()
	now := time.Now()
	l := limits.Limit{Unit: limits.Hour, RequestsPerUnit: 100, Burst: 100}
	check := func(user string) []quota.Check {
		return []quota.Check{{Key: quota.KeyFor("d", []limits.Entry{{Key: "u", Value: user}}, 0, l, now), Limit: l, Hits: 1}}
	}
	if err := r.client.Do(ctx, "CLIENT", "PAUSE", "2000", "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			_, err := r.DecideBy(ctx, start.Add(30*time.Millisecond), now, check(fmt.Sprint("stalled-", i)), true)
			// The store's own deadline or, on a loaded machine, the
			// client's socket timeout may fire first; either way the
			// caller gets a timeout, in time.
			var netErr net.Error
			if !errors.Is(err, context.DeadlineExceeded) && !(errors.As(err, &netErr) && netErr.Timeout()) {
				t.Errorf("stalled decision: err = %v, want a timeout", err)
			}
			// Redis is paused for 2 s: well under that is the deadline
			// working, even on a loaded machine.
			if took := time.Since(start); took > time.Second {
				t.Errorf("stalled decision took %s with a 30ms deadline", took)
			}
		}()
	}
	wg.Wait()
	time.Sleep(2100 * time.Millisecond) // the pause ends; late replies drain
	for i := range 50 {
		user := fmt.Sprint("after-", i)
		for want := int64(99); want >= 97; want-- {
			res, err := r.DecideBy(ctx, time.Now().Add(time.Second), now, check(user), true)
			if err != nil || !res.Allowed || res.Outcomes[0].Remaining != want {
				t.Fatalf("%s: %+v, %v; want remaining %d", user, res, err, want)
			}
		}
	}
}
