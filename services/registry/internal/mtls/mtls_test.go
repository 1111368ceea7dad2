package mtls_test

import (
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-mesh/switchyard/services/registry/internal/mtls"
	"github.com/switchyard-mesh/switchyard/services/registry/internal/testutil"
)

// handshake runs a TLS server with serverCfg and dials it with clientCfg,
// returning the client's and the server's handshake errors.
func handshake(t *testing.T, serverCfg, clientCfg *tls.Config) (clientErr, serverErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srvErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srvErr <- err
			return
		}
		defer c.Close()
		tc := tls.Server(c, serverCfg)
		_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
		err = tc.Handshake()
		if err == nil {
			_, _ = tc.Write([]byte("x"))
		}
		srvErr <- err
	}()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), clientCfg)
	if err == nil {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = io.ReadFull(c, make([]byte, 1)) // TLS 1.3: the server's verdict arrives after the handshake
		c.Close()
	}
	return err, <-srvErr
}

func material(t *testing.T, ca *testutil.CA, name, id string) *mtls.Material {
	t.Helper()
	cert, key := ca.Issue(t, name, id)
	m, err := mtls.LoadFiles(cert, key, ca.BundleFile())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestPeerAuthorization(t *testing.T) {
	ca := testutil.NewCA(t)
	other := testutil.NewCA(t)
	registry := material(t, ca, "registry", mtls.RegistryID)
	workload := material(t, ca, "orders", "spiffe://switchyard.local/ns/shop/sa/orders")
	foreign := material(t, other, "registry", mtls.RegistryID)
	otherDomain := material(t, ca, "x", "spiffe://evil.example/system/registry")
	onlyRegistry := mtls.AllowIDs(mtls.RegistryID)
	anyMesh := mtls.AllowTrustDomain(mtls.TrustDomain)

	tests := []struct {
		name           string
		server, client *tls.Config
		wantErr        string // in either side's error; "" = success
	}{
		{"registry peers", registry.ServerConfig(onlyRegistry), registry.ClientConfig(onlyRegistry), ""},
		{"workload on the raft port", registry.ServerConfig(onlyRegistry), workload.ClientConfig(anyMesh), "is not one of"},
		{"workload on the api port", registry.ServerConfig(anyMesh), workload.ClientConfig(onlyRegistry), ""},
		{"certificate from another CA", registry.ServerConfig(onlyRegistry), foreign.ClientConfig(onlyRegistry), "verify peer certificate"},
		{"other trust domain", registry.ServerConfig(anyMesh), otherDomain.ClientConfig(onlyRegistry), "outside trust domain"},
		{"client refuses a non-registry server", workload.ServerConfig(anyMesh), registry.ClientConfig(onlyRegistry), "is not one of"},
		{"client without certificate", registry.ServerConfig(anyMesh), &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}, "certificate"}, //nolint:gosec // the test's point
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cerr, serr := handshake(t, tt.server, tt.client)
			if tt.wantErr == "" {
				if cerr != nil || serr != nil {
					t.Fatalf("client %v, server %v", cerr, serr)
				}
				return
			}
			both := ""
			if cerr != nil {
				both += cerr.Error()
			}
			if serr != nil {
				both += " | " + serr.Error()
			}
			if !strings.Contains(both, tt.wantErr) {
				t.Fatalf("got %q, want an error containing %q", both, tt.wantErr)
			}
		})
	}
}

func TestLoadFilesNamesTheSetting(t *testing.T) {
	ca := testutil.NewCA(t)
	cert, key := ca.Issue(t, "r", mtls.RegistryID)
	if _, err := mtls.LoadFiles(cert, key, "/nonexistent"); err == nil || !strings.Contains(err.Error(), "tls.ca_file") {
		t.Fatalf("missing bundle: %v", err)
	}
	if _, err := mtls.LoadFiles("/nonexistent", key, ca.BundleFile()); err == nil || !strings.Contains(err.Error(), "tls.cert_file") {
		t.Fatalf("missing cert: %v", err)
	}
	if _, err := mtls.LoadFiles(cert, key, cert); err != nil {
		t.Fatalf("a PEM certificate as bundle: %v", err)
	}
}
