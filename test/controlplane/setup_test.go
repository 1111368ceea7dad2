package controlplane_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/switchyard-mesh/switchyard/services/kit/identity"
	"github.com/switchyard-mesh/switchyard/test/harness"
)

// Join tokens the test CA accepts, by SPIFFE ID.
var tokens = map[string]string{
	"spiffe://switchyard.local/system/registry":        "tok-registry-cp-0123456789",
	"spiffe://switchyard.local/system/controlplane":    "tok-controlplane-cp-0123456789",
	"spiffe://switchyard.local/system/meshctl":         "tok-meshctl-cp-0123456789",
	"spiffe://switchyard.local/ns/default/sa/frontend": "tok-frontend-cp-0123456789",
}

// mesh is a ca, a one-node registry and a control plane, all real binaries.
type mesh struct {
	caAddr, bundle      string
	registryGRPC        string
	registryHTTP        string
	xdsAddr, cpAdmin    string
	registry, cp, caPrc *harness.Proc
}

func identityArgs(m *mesh, id string) []string {
	return []string{
		"-identity.ca_addr", m.caAddr, "-identity.join_token", tokens[id],
		"-identity.spiffe_id", id, "-identity.trust_bundle_file", m.bundle,
	}
}

func startMesh(t *testing.T) *mesh {
	t.Helper()
	dir := t.TempDir()
	m := &mesh{caAddr: harness.FreeAddr(t), bundle: filepath.Join(dir, "ca", "bundle.pem")}

	var cfg strings.Builder
	fmt.Fprintf(&cfg, "log: {format: text, level: info}\ndata_dir: %s\njoin_tokens:\n", filepath.Join(dir, "ca"))
	for id, tok := range tokens {
		fmt.Fprintf(&cfg, "  - {token: %s, spiffe_id: %s}\n", tok, id)
	}
	caCfg := filepath.Join(dir, "ca.yaml")
	if err := os.WriteFile(caCfg, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	caAdmin := harness.FreeAddr(t)
	m.caPrc = harness.Start(t, harness.Process{
		Name: "ca", Binary: harness.Binary(t, "ca"),
		Args:     []string{"-config", caCfg, "-grpc_addr", m.caAddr, "-admin.addr", caAdmin},
		ReadyURL: "http://" + caAdmin + "/readyz",
	})

	m.registryGRPC, m.registryHTTP = harness.FreeAddr(t), harness.FreeAddr(t)
	raft := harness.FreeAddr(t)
	m.registry = harness.Start(t, harness.Process{
		Name: "registry", Binary: harness.Binary(t, "registry"),
		Args: append([]string{
			"-node_id", "r1", "-data_dir", filepath.Join(dir, "registry"),
			"-grpc.addr", m.registryGRPC, "-raft.addr", raft, "-raft.bootstrap", "r1=" + raft,
			"-admin.addr", m.registryHTTP, "-log.format", "text",
		}, identityArgs(m, "spiffe://switchyard.local/system/registry")...),
		ReadyURL: "http://" + m.registryHTTP + "/readyz",
	})

	m.xdsAddr, m.cpAdmin = harness.FreeAddr(t), harness.FreeAddr(t)
	m.cp = harness.Start(t, harness.Process{
		Name: "controlplane", Binary: harness.Binary(t, "controlplane"),
		Args: append([]string{
			"-xds_addr", m.xdsAddr, "-admin.addr", m.cpAdmin, "-registry_addr", m.registryGRPC,
			"-xds_plaintext", "-debounce", "20ms", "-log.format", "text", "-log.level", "debug",
		}, identityArgs(m, "spiffe://switchyard.local/system/controlplane")...),
		ReadyURL: "http://" + m.cpAdmin + "/readyz",
	})
	return m
}

// backend is a plain gRPC server answering with its own name.
type backend struct {
	testgrpc.UnimplementedTestServiceServer
	id string
}

func (b *backend) UnaryCall(context.Context, *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	return &testgrpc.SimpleResponse{ServerId: b.id}, nil
}

func startBackend(t *testing.T, id string) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(s, &backend{id: id})
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
	return ln.Addr().(*net.TCPAddr).Port
}

// register puts an instance into the registry through its HTTP API.
func (m *mesh) register(t *testing.T, service, id string, port int, tags ...string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{
		"service": service, "id": id, "address": "127.0.0.1", "port": port, "tags": tags,
	})
	m.post(t, "/v1/register", body)
}

func (m *mesh) deregister(t *testing.T, service, id string) {
	t.Helper()
	m.post(t, "/v1/deregister/"+service+"/"+id, nil)
}

func (m *mesh) post(t *testing.T, path string, body []byte) {
	t.Helper()
	resp, err := http.Post("http://"+m.registryHTTP+path, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %s: %s", path, resp.Status, b)
	}
}

// proxies reads the control plane's proxy status (what meshctl status shows).
func (m *mesh) proxies(t *testing.T) []map[string]any {
	t.Helper()
	resp, err := http.Get("http://" + m.cpAdmin + "/debug/xds/proxies")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Proxies []map[string]any `json:"proxies"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.Proxies
}

// svid fetches an SVID for the test itself acting as meshctl.
func (m *mesh) svid(t *testing.T, ctx context.Context) *identity.Source {
	return m.svidFor(t, ctx, "spiffe://switchyard.local/system/meshctl")
}

// svidFor fetches an SVID for id (which must have a token).
func (m *mesh) svidFor(t *testing.T, ctx context.Context, id string) *identity.Source {
	t.Helper()
	src, err := identity.New(ctx, identity.Config{
		CAAddr: m.caAddr, JoinToken: tokens[id], SPIFFEID: id, TrustBundleFile: m.bundle,
	}, identity.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return src
}
