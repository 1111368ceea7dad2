package xds

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/switchyard-mesh/switchyard/services/controlplane/internal/translate"
)

func TestProxyFromNode(t *testing.T) {
	md := func(m map[string]any) *structpb.Struct { s, _ := structpb.NewStruct(m); return s }
	tests := []struct {
		name string
		node *corev3.Node
		want translate.Proxy
	}{
		{"sidecar", &corev3.Node{Id: "o1", Metadata: md(map[string]any{"service": "orders", "namespace": "shop", "app_port": 9000.0})},
			translate.Proxy{ID: "o1", Service: "orders", Namespace: "shop", AppPort: 9000}},
		{"app port as string", &corev3.Node{Id: "o1", Metadata: md(map[string]any{"service": "orders", "app_port": "8081"})},
			translate.Proxy{ID: "o1", Service: "orders", AppPort: 8081}},
		{"gateway", &corev3.Node{Id: "gw", Metadata: md(map[string]any{"kind": "gateway"})}, translate.Proxy{ID: "gw", Kind: translate.Gateway}},
		{"grpc library", &corev3.Node{Id: "c", UserAgentName: "gRPC Go"}, translate.Proxy{ID: "c", Kind: translate.Proxyless}},
		{"explicit kind wins over user agent", &corev3.Node{Id: "c", UserAgentName: "gRPC Go", Metadata: md(map[string]any{"kind": "sidecar"})},
			translate.Proxy{ID: "c", Kind: translate.Sidecar}},
		{"envoy without metadata", &corev3.Node{Id: "e", UserAgentName: "envoy"}, translate.Proxy{ID: "e"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ProxyFromNode(tc.node); got != tc.want {
				t.Errorf("ProxyFromNode = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestTrackerAckNackBehind(t *testing.T) {
	now := time.Unix(1000, 0)
	var seen []translate.Proxy
	changeAt := now.Add(-300 * time.Millisecond)
	tr := NewTracker(slog.New(slog.NewTextHandler(io.Discard, nil)), NewMetrics(nil),
		func(p translate.Proxy) { seen = append(seen, p) }, func(string) time.Time { return changeAt })
	tr.now = func() time.Time { return now }

	node := &corev3.Node{Id: "o1", Metadata: func() *structpb.Struct { s, _ := structpb.NewStruct(map[string]any{"service": "orders"}); return s }()}
	_ = tr.OnStreamRequest(1, &discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resource.ClusterType})
	_ = tr.OnStreamRequest(2, &discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resource.EndpointType})
	if len(seen) != 1 || seen[0].Service != "orders" {
		t.Fatalf("onNode calls = %+v, want one for orders", seen)
	}
	tr.OnStreamResponse(context.Background(), 1, nil, &discoveryv3.DiscoveryResponse{TypeUrl: resource.ClusterType, VersionInfo: "c1", Nonce: "1"})
	tr.OnStreamResponse(context.Background(), 2, nil, &discoveryv3.DiscoveryResponse{TypeUrl: resource.EndpointType, VersionInfo: "e1", Nonce: "2"})
	_ = tr.OnStreamRequest(1, &discoveryv3.DiscoveryRequest{TypeUrl: resource.ClusterType, VersionInfo: "c1", ResponseNonce: "1"})
	_ = tr.OnStreamRequest(2, &discoveryv3.DiscoveryRequest{TypeUrl: resource.EndpointType, ResponseNonce: "2",
		ErrorDetail: &statuspb.Status{Message: "endpoint weight 0 not implemented"}})

	st := tr.Status()
	if len(st) != 1 || !st[0].Connected || st[0].Streams != 2 || st[0].Acked["cds"] != "c1" || st[0].Acked["eds"] != "" ||
		st[0].NACKs != 1 || st[0].LastNACK.Type != "eds" || st[0].LastNACK.Version != "e1" {
		t.Fatalf("status = %+v", st)
	}
	// EDS stays unACKed: behind after a minute, not before.
	if n := tr.Behind(time.Minute); n != 0 {
		t.Errorf("behind right away = %d", n)
	}
	now = now.Add(2 * time.Minute)
	if n := tr.Behind(time.Minute); n != 1 {
		t.Errorf("behind after 2 minutes = %d, want 1", n)
	}
	// Streams close; after the retention the proxy is forgotten.
	tr.OnStreamClosed(1, node)
	tr.OnStreamClosed(2, node)
	if st := tr.Status(); st[0].Connected {
		t.Error("still connected after both streams closed")
	}
	if gone := tr.Forget(10 * time.Minute); len(gone) != 0 {
		t.Errorf("forgot %v too early", gone)
	}
	now = now.Add(11 * time.Minute)
	if gone := tr.Forget(10 * time.Minute); len(gone) != 1 || gone[0] != "o1" {
		t.Errorf("Forget = %v, want [o1]", gone)
	}
}

// Nonces are numbered per stream, so two proxies both ACK nonce "1"; each
// ACK must be credited to its own proxy's version.
func TestTrackerNoncesArePerStream(t *testing.T) {
	tr := NewTracker(slog.New(slog.NewTextHandler(io.Discard, nil)), NewMetrics(nil), nil, nil)
	for i, id := range []string{"a", "b"} {
		stream := int64(i + 1)
		_ = tr.OnStreamRequest(stream, &discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: id}, TypeUrl: resource.ListenerType})
		tr.OnStreamResponse(context.Background(), stream, nil, &discoveryv3.DiscoveryResponse{TypeUrl: resource.ListenerType, VersionInfo: "v-" + id, Nonce: "1"})
	}
	for i := range 2 {
		stream := int64(i + 1)
		_ = tr.OnStreamRequest(stream, &discoveryv3.DiscoveryRequest{TypeUrl: resource.ListenerType, ResponseNonce: "1"})
	}
	for _, st := range tr.Status() {
		if got, want := st.Acked["lds"], "v-"+st.ID; got != want {
			t.Errorf("proxy %s ACKed lds %q, want %q", st.ID, got, want)
		}
	}
}
