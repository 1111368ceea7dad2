// Package sidecar_test runs real sidecar binaries with the real ca, registry
// and control plane on loopback, with small Go HTTP apps as workloads.
package sidecar_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
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

func workloadID(service string) string { return "spiffe://switchyard.local/ns/default/sa/" + service }

// Join tokens the test CA accepts, by SPIFFE ID.
var tokens = map[string]string{
	"spiffe://switchyard.local/system/registry":     "tok-registry-sc-0123456789",
	"spiffe://switchyard.local/system/controlplane": "tok-controlplane-sc-0123456789",
	"spiffe://switchyard.local/system/meshctl":      "tok-meshctl-sc-0123456789",
	workloadID("frontend"):                          "tok-frontend-sc-0123456789",
	workloadID("users"):                             "tok-users-sc-0123456789",
	workloadID("billing"):                           "tok-billing-sc-0123456789",
	workloadID("orders"):                            "tok-orders-sc-0123456789",
	workloadID("shadow"):                            "tok-shadow-sc-0123456789",
}

type mesh struct {
	dir              string
	caAddr, bundle   string
	registryGRPC     string
	xdsAddr          string
	ca, registry, cp *harness.Proc
}

func (m *mesh) identityArgs(id string) []string {
	return []string{"-identity.ca_addr", m.caAddr, "-identity.join_token", tokens[id],
		"-identity.spiffe_id", id, "-identity.trust_bundle_file", m.bundle}
}

func startMesh(t *testing.T) *mesh {
	t.Helper()
	dir := t.TempDir()
	m := &mesh{dir: dir, caAddr: harness.FreeAddr(t), bundle: filepath.Join(dir, "ca", "bundle.pem")}
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
	m.ca = harness.Start(t, harness.Process{Name: "ca", Binary: harness.Binary(t, "ca"),
		Args: []string{"-config", caCfg, "-grpc_addr", m.caAddr, "-admin.addr", caAdmin}, ReadyURL: "http://" + caAdmin + "/readyz"})

	m.registryGRPC = harness.FreeAddr(t)
	regAdmin, raft := harness.FreeAddr(t), harness.FreeAddr(t)
	m.registry = harness.Start(t, harness.Process{Name: "registry", Binary: harness.Binary(t, "registry"),
		Args: append([]string{"-node_id", "r1", "-data_dir", filepath.Join(dir, "registry"), "-grpc.addr", m.registryGRPC,
			"-raft.addr", raft, "-raft.bootstrap", "r1=" + raft, "-admin.addr", regAdmin, "-log.format", "text"},
			m.identityArgs("spiffe://switchyard.local/system/registry")...),
		ReadyURL: "http://" + regAdmin + "/readyz"})

	m.xdsAddr = harness.FreeAddr(t)
	cpAdmin := harness.FreeAddr(t)
	m.cp = harness.Start(t, harness.Process{Name: "controlplane", Binary: harness.Binary(t, "controlplane"),
		Args: append([]string{"-xds_addr", m.xdsAddr, "-admin.addr", cpAdmin, "-registry_addr", m.registryGRPC,
			"-debounce", "20ms", "-log.format", "text"}, m.identityArgs("spiffe://switchyard.local/system/controlplane")...),
		ReadyURL: "http://" + cpAdmin + "/readyz"})
	return m
}

// sidecarProc is one running sidecar binary.
type sidecarProc struct {
	proc                     *harness.Proc
	admin, outbound, inbound string
}

// startSidecar runs a sidecar for service; appPort > 0 also registers the
// workload (its inbound listener) in the registry.
func (m *mesh) startSidecar(t *testing.T, service, instance string, appPort int, extra ...string) *sidecarProc {
	t.Helper()
	s := &sidecarProc{admin: harness.FreeAddr(t), outbound: harness.FreeAddr(t), inbound: harness.FreeAddr(t)}
	args := []string{"-service", service, "-instance_id", instance, "-namespace", "default",
		"-xds_addr", m.xdsAddr, "-admin.addr", s.admin, "-outbound_addr", s.outbound, "-inbound_addr", s.inbound,
		"-log.format", "text", "-drain", "1s"}
	if appPort > 0 {
		args = append(args, "-app_port", fmt.Sprint(appPort), "-registration.registry_addr", m.registryGRPC,
			"-registration.advertise_addr", s.inbound, "-registration.ttl", "2s")
	}
	args = append(append(args, extra...), m.identityArgs(workloadID(service))...)
	s.proc = harness.Start(t, harness.Process{Name: "sidecar-" + instance, Binary: harness.Binary(t, "sidecar"),
		Args: args, ReadyURL: "http://" + s.admin + "/ready"})
	return s
}

// startApp is a workload: answers with its name, /healthz 200.
func startApp(t *testing.T, name string) int {
	return startHandler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		fmt.Fprintf(w, "%s caller=%s", name, r.Header.Get("X-Forwarded-Client-Cert"))
	}))
}

// startHandler serves h on a free loopback port and returns the port.
func startHandler(t *testing.T, h http.Handler) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

var client = &http.Client{Timeout: 5 * time.Second}

// call sends an app request through a sidecar's outbound listener.
func call(outbound, host, path string) (int, string, http.Header, error) {
	req, _ := http.NewRequest("GET", "http://"+outbound+path, nil)
	req.Host = host
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header, nil
}

// apply stores config documents in the registry, as meshctl apply does.
func (m *mesh) apply(t *testing.T, doc string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id := "spiffe://switchyard.local/system/meshctl"
	src, err := identity.New(ctx, identity.Config{CAAddr: m.caAddr, JoinToken: tokens[id], SPIFFEID: id, TrustBundleFile: m.bundle}, identity.Options{})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpcx.Dial(m.registryGRPC, src.ClientCredentials(spiffeid.RequireFromString("spiffe://switchyard.local/system/registry")))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	docs, err := meshconfig.Parse(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		body, err := d.SpecJSON()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := registryv1.NewRegistryServiceClient(conn).ApplyConfig(ctx, &registryv1.ApplyConfigRequest{Kind: d.Kind, Name: d.Name, Body: body}); err != nil {
			t.Fatalf("apply %s/%s: %v", d.Kind, d.Name, err)
		}
	}
}
