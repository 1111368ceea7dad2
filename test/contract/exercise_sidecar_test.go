package contract

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchyard-mesh/switchyard/test/harness"
)

func init() { exercisers["sidecar"] = exerciseSidecar }

// exerciseSidecar runs a ca, a one-node registry, the control plane and two
// sidecars (frontend, and users in front of a tiny app, registered by its
// sidecar), then sends requests frontend → users over mTLS so the proxy's
// downstream, upstream and xDS series have samples.
func exerciseSidecar(t testing.TB) []string {
	dir := t.TempDir()
	users, frontend := "spiffe://switchyard.local/ns/default/sa/users", "spiffe://switchyard.local/ns/default/sa/frontend"
	ids := map[string]string{
		"spiffe://switchyard.local/system/registry":     "contract-sc-registry-0123456789",
		"spiffe://switchyard.local/system/controlplane": "contract-sc-controlplane-0123456789",
		users:    "contract-sc-users-0123456789",
		frontend: "contract-sc-frontend-0123456789",
	}
	cfg := fmt.Sprintf("data_dir: %s\njoin_tokens:\n", filepath.Join(dir, "ca"))
	for id, tok := range ids {
		cfg += fmt.Sprintf("  - {token: %s, spiffe_id: %s}\n", tok, id)
	}
	cfgPath := filepath.Join(dir, "ca.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	caAddr, caAdmin := harness.FreeAddr(t), harness.FreeAddr(t)
	bundle := filepath.Join(dir, "ca", "bundle.pem")
	harness.Start(t, harness.Process{Name: "ca", Binary: harness.Binary(t, "ca"),
		Args: []string{"-config", cfgPath, "-grpc_addr", caAddr, "-admin.addr", caAdmin}, ReadyURL: "http://" + caAdmin + "/readyz"})
	idArgs := func(id string) []string {
		return []string{"-identity.ca_addr", caAddr, "-identity.join_token", ids[id], "-identity.spiffe_id", id, "-identity.trust_bundle_file", bundle}
	}
	regGRPC, regAdmin, raft := harness.FreeAddr(t), harness.FreeAddr(t), harness.FreeAddr(t)
	harness.Start(t, harness.Process{Name: "registry", Binary: harness.Binary(t, "registry"),
		Args: append([]string{"-node_id", "r1", "-data_dir", filepath.Join(dir, "registry"), "-grpc.addr", regGRPC,
			"-raft.addr", raft, "-raft.bootstrap", "r1=" + raft, "-admin.addr", regAdmin},
			idArgs("spiffe://switchyard.local/system/registry")...),
		ReadyURL: "http://" + regAdmin + "/readyz"})
	xdsAddr, cpAdmin := harness.FreeAddr(t), harness.FreeAddr(t)
	harness.Start(t, harness.Process{Name: "controlplane", Binary: harness.Binary(t, "controlplane"),
		Args: append([]string{"-xds_addr", xdsAddr, "-admin.addr", cpAdmin, "-registry_addr", regGRPC, "-debounce", "10ms"},
			idArgs("spiffe://switchyard.local/system/controlplane")...),
		ReadyURL: "http://" + cpAdmin + "/readyz"})

	appLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })}
	go func() { _ = app.Serve(appLn) }()
	t.Cleanup(func() { app.Close() })

	sidecar := func(service, id string, extra ...string) (admin, outbound string) {
		admin, outbound = harness.FreeAddr(t), harness.FreeAddr(t)
		harness.Start(t, harness.Process{Name: "sidecar-" + service, Binary: harness.Binary(t, "sidecar"),
			Args: append(append([]string{"-service", service, "-xds_addr", xdsAddr, "-admin.addr", admin,
				"-outbound_addr", outbound, "-inbound_addr", harness.FreeAddr(t)}, extra...), idArgs(id)...),
			ReadyURL: "http://" + admin + "/ready"})
		return admin, outbound
	}
	inbound := harness.FreeAddr(t)
	usersAdmin, _ := sidecar("users", users, "-app_port", fmt.Sprint(appLn.Addr().(*net.TCPAddr).Port),
		"-inbound_addr", inbound, "-registration.registry_addr", regGRPC, "-registration.advertise_addr", inbound, "-registration.ttl", "2s")
	frontendAdmin, out := sidecar("frontend", frontend)
	harness.Poll(t, 30*time.Second, func() error {
		req, _ := http.NewRequest("GET", "http://"+out+"/", nil)
		req.Host = "users"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("frontend → users: %s", resp.Status)
		}
		return nil
	})
	return []string{"http://" + frontendAdmin + "/metrics", "http://" + usersAdmin + "/metrics"}
}
