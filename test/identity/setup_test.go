package identity_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/switchyard-mesh/switchyard/services/kit/grpcx"
	"github.com/switchyard-mesh/switchyard/services/kit/identity"
	"github.com/switchyard-mesh/switchyard/test/harness"
)

// Join tokens every test CA is configured with: SPIFFE ID by token.
var joinTokens = map[string]spiffeid.ID{
	"tok-registry-0123456789":     identity.SystemID("registry"),
	"tok-controlplane-0123456789": identity.SystemID("controlplane"),
	"tok-meshctl-0123456789":      identity.SystemID("meshctl"),
	"tok-orders-0123456789":       identity.WorkloadID("shop", "orders"),
}

func tokenFor(id spiffeid.ID) string {
	for tok, tid := range joinTokens {
		if tid == id {
			return tok
		}
	}
	panic("no token for " + id.String())
}

type ca struct {
	proc       *harness.Proc
	addr       string
	admin      string
	bundleFile string
}

// startCA runs the real ca binary with its own data dir; extraYAML is
// appended to its configuration file.
func startCA(t testing.TB, svidTTL time.Duration, extraYAML ...string) *ca {
	t.Helper()
	dir := t.TempDir()
	var b strings.Builder
	for _, y := range extraYAML {
		b.WriteString(y + "\n")
	}
	fmt.Fprintf(&b, "log:\n  format: text\n  level: debug\nsvid_ttl: %s\ndata_dir: %s\njoin_tokens:\n", svidTTL, filepath.Join(dir, "data"))
	for tok, id := range joinTokens {
		fmt.Fprintf(&b, "  - token: %s\n    spiffe_id: %s\n", tok, id)
	}
	cfgPath := filepath.Join(dir, "ca.yaml")
	if err := os.WriteFile(cfgPath, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &ca{addr: harness.FreeAddr(t), admin: harness.FreeAddr(t), bundleFile: filepath.Join(dir, "data", "bundle.pem")}
	c.proc = harness.Start(t, harness.Process{
		Name:     "ca",
		Binary:   harness.Binary(t, "ca"),
		Args:     []string{"-config", cfgPath, "-grpc_addr", c.addr, "-admin.addr", c.admin},
		ReadyURL: "http://" + c.admin + "/readyz",
	})
	return c
}

type peerProc struct {
	proc  *harness.Proc
	addr  string
	admin string
}

// startPeer runs the test binary as an idpeer process holding id, accepting
// only the allowed clients.
func startPeer(t testing.TB, c *ca, id spiffeid.ID, allow ...spiffeid.ID) *peerProc {
	t.Helper()
	p := &peerProc{addr: harness.FreeAddr(t), admin: harness.FreeAddr(t)}
	var allowed []string
	for _, a := range allow {
		allowed = append(allowed, a.String())
	}
	p.proc = harness.Start(t, harness.Process{
		Name:   "idpeer",
		Binary: os.Args[0],
		// The token goes in the environment, as in compose: flags show in ps.
		Env: []string{peerEnv + "=1", "SWITCHYARD_IDENTITY_JOIN_TOKEN=" + tokenFor(id)},
		Args: []string{
			"-log.format=text", "-admin.addr", p.admin, "-grpc_addr", p.addr, "-allow", strings.Join(allowed, ","),
			"-identity.ca_addr", c.addr, "-identity.spiffe_id", id.String(),
			"-identity.trust_bundle_file", c.bundleFile,
		},
		ReadyURL: "http://" + p.admin + "/readyz",
	})
	return p
}

// newSource gets an SVID for id from c inside the test process.
func newSource(t testing.TB, c *ca, id spiffeid.ID, ttl time.Duration) *identity.Source {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	src, err := identity.New(ctx, identity.Config{CAAddr: c.addr, JoinToken: tokenFor(id), SPIFFEID: id.String(), TrustBundleFile: c.bundleFile, TTL: ttl},
		identity.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("identity.New(%s): %v", id, err)
	}
	return src
}

// runSource renews src in the background until the test ends.
func runSource(t *testing.T, src *identity.Source) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = src.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func dial(t testing.TB, addr string, creds credentials.TransportCredentials) *grpc.ClientConn {
	t.Helper()
	conn, err := grpcx.Dial(addr, creds)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// check makes one health call; a refused handshake surfaces as its error.
func check(conn *grpc.ClientConn, opts ...grpc.CallOption) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, opts...)
	return err
}

// metric reads one sample from a process's /metrics; labels is the exact
// label text inside the braces, or "" for an unlabelled series.
func metric(t testing.TB, admin, name, labels string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	series := name
	if labels != "" {
		series += "{" + labels + "}"
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
