package xds_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/xds"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/xdstest"
)

func config(version string, upstreams ...string) xdstest.Resources {
	return xdstest.Resources{
		Listeners: []types.Resource{xdstest.HTTPListener("outbound", "127.0.0.1:15001", "outbound", false)},
		Routes:    []types.Resource{xdstest.Routes("outbound", xdstest.PrefixRoute("/", "users"))},
		Clusters:  []types.Resource{xdstest.Cluster("users")},
		Endpoints: []types.Resource{xdstest.Endpoints("users", upstreams...)},
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestClientAckNackAndKeepsLastGood(t *testing.T) {
	srv := xdstest.Start(t)
	updates := make(chan *xds.Snapshot, 100)
	c := xds.NewClient(xds.ClientConfig{Conn: srv.Conn(t), Node: xds.Node{ID: xdstest.NodeID}, Backoff: 10 * time.Millisecond,
		OnUpdate: func(s *xds.Snapshot) { updates <- s }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()

	if c.Snapshot().Warm() {
		t.Fatal("warm before any config")
	}
	srv.Set(t, "v1", config("v1", "127.0.0.1:9001"))
	waitFor(t, "warm v1", func() bool { return c.Snapshot().Warm() })
	s := c.Snapshot()
	if got := s.Endpoints["users"].Hosts[0].Addr; got != "127.0.0.1:9001" {
		t.Fatalf("endpoint %s", got)
	}
	waitFor(t, "ACK of v1 EDS", func() bool { return srv.Acked(resourcev3.EndpointType) == "v1" })

	// A cluster using an unimplemented field is NACKed, naming the field,
	// and the previous config stays.
	bad := config("v2", "127.0.0.1:9002")
	cl := xdstest.Cluster("users")
	cl.PerConnectionBufferLimitBytes = wrapperspb.UInt32(1024)
	bad.Clusters = []types.Resource{cl}
	srv.Set(t, "v2", bad)
	waitFor(t, "NACK", func() bool { return len(srv.Nacks()) > 0 })
	n := srv.Nacks()[0]
	if n.GetTypeUrl() != resourcev3.ClusterType || n.GetVersionInfo() != "v1" ||
		!strings.Contains(n.GetErrorDetail().GetMessage(), `CDS "users": field per_connection_buffer_limit_bytes is not supported`) {
		t.Fatalf("NACK %v", n)
	}
	if c.Snapshot().Versions[resourcev3.ClusterType] != "v1" {
		t.Fatal("rejected cluster replaced the accepted one")
	}
	if c.Nacks()[resourcev3.ClusterType] == "" {
		t.Fatal("NACK not recorded for config_dump")
	}

	// Control plane dies: config stays; a new control plane's config applies.
	srv.Stop()
	time.Sleep(50 * time.Millisecond)
	if !c.Snapshot().Warm() || c.Snapshot().Clusters["users"].Name != "users" {
		t.Fatal("lost config when the control plane went away")
	}
	ln, err := net.Listen("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	srv2 := xdstest.StartOn(t, ln)
	srv2.Set(t, "v3", config("v3", "127.0.0.1:9003"))
	waitFor(t, "v3 from the restarted control plane", func() bool {
		return c.Snapshot().Endpoints["users"].Hosts[0].Addr == "127.0.0.1:9003"
	})
	if len(updates) == 0 {
		t.Fatal("OnUpdate never called")
	}
}

func TestClientReconnectsAndFollowsRemovals(t *testing.T) {
	srv := xdstest.Start(t)
	c := xds.NewClient(xds.ClientConfig{Conn: srv.Conn(t), Node: xds.Node{ID: xdstest.NodeID}, Backoff: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()

	two := config("v1", "127.0.0.1:9001")
	two.Clusters = append(two.Clusters, xdstest.Cluster("orders"))
	two.Endpoints = append(two.Endpoints, xdstest.Endpoints("orders", "127.0.0.1:9100"))
	srv.Set(t, "v1", two)
	waitFor(t, "two clusters", func() bool { s := c.Snapshot(); return s.Warm() && len(s.Clusters) == 2 })

	srv.Set(t, "v2", config("v2", "127.0.0.1:9001", "127.0.0.1:9003"))
	waitFor(t, "orders removed, users has 2 endpoints", func() bool {
		s := c.Snapshot()
		_, orders := s.Clusters["orders"]
		return !orders && len(s.Endpoints["users"].Hosts) == 2
	})
}
