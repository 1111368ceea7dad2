package controlplane_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/switchyard-mesh/switchyard/services/kit/identity"
	"github.com/switchyard-mesh/switchyard/test/harness"
)

// fetchClusters opens an ADS stream as the frontend sidecar and returns the
// first CDS response.
func fetchClusters(ctx context.Context, conn *grpc.ClientConn) (*discoveryv3.DiscoveryResponse, error) {
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return nil, err
	}
	md, _ := structpb.NewStruct(map[string]any{"service": "frontend", "kind": "sidecar"})
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "frontend-1", Metadata: md}, TypeUrl: typeCDS}); err != nil {
		return nil, err
	}
	return stream.Recv()
}

// TestMTLSAndReplicas runs a second control plane serving xDS over mTLS
// beside the first: a sidecar with an SVID gets its clusters (with upstream
// mTLS naming the upstream's SPIFFE ID), one without a certificate is
// refused, and both replicas hand out the same versions, so a proxy moving
// between them sees no change.
func TestMTLSAndReplicas(t *testing.T) {
	m := startMesh(t)
	m.register(t, "echo", "echo-1", 9001)

	xds2, admin2 := harness.FreeAddr(t), harness.FreeAddr(t)
	harness.Start(t, harness.Process{
		Name: "controlplane-2", Binary: harness.Binary(t, "controlplane"),
		Args: append([]string{"-xds_addr", xds2, "-admin.addr", admin2, "-registry_addr", m.registryGRPC, "-log.format", "text"},
			identityArgs(m, "spiffe://switchyard.local/system/controlplane")...),
		ReadyURL: "http://" + admin2 + "/readyz",
	})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	src := m.svidFor(t, ctx, "spiffe://switchyard.local/ns/default/sa/frontend")
	secure, err := grpc.NewClient(xds2, grpc.WithTransportCredentials(src.ClientCredentials(identity.SystemID("controlplane"))))
	if err != nil {
		t.Fatal(err)
	}
	defer secure.Close()
	var viaMTLS *discoveryv3.DiscoveryResponse
	harness.Poll(t, 10*time.Second, func() error {
		viaMTLS, err = fetchClusters(ctx, secure)
		return err
	})
	var echo *clusterv3.Cluster
	for _, a := range viaMTLS.GetResources() {
		var c clusterv3.Cluster
		if err := proto.Unmarshal(a.GetValue(), &c); err != nil {
			t.Fatal(err)
		}
		if c.GetName() == "echo" {
			echo = &c
		}
	}
	if echo == nil {
		t.Fatalf("no echo cluster over mTLS: %v", viaMTLS)
	}
	var up tlsv3.UpstreamTlsContext
	if err := echo.GetTransportSocket().GetTypedConfig().UnmarshalTo(&up); err != nil {
		t.Fatal(err)
	}
	san := up.GetCommonTlsContext().GetCombinedValidationContext().GetDefaultValidationContext().GetMatchTypedSubjectAltNames()[0].GetMatcher().GetExact()
	if san != "spiffe://switchyard.local/ns/default/sa/echo" {
		t.Errorf("upstream SAN = %q", san)
	}

	// A client that trusts the CA but shows no certificate is refused.
	pem, err := os.ReadFile(m.bundle)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	anon, err := grpc.NewClient(xds2, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, InsecureSkipVerify: true}))) //nolint:gosec // the point is the server refusing us
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	short, cancelShort := context.WithTimeout(ctx, 3*time.Second)
	defer cancelShort()
	if _, err := fetchClusters(short, anon); err == nil {
		t.Fatal("a client without an SVID got config over the mTLS xDS port")
	}

	// Replica 1 (plaintext port in this test) answers the same node with the
	// same version and bytes.
	plain, err := grpc.NewClient(m.xdsAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	viaPlain, err := fetchClusters(ctx, plain)
	if err != nil {
		t.Fatal(err)
	}
	if viaPlain.GetVersionInfo() != viaMTLS.GetVersionInfo() {
		t.Errorf("replicas disagree on the CDS version: %s vs %s", viaPlain.GetVersionInfo(), viaMTLS.GetVersionInfo())
	}
}
