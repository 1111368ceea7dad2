package ratelimit_test

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	commonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// TestLoad measures decisions/s over gRPC with a real Redis: 32 concurrent
// callers spread over 1,000 descriptor values, the load generator on the
// same machine, p50/p99 latency, and Redis commands per decision from Redis's
// own INFO commandstats. It runs only when RATELIMIT_LOAD is set (to a
// duration per phase, e.g. RATELIMIT_LOAD=10s):
//
//	cd test && RATELIMIT_LOAD=10s go test -count=1 -run TestLoad -v ./ratelimit
//
// Each closed-loop phase runs twice: with grpc-go clients (32 goroutines
// over RATELIMIT_CONNS connections), and with h2Load, a lean HTTP/2
// generator (4 connections × 8 calls in flight) that costs a third of the
// CPU per call, as Envoy's C++ RLS client would: on two shared cores the
// grpc-go generator alone takes ≈ 40 % of the machine. After "under
// limit", an open-loop phase sends RATELIMIT_RATE decisions/s (default
// 5000) for the same duration.
//
// For tuning: RATELIMIT_CONNS (gRPC connections of the load generator,
// default 4), RATELIMIT_FLAGS (extra service flags), RATELIMIT_ENV (extra
// service environment, e.g. GOMAXPROCS=1), RATELIMIT_PPROF=/tmp/p (CPU and
// allocation profiles of the service per phase).
func TestLoad(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("RATELIMIT_LOAD"))
	if err != nil {
		t.Skip("set RATELIMIT_LOAD=10s to measure")
	}
	r := startRedis(t)
	args := []string{"-redis.addrs", r.addr, "-log.level", "warn"}
	if extra := os.Getenv("RATELIMIT_FLAGS"); extra != "" {
		args = append(args, strings.Fields(extra)...)
	}
	in := startRatelimit(t, "ratelimit", writeRules(t, rulesYAML), args...)
	nconns := 4
	if v, err := strconv.Atoi(os.Getenv("RATELIMIT_CONNS")); err == nil && v > 0 {
		nconns = v
	}
	var conns []*grpc.ClientConn
	for range nconns {
		// Fixed windows, as Envoy's and the sidecar's clients have: grpc-go's
		// bandwidth-estimation pings would add a round of writes per call.
		conn, err := grpc.NewClient(in.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithInitialWindowSize(1<<20), grpc.WithInitialConnWindowSize(1<<20))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conns = append(conns, conn)
	}
	rc := r.client(t)
	commands := func() map[string]int64 {
		out := map[string]int64{}
		for _, line := range strings.Split(rc.Info(context.Background(), "commandstats").Val(), "\n") {
			name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
			if !ok {
				continue
			}
			n, _ := strconv.ParseInt(rest[:strings.IndexByte(rest, ',')], 10, 64)
			out[strings.TrimPrefix(name, "cmdstat_")] = n
		}
		return out
	}

	redisCPU := func() float64 {
		var total float64
		for _, line := range strings.Split(rc.Info(context.Background(), "cpu").Val(), "\n") {
			for _, f := range []string{"used_cpu_sys:", "used_cpu_user:"} {
				if v, ok := strings.CutPrefix(strings.TrimSpace(line), f); ok {
					x, _ := strconv.ParseFloat(v, 64)
					total += x
				}
			}
		}
		return total
	}
	selfCPU := func() float64 {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	// The load generator shares the two cores, so it is kept lean: requests
	// built once, and the same GC setting as the service.
	defer debug.SetGCPercent(debug.SetGCPercent(2000))
	const callers, values = 32, 1000
	reqs := map[string][]*rlsv3.RateLimitRequest{}
	for _, key := range []string{"bench", "attacker"} {
		for i := range values {
			reqs[key] = append(reqs[key], &rlsv3.RateLimitRequest{Domain: "api", Descriptors: []*commonv3.RateLimitDescriptor{desc(key, fmt.Sprint("user-", i))}})
		}
	}
	profile := func(name string) {
		if out := os.Getenv("RATELIMIT_PPROF"); out != "" {
			// Profile the service during this phase, for tuning.
			for _, kind := range []string{"profile", "allocs"} {
				go func() {
					body := httpGet(t, fmt.Sprintf("http://%s/debug/pprof/%s?seconds=%d", in.admin, kind, max(int(d.Seconds())-1, 1)))
					_ = os.WriteFile(out+"."+kind+"."+strings.ReplaceAll(name, " ", "-"), []byte(body), 0o600)
				}()
			}
		}
	}
	// measure runs load for one phase and reports throughput, latency,
	// Redis commands and CPU per decision.
	measure := func(name string, load func() (lat []time.Duration, wrong int)) {
		if name != "warm-up" {
			profile(name)
		}
		before := commands()
		cpu0, rcpu0, self0 := in.metric(t, "process_cpu_seconds_total"), redisCPU(), selfCPU()
		start := time.Now()
		lat, wrong := load()
		elapsed := time.Since(start)
		after := commands()
		cpu1, rcpu1, self1 := in.metric(t, "process_cpu_seconds_total"), redisCPU(), selfCPU()
		slices.Sort(lat)
		pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(float64(len(lat))*p))] }
		n := float64(len(lat))
		perDecision := func(cmd string) float64 { return float64(after[cmd]-before[cmd]) / n }
		t.Logf("%s: %d decisions in %s = %.0f decisions/s; p50 %s, p99 %s, max %s; wrong answers %d",
			name, len(lat), elapsed.Round(time.Millisecond), n/elapsed.Seconds(), pct(0.50), pct(0.99), lat[len(lat)-1], wrong)
		t.Logf("%s: Redis commands per decision from INFO commandstats: evalsha %.3f, eval %.3f, all client commands %.3f (inside the script: mget %.3f, incrby %.3f, set %.3f)",
			name, perDecision("evalsha"), perDecision("eval"), perDecision("evalsha")+perDecision("eval")+perDecision("ping"), perDecision("mget"), perDecision("incrby"), perDecision("set"))
		t.Logf("%s: CPU per decision: ratelimit %.1fµs, redis-server %.1fµs, load generator %.1fµs",
			name, (cpu1-cpu0)/n*1e6, (rcpu1-rcpu0)/n*1e6, (self1-self0)/n*1e6)
		t.Logf("%s: ratelimit RSS %.1f MB, Go heap in use %.1f MB, GC cycles so far %v", name,
			in.metric(t, "process_resident_memory_bytes")/1e6, in.metric(t, "go_memstats_heap_inuse_bytes")/1e6,
			in.metric(t, `go_gc_duration_seconds_count`))
		t.Logf("%s: fail-open decisions so far %v, backend errors: timeout %v error %v", name,
			in.metric(t, "switchyard_ratelimit_fail_open_total"),
			in.metric(t, `switchyard_ratelimit_backend_errors_total{reason="timeout"}`),
			in.metric(t, `switchyard_ratelimit_backend_errors_total{reason="error"}`))
	}
	// phase drives the 32 callers through grpc-go clients.
	phase := func(name, key string, wantCode rlsv3.RateLimitResponse_Code) {
		measure(name, func() ([]time.Duration, int) {
			var mu sync.Mutex
			var lat []time.Duration
			wrong := 0
			ctx, cancel := context.WithTimeout(context.Background(), d)
			defer cancel()
			var wg sync.WaitGroup
			for w := range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c := rlsv3.NewRateLimitServiceClient(conns[w%len(conns)])
					mine := make([]time.Duration, 0, 1<<16)
					bad := 0
					for i := w; ctx.Err() == nil; i += callers {
						req := reqs[key][i%values]
						t0 := time.Now()
						resp, err := c.ShouldRateLimit(context.Background(), req)
						mine = append(mine, time.Since(t0))
						if err != nil || resp.GetOverallCode() != wantCode {
							bad++
						}
					}
					mu.Lock()
					lat = append(lat, mine...)
					wrong += bad
					mu.Unlock()
				}()
			}
			wg.Wait()
			return lat, wrong
		})
	}
	// leanPhase drives them through h2Load: 4 connections × 8 calls in
	// flight, at a few µs of CPU per call.
	leanPhase := func(name, key string, wantCode rlsv3.RateLimitResponse_Code) {
		gen, err := newH2Load(in.grpc, 4, callers/4, reqs[key], wantCode)
		if err != nil {
			t.Fatal(err)
		}
		measure(name, func() ([]time.Duration, int) {
			res, err := gen.run(d)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return res.lat, res.wrong
		})
	}

	phase("warm-up", "bench", rlsv3.RateLimitResponse_OK)
	phase("under limit", "bench", rlsv3.RateLimitResponse_OK)
	leanPhase("under limit, lean HTTP/2 load generator", "bench", rlsv3.RateLimitResponse_OK)

	// The closed loop above saturates the two shared cores, so its latency
	// is mostly queueing (Little's law: 32 callers / throughput). An open
	// loop at a fixed rate below saturation shows what a caller waits at a
	// given load, counted from each request's due time.
	rate := 5000
	if v, err := strconv.Atoi(os.Getenv("RATELIMIT_RATE")); err == nil && v > 0 {
		rate = v
	}
	{
		n := int(d.Seconds() * float64(rate))
		lat := make([]time.Duration, n)
		var wrong atomic.Int64
		var wg sync.WaitGroup
		cpu0, rcpu0 := in.metric(t, "process_cpu_seconds_total"), redisCPU()
		clients := make([]rlsv3.RateLimitServiceClient, len(conns))
		for i, c := range conns {
			clients[i] = rlsv3.NewRateLimitServiceClient(c)
		}
		profile("open loop")
		start := time.Now()
		for i := range n {
			due := start.Add(time.Duration(i) * time.Second / time.Duration(rate))
			time.Sleep(time.Until(due))
			wg.Go(func() {
				resp, err := clients[i%len(clients)].ShouldRateLimit(context.Background(), reqs["bench"][i%values])
				lat[i] = time.Since(due)
				if err != nil || resp.GetOverallCode() != rlsv3.RateLimitResponse_OK {
					wrong.Add(1)
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(start)
		cpu1, rcpu1 := in.metric(t, "process_cpu_seconds_total"), redisCPU()
		slices.Sort(lat)
		pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(float64(len(lat))*p))] }
		t.Logf("under limit, open loop at %d/s: %d decisions in %s; p50 %s, p90 %s, p99 %s, max %s; wrong answers %d; CPU per decision: ratelimit %.1fµs, redis-server %.1fµs",
			rate, n, elapsed.Round(time.Millisecond), pct(0.5), pct(0.9), pct(0.99), lat[n-1], wrong.Load(),
			(cpu1-cpu0)/float64(n)*1e6, (rcpu1-rcpu0)/float64(n)*1e6)
	}
	// Every attacker value gets its single hourly hit, then one refusal
	// from Redis that puts it in the known-over cache.
	for i := range 1000 {
		for range 2 {
			ask(t, in.rls, "attacker", fmt.Sprint("user-", i))
		}
	}
	phase("known over limit", "attacker", rlsv3.RateLimitResponse_OVER_LIMIT)
	leanPhase("known over limit, lean HTTP/2 load generator", "attacker", rlsv3.RateLimitResponse_OVER_LIMIT)
	for _, line := range strings.Split(in.proc.Log(), "\n") {
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
			t.Logf("ratelimit log: %s", line)
		}
	}
}
