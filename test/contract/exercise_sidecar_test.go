package contract

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/switchyard-mesh/switchyard/test/harness"
	"github.com/switchyard-mesh/switchyard/test/meshtest"
)

func init() { exercisers["sidecar"] = exerciseSidecar }

// exerciseSidecar runs a ca, a one-node registry, the control plane and two
// sidecars (frontend, and users in front of a tiny app, registered by its
// sidecar), then sends requests frontend → users over mTLS so the proxy's
// downstream, upstream (gRPC ones too) and xDS series have samples.
func exerciseSidecar(t testing.TB) []string {
	users, frontend := meshtest.WorkloadID("users"), meshtest.WorkloadID("frontend")
	m := meshtest.StartCA(t, map[string]string{
		meshtest.RegistryID:     "contract-sc-registry-0123456789",
		meshtest.ControlPlaneID: "contract-sc-controlplane-0123456789",
		users:                   "contract-sc-users-0123456789",
		frontend:                "contract-sc-frontend-0123456789",
	})
	m.StartRegistry(t)
	m.StartControlPlane(t, "-debounce", "10ms")
	xdsAddr, regGRPC := m.XDSAddr, m.RegistryGRPC
	idArgs := m.IdentityArgs

	appLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Type") == "application/grpc" {
			// A trailers-only gRPC answer, enough for the proxies' gRPC series.
			w.Header().Set("Content-Type", "application/grpc")
			w.Header().Set("Grpc-Status", "0")
			return
		}
		_, _ = io.WriteString(w, "ok")
	})}
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
	req, _ := http.NewRequest("POST", "http://"+out+"/users.v1.Users/Get", http.NoBody)
	req.Host = "users"
	req.Header.Set("Content-Type", "application/grpc")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Grpc-Status") != "0" {
		t.Fatalf("gRPC-framed call frontend → users: %s %v", resp.Status, resp.Header)
	}
	return []string{"http://" + frontendAdmin + "/metrics", "http://" + usersAdmin + "/metrics"}
}
