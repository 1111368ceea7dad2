package ratelimit_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/switchyard-mesh/switchyard/services/kit/identity"
	"github.com/switchyard-mesh/switchyard/test/harness"
)

// TestMTLS runs ratelimit with its SVID from the real ca: an allowed
// caller (the gateway) gets decisions, another mesh identity and a
// plaintext client are refused.
func TestMTLS(t *testing.T) {
	tokens := map[string]spiffeid.ID{
		"tok-ratelimit-0123456789":    identity.SystemID("ratelimit"),
		"tok-gateway-0123456789":      identity.SystemID("gateway"),
		"tok-controlplane-0123456789": identity.SystemID("controlplane"),
	}
	dir := t.TempDir()
	var b strings.Builder
	fmt.Fprintf(&b, "log:\n  format: text\ndata_dir: %s\njoin_tokens:\n", filepath.Join(dir, "data"))
	for tok, id := range tokens {
		fmt.Fprintf(&b, "  - token: %s\n    spiffe_id: %s\n", tok, id)
	}
	caCfg := filepath.Join(dir, "ca.yaml")
	if err := os.WriteFile(caCfg, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	caAddr, caAdmin := harness.FreeAddr(t), harness.FreeAddr(t)
	bundle := filepath.Join(dir, "data", "bundle.pem")
	harness.Start(t, harness.Process{
		Name: "ca", Binary: harness.Binary(t, "ca"),
		Args:     []string{"-config", caCfg, "-grpc_addr", caAddr, "-admin.addr", caAdmin},
		ReadyURL: "http://" + caAdmin + "/readyz",
	})

	r := startRedis(t)
	rlAddr, rlAdmin := harness.FreeAddr(t), harness.FreeAddr(t)
	harness.Start(t, harness.Process{
		Name: "ratelimit", Binary: harness.Binary(t, "ratelimit"),
		Args: []string{
			"-grpc.addr", rlAddr, "-admin.addr", rlAdmin, "-limits.path", writeRules(t, rulesYAML),
			"-redis.addrs", r.addr, "-log.format", "text",
			"-tls.mode", "spiffe", "-tls.allowed_clients", identity.SystemID("gateway").String(),
			"-identity.ca_addr", caAddr, "-identity.join_token", "tok-ratelimit-0123456789",
			"-identity.spiffe_id", identity.SystemID("ratelimit").String(), "-identity.trust_bundle_file", bundle,
		},
		ReadyURL: "http://" + rlAdmin + "/readyz",
	})

	client := func(id spiffeid.ID) rlsv3.RateLimitServiceClient {
		var tok string
		for k, v := range tokens {
			if v == id {
				tok = k
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		src, err := identity.New(ctx, identity.Config{CAAddr: caAddr, JoinToken: tok, SPIFFEID: id.String(), TrustBundleFile: bundle}, identity.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return rlsClient(t, rlAddr, src.ClientCredentials(identity.SystemID("ratelimit")))
	}

	if resp := ask(t, client(identity.SystemID("gateway")), "path", "/seed"); resp.GetOverallCode() != rlsv3.RateLimitResponse_OK || header(resp, "X-RateLimit-Remaining") != "9" {
		t.Fatalf("gateway over mTLS: %v", resp)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req := &rlsv3.RateLimitRequest{Domain: "api", Descriptors: nil}
	if _, err := client(identity.SystemID("controlplane")).ShouldRateLimit(ctx, req); err == nil {
		t.Fatal("a caller outside tls.allowed_clients was served")
	}
	if _, err := rlsClient(t, rlAddr, insecure.NewCredentials()).ShouldRateLimit(ctx, req); err == nil {
		t.Fatal("a plaintext caller was served")
	}
}
