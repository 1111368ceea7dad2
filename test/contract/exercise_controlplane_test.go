package contract

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/switchyard-mesh/switchyard/test/harness"
)

func init() { exercisers["controlplane"] = exerciseControlPlane }

// exerciseControlPlane runs a ca, a one-node registry and the control plane,
// connects one ADS stream as a sidecar, ACKs its config, registers an
// instance and ACKs the resulting EDS push, so connection, push, push
// latency and build metrics have samples.
func exerciseControlPlane(t testing.TB) []string {
	dir := t.TempDir()
	ids := map[string]string{
		"spiffe://switchyard.local/system/registry":     "contract-registry-0123456789",
		"spiffe://switchyard.local/system/controlplane": "contract-controlplane-0123456789",
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
		Args: append([]string{"-xds_addr", xdsAddr, "-admin.addr", cpAdmin, "-registry_addr", regGRPC, "-xds_plaintext", "-debounce", "10ms"},
			idArgs("spiffe://switchyard.local/system/controlplane")...),
		ReadyURL: "http://" + cpAdmin + "/readyz"})

	conn, err := grpc.NewClient(xdsAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	md, _ := structpb.NewStruct(map[string]any{"service": "frontend", "kind": "sidecar"})
	const eds = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "contract-sidecar", Metadata: md}, TypeUrl: eds, ResourceNames: []string{"echo"}}); err != nil {
		t.Fatal(err)
	}
	register := func(id string, port int) {
		body := fmt.Sprintf(`{"service":"echo","id":%q,"address":"127.0.0.1","port":%d}`, id, port)
		resp, err := http.Post("http://"+regAdmin+"/v1/register", "application/json", bytes.NewReader([]byte(body)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	register("echo-1", 9001)
	got := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			resp, err := stream.Recv()
			if err != nil {
				got <- err
				return
			}
			if err := stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: eds, ResourceNames: []string{"echo"},
				VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}); err != nil {
				got <- err
				return
			}
			if i == 0 {
				register("echo-2", 9002) // a change after the first ACK: push latency
				continue
			}
			got <- nil
			return
		}
	}()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no EDS push after a registration")
	}
	time.Sleep(200 * time.Millisecond) // the ACK reaches the server
	return []string{"http://" + cpAdmin + "/metrics"}
}
