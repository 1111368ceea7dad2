// Package tcpmesh_test runs the L4 TCP mode end to end: the real ca,
// registry, controlplane and sidecar binaries on loopback, raw TCP echo
// servers as workloads, and an app-side client dialing the localhost
// outbound_port of a TCP service on its own sidecar.
package tcpmesh_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-mesh/switchyard/test/harness"
	"github.com/switchyard-mesh/switchyard/test/meshtest"
)

func workloadID(service string) string { return meshtest.WorkloadID(service) }

// Join tokens the test CA accepts, by SPIFFE ID.
var tokens = map[string]string{
	meshtest.RegistryID:     "tok-registry-tcp-0123456789",
	meshtest.ControlPlaneID: "tok-controlplane-tcp-0123456789",
	meshtest.MeshctlID:      "tok-meshctl-tcp-0123456789",
	workloadID("echo"):      "tok-echo-tcp-0123456789",
	workloadID("client"):    "tok-client-tcp-0123456789",
}

// mesh is ca, one registry voter and the control plane, with this
// package's sidecars started against them.
type mesh struct{ *meshtest.Mesh }

func startMesh(t *testing.T) *mesh { return &mesh{meshtest.Start(t, tokens)} }

// sidecarProc is one running sidecar binary.
type sidecarProc struct {
	proc           *harness.Proc
	admin, inbound string
}

// startSidecar runs a sidecar for service. appPort > 0 also registers the
// workload (its inbound listener) in the registry. The HTTP outbound and the
// inbound listener get free addresses (several sidecars share this host);
// outbound TCP listeners bind where the control plane says.
func (m *mesh) startSidecar(t *testing.T, service, instance string, appPort int) *sidecarProc {
	t.Helper()
	s := &sidecarProc{admin: harness.FreeAddr(t), inbound: harness.FreeAddr(t)}
	args := []string{"-service", service, "-instance_id", instance, "-namespace", "default",
		"-xds_addr", m.XDSAddr, "-admin.addr", s.admin, "-outbound_addr", harness.FreeAddr(t), "-inbound_addr", s.inbound,
		"-log.format", "text", "-drain", "1s"}
	if appPort > 0 {
		args = append(args, "-app_port", fmt.Sprint(appPort), "-registration.registry_addr", m.RegistryGRPC,
			"-registration.advertise_addr", s.inbound, "-registration.ttl", "2s")
	}
	args = append(args, m.IdentityArgs(workloadID(service))...)
	s.proc = harness.Start(t, harness.Process{Name: "sidecar-" + instance, Binary: harness.Binary(t, "sidecar"),
		Args: args, ReadyURL: "http://" + s.admin + "/ready"})
	return s
}

// startEcho is a raw TCP workload on loopback: on every connection it sends
// "<name>\n", then echoes every byte back until the peer half-closes.
// It returns its port.
func startEcho(t *testing.T, name string) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(30 * time.Second))
				if _, err := fmt.Fprintf(c, "%s\n", name); err != nil {
					return
				}
				_, _ = io.Copy(c, c)
			})
		}
	})
	return ln.Addr().(*net.TCPAddr).Port
}

// exchange dials addr as an app would, reads the backend's greeting, sends
// payload, half-closes and reads the echo to EOF. It returns the backend's
// name; err says where the exchange broke (refused, closed before the
// greeting, echo differs).
func exchange(addr string, payload []byte) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	greeting, err := r.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("%w: closed before the backend answered (%q)", errClosed, greeting)
	}
	name := strings.TrimSuffix(greeting, "\n")
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(payload)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		errc <- err
	}()
	echo, err := io.ReadAll(r)
	if werr := <-errc; werr != nil {
		return name, fmt.Errorf("write: %w", werr)
	}
	if err != nil {
		return name, fmt.Errorf("read echo: %w", err)
	}
	if string(echo) != string(payload) {
		return name, fmt.Errorf("echo from %s: %d bytes differ from the %d sent", name, len(echo), len(payload))
	}
	return name, nil
}

var errClosed = fmt.Errorf("connection closed")
