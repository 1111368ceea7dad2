package contract

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/switchyard-mesh/switchyard/test/meshtest"
)

func init() { exercisers["controlplane"] = exerciseControlPlane }

// exerciseControlPlane runs a ca, a one-node registry and the control plane,
// connects one ADS stream as a sidecar, ACKs its config, registers an
// instance and ACKs the resulting EDS push, so connection, push, push
// latency and build metrics have samples.
func exerciseControlPlane(t testing.TB) []string {
	m := meshtest.StartCA(t, map[string]string{
		meshtest.RegistryID:     "contract-registry-0123456789",
		meshtest.ControlPlaneID: "contract-controlplane-0123456789",
	})
	m.StartRegistry(t)
	m.StartControlPlane(t, "-xds_plaintext", "-debounce", "10ms")
	xdsAddr, cpAdmin, regAdmin := m.XDSAddr, m.ControlPlaneAdmin, m.RegistryAdmin

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
