// Package tcpmesh_test runs the L4 TCP mode end to end: the real ca,
// registry, controlplane and sidecar binaries on loopback, raw TCP echo
// servers as workloads, and an app-side client dialing the localhost
// outbound_port of a TCP service on its own sidecar.
package tcpmesh_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
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

const meshctlID = "spiffe://switchyard.local/system/meshctl"

// Join tokens the test CA accepts, by SPIFFE ID.
var tokens = map[string]string{
	"spiffe://switchyard.local/system/registry":     "tok-registry-tcp-0123456789",
	"spiffe://switchyard.local/system/controlplane": "tok-controlplane-tcp-0123456789",
	meshctlID:            "tok-meshctl-tcp-0123456789",
	workloadID("echo"):   "tok-echo-tcp-0123456789",
	workloadID("client"): "tok-client-tcp-0123456789",
}

type mesh struct {
	caAddr, bundle string
	registryGRPC   string
	xdsAddr        string
}

func (m *mesh) identityArgs(id string) []string {
	return []string{"-identity.ca_addr", m.caAddr, "-identity.join_token", tokens[id],
		"-identity.spiffe_id", id, "-identity.trust_bundle_file", m.bundle}
}

// startMesh runs ca, one registry voter and the control plane.
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
	harness.Start(t, harness.Process{Name: "ca", Binary: harness.Binary(t, "ca"),
		Args: []string{"-config", caCfg, "-grpc_addr", m.caAddr, "-admin.addr", caAdmin}, ReadyURL: "http://" + caAdmin + "/readyz"})

	m.registryGRPC = harness.FreeAddr(t)
	regAdmin, raft := harness.FreeAddr(t), harness.FreeAddr(t)
	harness.Start(t, harness.Process{Name: "registry", Binary: harness.Binary(t, "registry"),
		Args: append([]string{"-node_id", "r1", "-data_dir", filepath.Join(dir, "registry"), "-grpc.addr", m.registryGRPC,
			"-raft.addr", raft, "-raft.bootstrap", "r1=" + raft, "-admin.addr", regAdmin, "-log.format", "text"},
			m.identityArgs("spiffe://switchyard.local/system/registry")...),
		ReadyURL: "http://" + regAdmin + "/readyz"})

	m.xdsAddr = harness.FreeAddr(t)
	cpAdmin := harness.FreeAddr(t)
	harness.Start(t, harness.Process{Name: "controlplane", Binary: harness.Binary(t, "controlplane"),
		Args: append([]string{"-xds_addr", m.xdsAddr, "-admin.addr", cpAdmin, "-registry_addr", m.registryGRPC,
			"-debounce", "20ms", "-log.format", "text"}, m.identityArgs("spiffe://switchyard.local/system/controlplane")...),
		ReadyURL: "http://" + cpAdmin + "/readyz"})
	return m
}

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
		"-xds_addr", m.xdsAddr, "-admin.addr", s.admin, "-outbound_addr", harness.FreeAddr(t), "-inbound_addr", s.inbound,
		"-log.format", "text", "-drain", "1s"}
	if appPort > 0 {
		args = append(args, "-app_port", fmt.Sprint(appPort), "-registration.registry_addr", m.registryGRPC,
			"-registration.advertise_addr", s.inbound, "-registration.ttl", "2s")
	}
	args = append(args, m.identityArgs(workloadID(service))...)
	s.proc = harness.Start(t, harness.Process{Name: "sidecar-" + instance, Binary: harness.Binary(t, "sidecar"),
		Args: args, ReadyURL: "http://" + s.admin + "/ready"})
	return s
}

// apply stores config documents in the registry, as meshctl apply does.
func (m *mesh) apply(t *testing.T, doc string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	src, err := identity.New(ctx, identity.Config{CAAddr: m.caAddr, JoinToken: tokens[meshctlID], SPIFFEID: meshctlID, TrustBundleFile: m.bundle}, identity.Options{})
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
