package ratelimit_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	commonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"

	"github.com/switchyard-mesh/switchyard/test/harness"
)

const over = rlsv3.RateLimitResponse_OVER_LIMIT

// TestSeedScenario: a 10 req/s limit; 15 rapid requests → the first 10
// allowed, the rest OVER_LIMIT with Retry-After.
func TestSeedScenario(t *testing.T) {
	r := startRedis(t)
	in := startRatelimit(t, "ratelimit", writeRules(t, rulesYAML), "-redis.addrs", r.addr)
	waitForFreshWindow()
	for i := range 15 {
		resp := ask(t, in.rls, "path", "/seed")
		wantOver := i >= 10
		if (resp.GetOverallCode() == over) != wantOver {
			t.Fatalf("request %d: %v, want over_limit=%v", i+1, resp.GetOverallCode(), wantOver)
		}
		if got, want := header(resp, "X-RateLimit-Limit"), "10"; got != want {
			t.Fatalf("request %d: X-RateLimit-Limit = %q", i+1, got)
		}
		st := resp.GetStatuses()[0]
		if !wantOver {
			if got := header(resp, "X-RateLimit-Remaining"); got != strconv.Itoa(9-i) {
				t.Fatalf("request %d: X-RateLimit-Remaining = %q, want %d", i+1, got, 9-i)
			}
			if st.GetLimitRemaining() != uint32(9-i) || st.GetCurrentLimit().GetRequestsPerUnit() != 10 {
				t.Fatalf("request %d: status %v", i+1, st)
			}
			continue
		}
		if header(resp, "Retry-After") != "1" || header(resp, "X-RateLimit-Remaining") != "0" || header(resp, "X-RateLimit-Reset") != "1" {
			t.Fatalf("request %d: headers %v", i+1, resp.GetResponseHeadersToAdd())
		}
		if st.GetCode() != over || st.GetDurationUntilReset().AsDuration() <= 0 || st.GetDurationUntilReset().AsDuration() > time.Second {
			t.Fatalf("request %d: status %v", i+1, st)
		}
	}
	if got := in.metric(t, `switchyard_ratelimit_decisions_total{descriptor="path=/seed",domain="api",result="over_limit"}`); got != 5 {
		t.Fatalf("over_limit decisions = %v, want 5", got)
	}
}

// TestTiers: free has 100/hour and 1,000/day, pro 10,000/hour; each user
// has their own counters and both of free's quotas are enforced.
func TestTiers(t *testing.T) {
	r := startRedis(t)
	in := startRatelimit(t, "ratelimit", writeRules(t, rulesYAML), "-redis.addrs", r.addr)
	count := func(n int, kv ...string) (allowed int, last *rlsv3.RateLimitResponse) {
		for range n {
			last = ask(t, in.rls, kv...)
			if last.GetOverallCode() != over {
				allowed++
			}
		}
		return allowed, last
	}
	if got, last := count(120, "plan", "free", "user", "alice"); got != 100 || header(last, "X-RateLimit-Limit") != "100" || last.GetStatuses()[0].GetCurrentLimit().GetName() != "free-hourly" {
		t.Fatalf("free: %d of 120 allowed (want 100); last %v", got, last)
	}
	if got, _ := count(120, "plan", "pro", "user", "alice"); got != 120 {
		t.Fatalf("pro: %d of 120 allowed", got)
	}
	// The daily quota: bob has already used 995 today, spread over earlier
	// hours (written the way the service stores it), so the hourly limit
	// has room for 100 but the daily one only for 5.
	now := time.Now().UTC()
	dayKey := fmt.Sprintf("rl:{api|plan=free|user=bob}:w86400.1:%d", now.Unix()/86400)
	if err := r.client(t).Set(context.Background(), dayKey, 995, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	got, last := count(20, "plan", "free", "user", "bob")
	if got != 5 || last.GetOverallCode() != over || header(last, "X-RateLimit-Limit") != "1000" || last.GetStatuses()[0].GetCurrentLimit().GetName() != "free-daily" {
		t.Fatalf("free daily: %d allowed (want 5); last %v", got, last)
	}
	untilMidnight := now.Truncate(24 * time.Hour).Add(24 * time.Hour).Sub(now)
	if ra, _ := strconv.Atoi(header(last, "Retry-After")); time.Duration(ra)*time.Second < untilMidnight-time.Minute {
		t.Fatalf("Retry-After = %ds, want until midnight UTC (%s)", ra, untilMidnight)
	}
	// A refused request consumed nothing: bob's hourly count is 5.
	hourKey := fmt.Sprintf("rl:{api|plan=free|user=bob}:w3600.0:%d", now.Unix()/3600)
	if n, _ := r.client(t).Get(context.Background(), hourKey).Int(); n != 5 {
		t.Fatalf("hourly counter = %d, want 5", n)
	}
}

// TestTwoReplicasOneGlobalLimit: two ratelimit processes against one Redis,
// 32 concurrent callers split between them, admit exactly the limit.
func TestTwoReplicasOneGlobalLimit(t *testing.T) {
	r := startRedis(t)
	rules := writeRules(t, rulesYAML)
	// A generous deadline: this test is about exactness, and a decision
	// that times out fails open (TestRedisKilledMidTest covers that).
	a := startRatelimit(t, "ratelimit-a", rules, "-redis.addrs", r.addr, "-redis.timeout", "2s")
	b := startRatelimit(t, "ratelimit-b", rules, "-redis.addrs", r.addr, "-redis.timeout", "2s")
	for attempt := 0; ; attempt++ {
		hour := time.Now().Unix() / 3600
		key := fmt.Sprintf("tenant-%d", attempt)
		var allowed, perA, perB atomic.Int64
		var wg sync.WaitGroup
		for w := range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, n := a.rls, &perA
				if w%2 == 1 {
					c, n = b.rls, &perB
				}
				for range 10 {
					if ask(t, c, "global", key).GetOverallCode() != over {
						allowed.Add(1)
						n.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		if time.Now().Unix()/3600 != hour && attempt < 3 {
			continue // the hourly window turned during the burst; try again
		}
		if allowed.Load() != 100 {
			t.Fatalf("two replicas admitted %d of 320 (a %d, b %d), want exactly 100; fail-open decisions: a %v, b %v", allowed.Load(), perA.Load(), perB.Load(),
				a.metric(t, "switchyard_ratelimit_fail_open_total"), b.metric(t, "switchyard_ratelimit_fail_open_total"))
		}
		if perA.Load() == 0 || perB.Load() == 0 {
			t.Fatalf("one replica admitted nothing (a %d, b %d)", perA.Load(), perB.Load())
		}
		return
	}
}

// TestRedisKilledMidTest: with Redis gone, answers keep coming within the
// deadline, allowed by a fail-open replica and refused by a fail-closed
// one; when Redis returns both limit exactly again.
func TestRedisKilledMidTest(t *testing.T) {
	r := startRedis(t)
	rules := writeRules(t, rulesYAML)
	open := startRatelimit(t, "ratelimit-open", rules, "-redis.addrs", r.addr, "-redis.timeout", "25ms")
	closed := startRatelimit(t, "ratelimit-closed", rules, "-redis.addrs", r.addr, "-redis.timeout", "25ms", "-decision.failure_mode", "closed")
	for _, in := range []*instance{open, closed} {
		if resp := ask(t, in.rls, "outage", "before"); resp.GetOverallCode() != rlsv3.RateLimitResponse_OK {
			t.Fatalf("before the outage: %v", resp)
		}
	}

	r.proc.Kill()
	// The 25ms deadline bounds every answer. Judged on the median (and a
	// generous ceiling for the slowest), so a scheduler hiccup on a busy
	// box is not mistaken for a hang like envoyproxy/ratelimit's 10 s.
	const medianBudget, ceiling = 100 * time.Millisecond, time.Second
	var took []time.Duration
	for i := range 50 {
		for _, tc := range []struct {
			in   *instance
			want rlsv3.RateLimitResponse_Code
		}{{open, rlsv3.RateLimitResponse_OK}, {closed, over}} {
			start := time.Now()
			resp := ask(t, tc.in.rls, "outage", fmt.Sprint("during-", i))
			took = append(took, time.Since(start))
			if resp.GetOverallCode() != tc.want {
				t.Fatalf("%s during outage, request %d: %v, want %v", tc.in.proc.Name(), i, resp.GetOverallCode(), tc.want)
			}
		}
	}
	slices.Sort(took)
	median, slowest := took[len(took)/2], took[len(took)-1]
	if median > medianBudget || slowest > ceiling {
		t.Fatalf("answers during the outage: median %s (budget %s), slowest %s (ceiling %s)", median, medianBudget, slowest, ceiling)
	}
	t.Logf("slowest answer during the outage: %s", slowest)
	if got := open.metric(t, "switchyard_ratelimit_fail_open_total"); got < 50 {
		t.Fatalf("fail_open_total = %v, want >= 50", got)
	}
	if got := closed.metric(t, "switchyard_ratelimit_fail_closed_total"); got < 50 {
		t.Fatalf("fail_closed_total = %v, want >= 50", got)
	}
	if open.metric(t, "switchyard_ratelimit_backend_up") != 0 {
		t.Fatal("backend_up not 0 during the outage")
	}
	if !strings.Contains(open.proc.Log(), "rate limit backend down; failing open") {
		t.Fatal("outage not logged")
	}

	r.proc.Restart(t)
	r.waitUp(t)
	for _, in := range []*instance{open, closed} {
		harness.Poll(t, 10*time.Second, func() error {
			if in.metric(t, "switchyard_ratelimit_backend_up") != 1 {
				return fmt.Errorf("%s: backend not up yet", in.proc.Name())
			}
			return nil
		})
		allowed := 0
		for range 8 {
			if ask(t, in.rls, "outage", "after-"+in.proc.Name()).GetOverallCode() != over {
				allowed++
			}
		}
		if allowed != 5 {
			t.Fatalf("%s after recovery: %d of 8 allowed, want exactly 5", in.proc.Name(), allowed)
		}
	}
}

// TestBadRulesRefused: a bad rules change is refused naming its place and
// the running rules keep deciding; validate and start refuse it too.
func TestBadRulesRefused(t *testing.T) {
	r := startRedis(t)
	path := writeRules(t, rulesYAML)
	in := startRatelimit(t, "ratelimit", path, "-redis.addrs", r.addr)
	bin := harness.Binary(t, "ratelimit")
	good := "domain: api\ndescriptors:\n  - key: k\n    rate_limit: {unit: minute, requests_per_unit: 3}\n"
	bad := []struct{ name, src, want string }{
		{"unknown unit", strings.Replace(good, "minute", "fortnight", 1), `domain "api" descriptors[0].rate_limit.unit: unknown unit "fortnight"`},
		{"duplicate key", good + "  - key: k\n    rate_limit: {unit: hour, requests_per_unit: 3}\n", `domain "api" descriptors[1]: duplicate descriptor k (also at descriptors[0])`},
		{"negative limit", strings.Replace(good, "3}", "-3}", 1), `domain "api" descriptors[0].rate_limit.requests_per_unit: must not be negative, got -3`},
	}
	failures := in.metric(t, `switchyard_ratelimit_config_reloads_total{result="failure"}`)
	for i, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(path, []byte(tc.src), 0o600); err != nil {
				t.Fatal(err)
			}
			harness.Poll(t, 5*time.Second, func() error {
				if got := in.metric(t, `switchyard_ratelimit_config_reloads_total{result="failure"}`); got != failures+float64(i+1) {
					return fmt.Errorf("reload failures = %v", got)
				}
				return nil
			})
			// slog's text format escapes the quotes inside the error.
			if log := strings.ReplaceAll(in.proc.Log(), `\"`, `"`); !strings.Contains(log, tc.want) || !strings.Contains(log, "keeping the running rules") {
				t.Fatalf("log does not name the place %q:\n%s", tc.want, in.proc.LogTail(2000))
			}
			// The running rules (10/s on /seed) still decide.
			if st := ask(t, in.rls, "path", "/seed").GetStatuses()[0]; st.GetCurrentLimit().GetRequestsPerUnit() != 10 {
				t.Fatalf("running rules lost: %v", st)
			}
			res := harness.RunToExit(t, harness.Process{Binary: bin, Args: []string{"validate", "-rules", path}}, 10*time.Second)
			if res.Code != 1 || !strings.Contains(res.Output, tc.want) {
				t.Fatalf("validate: exit %d, output %q; want 1 and %q", res.Code, res.Output, tc.want)
			}
			res = harness.RunToExit(t, harness.Process{Binary: bin, Args: []string{"-limits.path", path, "-tls.mode", "insecure", "-grpc.addr", harness.FreeAddr(t), "-admin.addr", harness.FreeAddr(t)}}, 10*time.Second)
			if res.Code == 0 || !strings.Contains(res.Output, tc.want) {
				t.Fatalf("start with bad rules: exit %d, output %q", res.Code, res.Output)
			}
		})
	}
	// A good change is applied live.
	if err := os.WriteFile(path, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	harness.Poll(t, 5*time.Second, func() error {
		if st := ask(t, in.rls, "k", "v").GetStatuses()[0]; st.GetCurrentLimit().GetRequestsPerUnit() != 3 {
			return fmt.Errorf("new rules not in force: %v", st)
		}
		return nil
	})
	res := harness.RunToExit(t, harness.Process{Binary: bin, Args: []string{"validate", "-rules", path}}, 10*time.Second)
	if res.Code != 0 || !strings.Contains(res.Output, "configuration ok: 1 domains, 1 rules") {
		t.Fatalf("validate good: %d %q", res.Code, res.Output)
	}
}

// TestKnownOverCostsNoRedis: once a key is over its limit, refusals come
// from the in-process cache: zero Redis commands, counted by Redis itself.
func TestKnownOverCostsNoRedis(t *testing.T) {
	r := startRedis(t)
	in := startRatelimit(t, "ratelimit", writeRules(t, rulesYAML), "-redis.addrs", r.addr)
	ask(t, in.rls, "attacker", "mallory") // uses the 1/hour quota
	c := r.client(t)
	stats := func() map[string]int64 {
		out := map[string]int64{}
		for _, line := range strings.Split(c.Info(context.Background(), "commandstats").Val(), "\n") {
			name, rest, ok := strings.Cut(line, ":calls=")
			if !ok || name == "cmdstat_info" {
				continue
			}
			n, _ := strconv.ParseInt(rest[:strings.IndexByte(rest, ',')], 10, 64)
			out[name] = n
		}
		return out
	}
	ask(t, in.rls, "attacker", "mallory") // refused by Redis, now known over
	before := stats()
	for range 1000 {
		if ask(t, in.rls, "attacker", "mallory").GetOverallCode() != over {
			t.Fatal("attacker allowed")
		}
	}
	if after := stats(); !maps.Equal(after, before) {
		t.Fatalf("1000 refusals of a known-over key cost Redis commands: before %v, after %v", before, after)
	}
}

// TestDebugDecide: the admin endpoint says what the service would decide,
// without consuming.
func TestDebugDecide(t *testing.T) {
	r := startRedis(t)
	in := startRatelimit(t, "ratelimit", writeRules(t, rulesYAML), "-redis.addrs", r.addr)
	for range 3 {
		body := httpGet(t, "http://"+in.admin+"/debug/decide?domain=api&descriptor=plan=free,user=carol")
		if !strings.Contains(body, `"rule": "plan=free.user"`) || !strings.Contains(body, `"remaining": 99`) {
			t.Fatalf("/debug/decide = %s", body)
		}
	}
	if body := httpGet(t, "http://"+in.admin+"/debug/rules"); !strings.Contains(body, `"name": "free-daily"`) {
		t.Fatalf("/debug/rules = %s", body)
	}
}

// TestMultipleDescriptorsOneRequest: statuses come back per descriptor and
// the request is refused when any one is over.
func TestMultipleDescriptorsOneRequest(t *testing.T) {
	r := startRedis(t)
	in := startRatelimit(t, "ratelimit", writeRules(t, rulesYAML), "-redis.addrs", r.addr)
	ask(t, in.rls, "attacker", "eve")
	resp, err := in.rls.ShouldRateLimit(context.Background(), &rlsv3.RateLimitRequest{Domain: "api", Descriptors: []*commonv3.RateLimitDescriptor{
		desc("plan", "pro", "user", "eve"), desc("attacker", "eve"), desc("unknown", "x"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	st := resp.GetStatuses()
	if resp.GetOverallCode() != over || len(st) != 3 || st[0].GetCode() != rlsv3.RateLimitResponse_OK || st[1].GetCode() != over || st[2].GetCode() != rlsv3.RateLimitResponse_OK || st[2].GetCurrentLimit() != nil {
		t.Fatalf("response = %v", resp)
	}
}
