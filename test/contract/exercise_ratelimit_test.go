package contract

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
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/switchyard-mesh/switchyard/test/harness"
)

func init() { exercisers["ratelimit"] = exerciseRatelimit }

// exerciseRatelimit runs ratelimit against a real redis-server with rules
// covering every result (ok, over_limit from Redis and from the cache,
// near limit, shadow, unlimited, no rule), refuses and accepts a rules
// change, then kills Redis so the failure-mode metrics have samples.
func exerciseRatelimit(t testing.TB) []string {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server is needed to exercise ratelimit: %v", err)
	}
	redisAddr := harness.FreeAddr(t)
	redis := harness.Start(t, harness.Process{
		Name: "redis", Binary: "redis-server",
		Args: []string{"--port", redisAddr[strings.LastIndexByte(redisAddr, ':')+1:], "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"},
	})
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	good := `domain: api
descriptors:
  - {key: path, value: /seed, rate_limit: {unit: minute, requests_per_unit: 5}}
  - {key: shadow, shadow_mode: true, rate_limit: {unit: minute, requests_per_unit: 1}}
  - {key: static, unlimited: true}
`
	if err := os.WriteFile(rules, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	grpcAddr, admin := harness.FreeAddr(t), harness.FreeAddr(t)
	harness.Start(t, harness.Process{
		Name: "ratelimit", Binary: harness.Binary(t, "ratelimit"),
		Args: []string{"-grpc.addr", grpcAddr, "-admin.addr", admin, "-limits.path", rules, "-limits.reload_interval", "100ms",
			"-tls.mode", "insecure", "-redis.addrs", redisAddr, "-decision.probe_interval", "10s"},
		ReadyURL: "http://" + admin + "/readyz",
	})
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	rls := rlsv3.NewRateLimitServiceClient(conn)
	ask := func(key, value string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := rls.ShouldRateLimit(ctx, &rlsv3.RateLimitRequest{Domain: "api", Descriptors: []*commonv3.RateLimitDescriptor{
			{Entries: []*commonv3.RateLimitDescriptor_Entry{{Key: key, Value: value}}}}})
		if err != nil {
			t.Fatalf("ShouldRateLimit: %v", err)
		}
	}
	for range 8 {
		ask("path", "/seed") // ok, near limit, then over (Redis, then cache)
	}
	for range 3 {
		ask("shadow", "x")
	}
	ask("static", "x")
	ask("other", "x")

	// A bad change is refused, a good one applied.
	if err := os.WriteFile(rules, []byte(strings.Replace(good, "minute", "fortnight", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	harness.Poll(t, 5*time.Second, func() error {
		return metricPresent(admin, `switchyard_ratelimit_config_reloads_total{result="failure"}`)
	})
	if err := os.WriteFile(rules, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)

	// Redis gone: errors, the store marked down, decisions fail open.
	redis.Kill()
	for i := range 5 {
		ask("shadow", fmt.Sprint("outage-", i))
	}
	return []string{"http://" + admin + "/metrics"}
}

func metricPresent(admin, series string) error {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if !strings.Contains(string(body), series) {
		return fmt.Errorf("%s not exported yet", series)
	}
	return nil
}
