package xds

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	xdsserver "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	statusProto "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/protobuf/types/known/structpb"

	"google.golang.org/grpc/xds"

	"github.com/switchyard-mesh/switchyard/services/controlplane/internal/translate"
)

// backend is a gRPC server that names itself in every answer.
type backend struct {
	testgrpc.UnimplementedTestServiceServer
	id string
}

func (b *backend) UnaryCall(context.Context, *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	return &testgrpc.SimpleResponse{ServerId: b.id}, nil
}

func startBackend(t *testing.T, id string) uint32 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(s, &backend{id: id})
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	return uint32(ln.Addr().(*net.TCPAddr).Port)
}

type testServer struct {
	pub     *Publisher
	tracker *Tracker
	addr    string
}

func startServer(t *testing.T) *testServer {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	m := NewMetrics(nil)
	pub := NewPublisher(log, m, translate.Options{})
	tr := NewTracker(log, m, pub.AddProxy, pub.ChangeAt)
	ctx, cancel := context.WithCancel(context.Background())
	srv := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(srv, xdsserver.NewServer(ctx, pub.Cache, tr))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { cancel(); srv.Stop() })
	return &testServer{pub: pub, tracker: tr, addr: ln.Addr().String()}
}

func echoCatalog(ports ...uint32) translate.Catalog {
	svc := translate.Service{Name: "echo"}
	for i, p := range ports {
		svc.Instances = append(svc.Instances, translate.Instance{
			ID: fmt.Sprintf("echo-%d", i+1), Address: "127.0.0.1", Port: p, Health: translate.HealthPassing,
		})
	}
	return translate.Catalog{Services: []translate.Service{svc}}
}

// TestProxylessGRPC points an unmodified grpc-go xDS client at the server:
// it resolves xds:///echo, balances over every instance, and follows an
// EDS update when one instance goes away.
func TestProxylessGRPC(t *testing.T) {
	s := startServer(t)
	ports := []uint32{startBackend(t, "b1"), startBackend(t, "b2"), startBackend(t, "b3")}
	if err := s.pub.Update(context.Background(), echoCatalog(ports...), nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	bootstrap := fmt.Sprintf(`{
	  "xds_servers": [{"server_uri": %q, "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
	  "node": {"id": "proxyless-test", "metadata": {"kind": "proxyless"}}
	}`, s.addr)
	// The e2e test (test/controlplane) uses GRPC_XDS_BOOTSTRAP_CONFIG in a
	// separate process; in-process, the same config goes in directly.
	xdsResolver, err := xds.NewXDSResolverWithConfigForTesting([]byte(bootstrap))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("xds:///echo", grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(xdsResolver))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := testgrpc.NewTestServiceClient(conn)
	count := func(n int) map[string]int {
		seen := map[string]int{}
		for range n {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			resp, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{})
			cancel()
			if err != nil {
				t.Fatalf("call through xds:///echo: %v", err)
			}
			seen[resp.GetServerId()]++
		}
		return seen
	}
	// Round robin is exact once every subchannel is connected; the first
	// calls may run while some still connect.
	for deadline := time.Now().Add(10 * time.Second); ; {
		seen := count(30)
		if len(seen) == 3 && seen["b1"] == 10 && seen["b2"] == 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30 calls landed %v; want 10 on each of 3 backends (round robin)", seen)
		}
	}

	// Deregister b3: the client must stop using it after the EDS push.
	if err := s.pub.Update(context.Background(), echoCatalog(ports[0], ports[1]), nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		seen := count(10)
		if seen["b3"] == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b3 still receives calls 10s after its deregistration: %v", seen)
		}
		time.Sleep(50 * time.Millisecond)
	}

	st := s.tracker.Status()
	if len(st) != 1 || st[0].Kind != "proxyless" || st[0].NACKs != 0 {
		t.Fatalf("status = %+v; want one proxyless proxy without NACKs", st)
	}
	for _, typ := range []string{"lds", "rds", "cds", "eds"} {
		if typ == "rds" {
			continue // inline in the API listener
		}
		if st[0].Acked[typ] == "" {
			t.Errorf("no ACK recorded for %s: %+v", typ, st[0])
		}
	}
}

// TestDeltaAndNACK drives a raw delta ADS stream: the sidecar gets its
// clusters, ACKs them, then NACKs, and the NACK is recorded with its detail.
func TestDeltaAndNACK(t *testing.T) {
	s := startServer(t)
	if err := s.pub.Update(context.Background(), echoCatalog(9001, 9002), nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(s.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	md, _ := structpb.NewStruct(map[string]any{"service": "frontend", "kind": "sidecar"})
	node := &corev3.Node{Id: "frontend-1", Metadata: md}
	if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{Node: node, TypeUrl: resource.ClusterType}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range resp.GetResources() {
		names = append(names, r.GetName())
	}
	if len(names) != 2 { // echo + the local app cluster
		t.Fatalf("delta CDS gave %v; want echo and %s", names, translate.ClusterLocalApp)
	}
	if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resource.ClusterType, ResponseNonce: resp.GetNonce()}); err != nil {
		t.Fatal(err)
	}
	// A new service changes CDS; NACK that push.
	cat := echoCatalog(9001)
	cat.Services = append(cat.Services, translate.Service{Name: "other"})
	if err := s.pub.Update(context.Background(), cat, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err = stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{
		TypeUrl: resource.ClusterType, ResponseNonce: resp.GetNonce(),
		ErrorDetail: &statusProto.Status{Code: 3, Message: "cluster other: field outlier_detection.foo not implemented"},
	}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := s.tracker.Status()
		if len(st) == 1 && st[0].NACKs == 1 {
			if st[0].LastNACK.Type != "cds" || st[0].LastNACK.Error == "" || !st[0].Delta || st[0].Acked["cds"] == "" {
				t.Fatalf("status = %+v", st[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("NACK not recorded: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestMarshalOnce checks that proxies with the same view get the very same
// marshalled bytes.
func TestMarshalOnce(t *testing.T) {
	s := startServer(t)
	if err := s.pub.Update(context.Background(), echoCatalog(9001, 9002), nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	var got []*discoveryv3.DiscoveryResponse
	for _, id := range []string{"a", "b"} {
		conn, err := grpc.NewClient(s.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		md, _ := structpb.NewStruct(map[string]any{"service": "frontend"})
		if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: id, Metadata: md}, TypeUrl: resource.EndpointType, ResourceNames: []string{"echo"}}); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, resp)
	}
	if len(got[0].GetResources()) != 1 || string(got[0].GetResources()[0].GetValue()) != string(got[1].GetResources()[0].GetValue()) {
		t.Fatalf("responses differ: %v / %v", got[0], got[1])
	}
	// echo's CLA was marshalled once for both proxies.
	if n := s.pub.Cache.Memoised(); n != 1 {
		t.Errorf("memoised %d resources for two identical EDS responses, want 1", n)
	}
}

// TestDeltaMarshalOnce: two delta subscribers with the same view get the
// same bytes (marshalled once), and a removed service arrives as a removal.
func TestDeltaMarshalOnce(t *testing.T) {
	s := startServer(t)
	cat := echoCatalog(9001)
	cat.Services = append(cat.Services, translate.Service{Name: "other", Instances: []translate.Instance{{ID: "o", Address: "127.0.0.1", Port: 9003}}})
	if err := s.pub.Update(context.Background(), cat, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var streams []discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	var first []*discoveryv3.DeltaDiscoveryResponse
	for _, id := range []string{"a", "b"} {
		conn, err := grpc.NewClient(s.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
		if err != nil {
			t.Fatal(err)
		}
		md, _ := structpb.NewStruct(map[string]any{"service": "frontend", "kind": "sidecar"})
		if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{Node: &corev3.Node{Id: id, Metadata: md}, TypeUrl: resource.EndpointType}); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resource.EndpointType, ResponseNonce: resp.GetNonce()}); err != nil {
			t.Fatal(err)
		}
		streams = append(streams, stream)
		first = append(first, resp)
	}
	if len(first[0].GetResources()) != 2 || string(first[0].GetResources()[0].GetResource().GetValue()) != string(first[1].GetResources()[0].GetResource().GetValue()) {
		t.Fatalf("delta EDS responses differ or are incomplete: %v / %v", first[0], first[1])
	}
	if n := s.pub.Cache.Memoised(); n != 2 {
		t.Errorf("memoised %d resources for two identical delta responses of 2 CLAs, want 2", n)
	}
	if err := s.pub.Update(context.Background(), echoCatalog(9001), nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, stream := range streams {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetResources()) != 0 || len(resp.GetRemovedResources()) != 1 || resp.GetRemovedResources()[0] != "other" {
			t.Errorf("after removing a service: resources %d, removed %v; want only the removal of other", len(resp.GetResources()), resp.GetRemovedResources())
		}
	}
}
