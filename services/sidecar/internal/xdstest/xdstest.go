// Package xdstest runs a real go-control-plane ADS server (snapshot cache)
// on loopback for tests, and builds the Envoy resources Switchyard's control
// plane emits.
package xdstest

import (
	"context"
	"net"
	"sync"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// NodeID is the node id tests give their sidecar.
const NodeID = "sidecar-test"

// Server is a running ADS server.
type Server struct {
	Addr  string
	Cache cachev3.SnapshotCache

	grpc *grpc.Server
	ln   net.Listener

	mu    sync.Mutex
	nacks []*discoveryv3.DiscoveryRequest
	acks  map[string]string // type → last acked version
}

// Start serves ADS on a free loopback port until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return StartOn(t, ln)
}

// StartOn serves ADS on ln (to restart a server on the same address).
func StartOn(t testing.TB, ln net.Listener) *Server {
	s := &Server{Addr: ln.Addr().String(), ln: ln, acks: map[string]string{},
		Cache: cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)}
	cb := serverv3.CallbackFuncs{StreamRequestFunc: func(_ int64, r *discoveryv3.DiscoveryRequest) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if r.GetErrorDetail() != nil {
			s.nacks = append(s.nacks, r)
		} else if r.GetResponseNonce() != "" {
			s.acks[r.GetTypeUrl()] = r.GetVersionInfo()
		}
		return nil
	}}
	s.grpc = grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(s.grpc, serverv3.NewServer(context.Background(), s.Cache, cb))
	go func() { _ = s.grpc.Serve(ln) }()
	t.Cleanup(s.Stop)
	return s
}

// Stop kills the server abruptly (as a crashed control plane).
func (s *Server) Stop() { s.grpc.Stop() }

// Conn dials the server without TLS.
func (s *Server) Conn(t testing.TB) *grpc.ClientConn {
	cc, err := grpc.NewClient(s.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// Resources groups a config by type.
type Resources struct {
	Listeners, Routes, Clusters, Endpoints []types.Resource
}

// Set publishes version of res for NodeID; the snapshot must be consistent.
func (s *Server) Set(t testing.TB, version string, res Resources) {
	t.Helper()
	snap, err := cachev3.NewSnapshot(version, map[resourcev3.Type][]types.Resource{
		resourcev3.ListenerType: res.Listeners, resourcev3.RouteType: res.Routes,
		resourcev3.ClusterType: res.Clusters, resourcev3.EndpointType: res.Endpoints,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Consistent(); err != nil {
		t.Fatalf("inconsistent snapshot: %v", err)
	}
	if err := s.Cache.SetSnapshot(context.Background(), NodeID, snap); err != nil {
		t.Fatal(err)
	}
}

// SetInconsistent publishes without the consistency check (to test NACKs of
// resources a real control plane would never send).
func (s *Server) SetInconsistent(t testing.TB, version string, res Resources) {
	t.Helper()
	snap, err := cachev3.NewSnapshot(version, map[resourcev3.Type][]types.Resource{
		resourcev3.ListenerType: res.Listeners, resourcev3.RouteType: res.Routes,
		resourcev3.ClusterType: res.Clusters, resourcev3.EndpointType: res.Endpoints,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Cache.SetSnapshot(context.Background(), NodeID, snap); err != nil {
		t.Fatal(err)
	}
}

// Nacks returns the NACK requests seen so far.
func (s *Server) Nacks() []*discoveryv3.DiscoveryRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*discoveryv3.DiscoveryRequest(nil), s.nacks...)
}

// Acked returns the last version the client ACKed for typeURL.
func (s *Server) Acked(typeURL string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acks[typeURL]
}
