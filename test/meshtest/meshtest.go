// Package meshtest starts the mesh's own components — the ca, a one-voter
// registry and the control plane — as the real binaries for end-to-end
// tests, and drives them the way an operator does (config documents applied
// over mTLS, as meshctl does). Workloads and sidecars are the tests' own.
package meshtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	registryv1 "github.com/switchyard-mesh/switchyard/proto/switchyard/registry/v1"
	"github.com/switchyard-mesh/switchyard/services/kit/grpcx"
	"github.com/switchyard-mesh/switchyard/services/kit/identity"
	"github.com/switchyard-mesh/switchyard/services/kit/meshconfig"
	"github.com/switchyard-mesh/switchyard/test/harness"
)

// SPIFFE IDs of the system components.
const (
	RegistryID     = "spiffe://switchyard.local/system/registry"
	ControlPlaneID = "spiffe://switchyard.local/system/controlplane"
	MeshctlID      = "spiffe://switchyard.local/system/meshctl"
)

// WorkloadID is the SPIFFE ID of a workload in the default namespace.
func WorkloadID(service string) string { return "spiffe://switchyard.local/ns/default/sa/" + service }

// Mesh is a running ca, and the registry and control plane once started.
type Mesh struct {
	Dir    string
	Tokens map[string]string // SPIFFE ID → join token the ca accepts

	CAAddr, CAAdmin, Bundle string
	CA                      *harness.Proc
	caConfig                string // path of the ca's config file

	RegistryGRPC, RegistryAdmin string
	Registry                    *harness.Proc

	XDSAddr, ControlPlaneAdmin string
	ControlPlane               *harness.Proc
}

// Start runs the ca (accepting tokens), one registry voter and the control
// plane (debounce 20 ms), each ready before the next.
func Start(t testing.TB, tokens map[string]string) *Mesh {
	t.Helper()
	m := StartCA(t, tokens)
	m.StartRegistry(t)
	m.StartControlPlane(t)
	return m
}

// StartCA runs the ca with a join token per SPIFFE ID; extraYAML are more
// top-level lines of its config file (svid_ttl: 8s, extra_roots_file: …).
func StartCA(t testing.TB, tokens map[string]string, extraYAML ...string) *Mesh {
	t.Helper()
	dir := t.TempDir()
	m := &Mesh{Dir: dir, Tokens: tokens, CAAddr: harness.FreeAddr(t), CAAdmin: harness.FreeAddr(t),
		Bundle: filepath.Join(dir, "ca", "bundle.pem"), caConfig: filepath.Join(dir, "ca.yaml")}
	m.writeCAConfig(t, extraYAML)
	m.CA = harness.Start(t, harness.Process{Name: "ca", Binary: harness.Binary(t, "ca"),
		Args: []string{"-config", m.caConfig, "-grpc_addr", m.CAAddr, "-admin.addr", m.CAAdmin}, ReadyURL: "http://" + m.CAAdmin + "/readyz"})
	return m
}

// RestartCA rewrites the ca's config with extraYAML in place of the lines
// given before, and restarts it, as an operator changing its settings does.
func (m *Mesh) RestartCA(t testing.TB, extraYAML ...string) {
	t.Helper()
	m.writeCAConfig(t, extraYAML)
	m.CA.Restart(t)
}

// CADataDir is the ca's data_dir (root.crt, root.key, bundle.pem).
func (m *Mesh) CADataDir() string { return filepath.Join(m.Dir, "ca") }

func (m *Mesh) writeCAConfig(t testing.TB, extraYAML []string) {
	t.Helper()
	ids := make([]string, 0, len(m.Tokens))
	for id := range m.Tokens {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "log: {format: text, level: info}\ndata_dir: %s\n", m.CADataDir())
	for _, y := range extraYAML {
		cfg.WriteString(y + "\n")
	}
	cfg.WriteString("join_tokens:\n")
	for _, id := range ids {
		fmt.Fprintf(&cfg, "  - {token: %s, spiffe_id: %s}\n", m.Tokens[id], id)
	}
	if err := os.WriteFile(m.caConfig, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// IdentityArgs are the flags that give a binary its SVID as id.
func (m *Mesh) IdentityArgs(id string) []string {
	return []string{"-identity.ca_addr", m.CAAddr, "-identity.join_token", m.Tokens[id],
		"-identity.spiffe_id", id, "-identity.trust_bundle_file", m.Bundle}
}

// StartRegistry runs a one-voter registry.
func (m *Mesh) StartRegistry(t testing.TB) {
	t.Helper()
	m.RegistryGRPC, m.RegistryAdmin = harness.FreeAddr(t), harness.FreeAddr(t)
	raft := harness.FreeAddr(t)
	m.Registry = harness.Start(t, harness.Process{Name: "registry", Binary: harness.Binary(t, "registry"),
		Args: append([]string{"-node_id", "r1", "-data_dir", filepath.Join(m.Dir, "registry"), "-grpc.addr", m.RegistryGRPC,
			"-raft.addr", raft, "-raft.bootstrap", "r1=" + raft, "-admin.addr", m.RegistryAdmin, "-log.format", "text"},
			m.IdentityArgs(RegistryID)...),
		ReadyURL: "http://" + m.RegistryAdmin + "/readyz"})
}

// StartControlPlane runs the control plane against the registry, with
// extra flags after the defaults.
func (m *Mesh) StartControlPlane(t testing.TB, extra ...string) {
	t.Helper()
	m.XDSAddr, m.ControlPlaneAdmin = harness.FreeAddr(t), harness.FreeAddr(t)
	args := append([]string{"-xds_addr", m.XDSAddr, "-admin.addr", m.ControlPlaneAdmin, "-registry_addr", m.RegistryGRPC,
		"-debounce", "20ms", "-log.format", "text"}, m.IdentityArgs(ControlPlaneID)...)
	m.ControlPlane = harness.Start(t, harness.Process{Name: "controlplane", Binary: harness.Binary(t, "controlplane"),
		Args: append(args, extra...), ReadyURL: "http://" + m.ControlPlaneAdmin + "/readyz"})
}

// Apply validates the YAML documents and stores each in the registry over
// mTLS as meshctl (whose token must be in Tokens), as `meshctl apply` does.
func (m *Mesh) Apply(t testing.TB, docs string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	src, err := identity.New(ctx, identity.Config{CAAddr: m.CAAddr, JoinToken: m.Tokens[MeshctlID], SPIFFEID: MeshctlID, TrustBundleFile: m.Bundle}, identity.Options{})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpcx.Dial(m.RegistryGRPC, src.ClientCredentials(spiffeid.RequireFromString(RegistryID)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	parsed, err := meshconfig.Parse(strings.NewReader(docs))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range parsed {
		body, err := d.SpecJSON()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := registryv1.NewRegistryServiceClient(conn).ApplyConfig(ctx, &registryv1.ApplyConfigRequest{Kind: d.Kind, Name: d.Name, Body: body}); err != nil {
			t.Fatalf("apply %s/%s: %v", d.Kind, d.Name, err)
		}
	}
}

// TCPServicePort is a free port for a TCP service's outbound listener
// (ServiceDefaults outbound_port; never a sidecar's default app port, 8080).
func TCPServicePort(t testing.TB) int {
	t.Helper()
	for {
		_, p, _ := net.SplitHostPort(harness.FreeAddr(t))
		if port, _ := strconv.Atoi(p); port != 8080 {
			return port
		}
	}
}
