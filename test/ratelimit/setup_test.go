// Package ratelimit_test starts the real ratelimit binary against a real
// redis-server and checks the behaviour the issue asks for: the seed
// scenario, tiers with hour and day quotas, one global limit across
// replicas, Redis dying and coming back, and bad rules refused while the
// running rules stay.
package ratelimit_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	commonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/switchyard-mesh/switchyard/test/harness"
)

// rulesYAML is the rules file most tests use.
const rulesYAML = `domain: api
descriptors:
  - key: path
    value: /seed
    rate_limit: {unit: second, requests_per_unit: 10}
  - key: plan
    value: free
    descriptors:
      - key: user
        rate_limits:
          - {name: free-hourly, unit: hour, requests_per_unit: 100}
          - {name: free-daily, unit: day, requests_per_unit: 1000}
  - key: plan
    value: pro
    descriptors:
      - key: user
        rate_limit: {name: pro-hourly, unit: hour, requests_per_unit: 10000}
  - key: global
    rate_limit: {unit: hour, requests_per_unit: 100}
  - key: outage
    rate_limit: {unit: hour, requests_per_unit: 5}
  - key: bench
    rate_limit: {unit: hour, requests_per_unit: 1000000000}
  - key: attacker
    rate_limit: {unit: hour, requests_per_unit: 1}
`

type redisServer struct {
	proc *harness.Proc
	addr string
}

func startRedis(t testing.TB) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("redis-server is not installed: apt-get install redis-server (.ci/run does)")
	}
	addr := harness.FreeAddr(t)
	port := addr[strings.LastIndexByte(addr, ':')+1:]
	r := &redisServer{addr: addr}
	r.proc = harness.Start(t, harness.Process{
		Name:   "redis",
		Binary: "redis-server",
		Args:   []string{"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"},
	})
	r.waitUp(t)
	return r
}

func (r *redisServer) client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: r.addr, DisableIdentity: true, Protocol: 2})
	t.Cleanup(func() { c.Close() })
	return c
}

func (r *redisServer) waitUp(t testing.TB) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: r.addr, DisableIdentity: true, Protocol: 2})
	defer c.Close()
	harness.Poll(t, 10*time.Second, func() error { return c.Ping(context.Background()).Err() })
}

type instance struct {
	proc  *harness.Proc
	grpc  string
	admin string
	rules string
	rls   rlsv3.RateLimitServiceClient
}

// startRatelimit runs the binary with plaintext gRPC (mTLS is covered by
// TestMTLS) and the given extra flags.
func startRatelimit(t testing.TB, name, rulesPath string, extra ...string) *instance {
	t.Helper()
	in := &instance{grpc: harness.FreeAddr(t), admin: harness.FreeAddr(t), rules: rulesPath}
	args := append([]string{
		"-grpc.addr", in.grpc, "-admin.addr", in.admin, "-limits.path", rulesPath,
		"-limits.reload_interval", "100ms", "-tls.mode", "insecure", "-log.format", "text",
	}, extra...)
	in.proc = harness.Start(t, harness.Process{
		Name:     name,
		Binary:   harness.Binary(t, "ratelimit"),
		Args:     args,
		Env:      strings.Fields(os.Getenv("RATELIMIT_ENV")), // e.g. GOMAXPROCS=1, for tuning
		ReadyURL: "http://" + in.admin + "/readyz",
	})
	in.rls = rlsClient(t, in.grpc, insecure.NewCredentials())
	return in
}

func rlsClient(t testing.TB, addr string, creds credentials.TransportCredentials) rlsv3.RateLimitServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return rlsv3.NewRateLimitServiceClient(conn)
}

func writeRules(t testing.TB, src string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func desc(kv ...string) *commonv3.RateLimitDescriptor {
	d := &commonv3.RateLimitDescriptor{}
	for i := 0; i+1 < len(kv); i += 2 {
		d.Entries = append(d.Entries, &commonv3.RateLimitDescriptor_Entry{Key: kv[i], Value: kv[i+1]})
	}
	return d
}

func ask(t testing.TB, c rlsv3.RateLimitServiceClient, kv ...string) *rlsv3.RateLimitResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.ShouldRateLimit(ctx, &rlsv3.RateLimitRequest{Domain: "api", Descriptors: []*commonv3.RateLimitDescriptor{desc(kv...)}})
	if err != nil {
		t.Fatalf("ShouldRateLimit(%v): %v", kv, err)
	}
	return resp
}

func header(resp *rlsv3.RateLimitResponse, name string) string {
	for _, h := range resp.GetResponseHeadersToAdd() {
		if h.GetKey() == name {
			return h.GetValue()
		}
	}
	return ""
}

func httpGet(t testing.TB, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// metric reads one sample from an instance's /metrics, 0 when absent.
func (in *instance) metric(t testing.TB, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(httpGet(t, "http://"+in.admin+"/metrics"), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			var v float64
			fmt.Sscan(rest, &v)
			return v
		}
	}
	return 0
}

// waitForFreshWindow sleeps past the start of the next second when less
// than 300ms of the current one is left, so a burst of requests that must
// land in one fixed one-second window does.
func waitForFreshWindow() {
	now := time.Now()
	if left := now.Truncate(time.Second).Add(time.Second).Sub(now); left < 300*time.Millisecond {
		time.Sleep(left + 5*time.Millisecond)
	}
}
