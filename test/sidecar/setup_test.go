// Package sidecar_test runs real sidecar binaries with the real ca, registry
// and control plane on loopback, with small Go HTTP apps as workloads.
package sidecar_test

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

func workloadID(service string) string { return meshtest.WorkloadID(service) }

// Join tokens the test CA accepts, by SPIFFE ID.
var tokens = map[string]string{
	meshtest.RegistryID:     "tok-registry-sc-0123456789",
	meshtest.ControlPlaneID: "tok-controlplane-sc-0123456789",
	meshtest.MeshctlID:      "tok-meshctl-sc-0123456789",
	workloadID("frontend"):  "tok-frontend-sc-0123456789",
	workloadID("users"):     "tok-users-sc-0123456789",
	workloadID("billing"):   "tok-billing-sc-0123456789",
	workloadID("orders"):    "tok-orders-sc-0123456789",
	workloadID("shadow"):    "tok-shadow-sc-0123456789",
}

// mesh is ca, one registry voter and the control plane, with this
// package's sidecars started against them.
type mesh struct{ *meshtest.Mesh }

func startMesh(t *testing.T) *mesh { return &mesh{meshtest.Start(t, tokens)} }

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
		"-xds_addr", m.XDSAddr, "-admin.addr", s.admin, "-outbound_addr", s.outbound, "-inbound_addr", s.inbound,
		"-log.format", "text", "-drain", "1s"}
	if appPort > 0 {
		args = append(args, "-app_port", fmt.Sprint(appPort), "-registration.registry_addr", m.RegistryGRPC,
			"-registration.advertise_addr", s.inbound, "-registration.ttl", "2s")
	}
	args = append(append(args, extra...), m.IdentityArgs(workloadID(service))...)
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
