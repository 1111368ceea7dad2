package contract

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	cav1 "github.com/switchyard-mesh/switchyard/proto/switchyard/ca/v1"
	"github.com/switchyard-mesh/switchyard/services/kit/grpcx"
	"github.com/switchyard-mesh/switchyard/services/kit/identity"
	"github.com/switchyard-mesh/switchyard/test/harness"
)

func init() { exercisers["ca"] = exerciseCA }

// exerciseCA runs the ca with a join token, obtains an SVID through
// kit/identity (join token, then an mTLS renewal) and fetches the bundle, so
// the ca's issuance metrics and the switchyard_identity_* metrics every
// binary exports have samples. The identity metrics are served from this
// process, where the kit/identity Source lives.
func exerciseCA(t testing.TB) []string {
	dir := t.TempDir()
	token := "contract-exercise-token-0123456789"
	id := identity.SystemID("registry")
	cfgPath := filepath.Join(dir, "ca.yaml")
	cfg := fmt.Sprintf("data_dir: %s\njoin_tokens:\n  - token: %s\n    spiffe_id: %s\n", filepath.Join(dir, "data"), token, id)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr, admin := harness.FreeAddr(t), harness.FreeAddr(t)
	harness.Start(t, harness.Process{
		Name:     "ca",
		Binary:   harness.Binary(t, "ca"),
		Args:     []string{"-config", cfgPath, "-grpc_addr", addr, "-admin.addr", admin},
		ReadyURL: "http://" + admin + "/readyz",
	})

	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	src, err := identity.New(ctx, identity.Config{CAAddr: addr, JoinToken: token, SPIFFEID: id.String(),
		TrustBundleFile: filepath.Join(dir, "data", "bundle.pem"), TTL: 2 * time.Second},
		identity.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: reg})
	if err != nil {
		t.Fatalf("SVID from the ca: %v", err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = src.Run(runCtx); close(done) }()
	t.Cleanup(func() { stop(); <-done })
	first := src.Changed()
	select {
	case <-first: // renewed over mTLS
	case <-ctx.Done():
		t.Fatal("no SVID renewal within 20 s")
	}

	conn, err := grpcx.Dial(addr, src.ClientCredentials(identity.SystemID("ca")))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := cav1.NewCAServiceClient(conn).GetTrustBundle(ctx, &cav1.GetTrustBundleRequest{}); err != nil {
		t.Fatalf("GetTrustBundle: %v", err)
	}

	identityMetrics := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(identityMetrics.Close)
	return []string{"http://" + admin + "/metrics", identityMetrics.URL}
}
