package server_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	registryv1 "github.com/switchyard-mesh/switchyard/proto/switchyard/registry/v1"
	"github.com/switchyard-mesh/switchyard/services/kit/grpcx"
	"github.com/switchyard-mesh/switchyard/services/registry/internal/server"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func orders(id string, port uint32) *registryv1.Instance {
	return &registryv1.Instance{Service: "orders", Id: id, Address: "127.0.0.1", Port: port, Locality: &registryv1.Locality{Region: "eu-west"}}
}

func TestClusterServesCatalogAndConfig(t *testing.T) {
	c := newCluster(t, 3, nil)
	leader := c.leader(10 * time.Second)
	f := c.followers(leader)
	ctx := ctxT(t, 20*time.Second)

	// A write through a follower is forwarded to the leader.
	reg, err := f[0].client().Register(ctx, &registryv1.RegisterRequest{Instance: orders("o-1", 8080)})
	if err != nil {
		t.Fatalf("register via follower: %v", err)
	}
	// A linearizable read on the other follower sees it.
	got, err := f[1].client().GetService(ctx, &registryv1.GetServiceRequest{Service: "orders"})
	if err != nil || len(got.GetInstances()) != 1 || got.GetIndex() < reg.GetIndex() {
		t.Fatalf("linearizable read: %v %v", got, err)
	}
	if in := got.GetInstances()[0]; in.GetHealth() != registryv1.HealthStatus_HEALTH_STATUS_PASSING || in.GetLocality().GetRegion() != "eu-west" {
		t.Fatalf("instance: %v", in)
	}
	// A stale read on a follower eventually sees it too.
	waitFor(t, 5*time.Second, func() bool {
		r, err := f[1].client().ListInstances(ctx, &registryv1.ListInstancesRequest{Read: &registryv1.ReadOptions{Stale: true}, Region: "eu-west"})
		return err == nil && len(r.GetInstances()) == 1
	})
	svcs, err := leader.client().ListServices(ctx, &registryv1.ListServicesRequest{})
	if err != nil || len(svcs.GetServices()) != 1 || svcs.GetServices()[0].GetPassing() != 1 {
		t.Fatalf("services: %v %v", svcs, err)
	}

	// Config: create-only CAS, then CAS on the version, stale version refused.
	body := []byte(`{"protocol":"http"}`)
	zero := uint64(0)
	ac, err := f[0].client().ApplyConfig(ctx, &registryv1.ApplyConfigRequest{Kind: "ServiceDefaults", Name: "orders", Body: body, ExpectedVersion: &zero})
	if err != nil {
		t.Fatalf("apply config: %v", err)
	}
	v := ac.GetConfig().GetVersion()
	if _, err := f[1].client().ApplyConfig(ctx, &registryv1.ApplyConfigRequest{Kind: "ServiceDefaults", Name: "orders", Body: body, ExpectedVersion: &zero}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("create over existing: %v", err)
	}
	if _, err := f[1].client().ApplyConfig(ctx, &registryv1.ApplyConfigRequest{Kind: "ServiceDefaults", Name: "orders", Body: []byte(`{"protocol":"grpc"}`), ExpectedVersion: &v}); err != nil {
		t.Fatalf("cas update: %v", err)
	}
	if _, err := f[0].client().DeleteConfig(ctx, &registryv1.DeleteConfigRequest{Kind: "ServiceDefaults", Name: "orders", ExpectedVersion: &v}); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "expected_version") {
		t.Fatalf("delete with stale version: %v", err)
	}
	doc, err := f[0].client().GetConfig(ctx, &registryv1.GetConfigRequest{Kind: "ServiceDefaults", Name: "orders"})
	if err != nil || !strings.Contains(string(doc.GetConfig().GetBody()), "grpc") {
		t.Fatalf("get config: %v %v", doc, err)
	}
	if _, err := f[0].client().GetConfig(ctx, &registryv1.GetConfigRequest{Kind: "ServiceDefaults", Name: "nope"}); status.Code(err) != codes.NotFound {
		t.Fatalf("get missing config: %v", err)
	}
	list, err := f[1].client().ListConfig(ctx, &registryv1.ListConfigRequest{})
	if err != nil || len(list.GetConfigs()) != 1 {
		t.Fatalf("list config: %v %v", list, err)
	}

	// Bad input: InvalidArgument naming the field, nothing applied.
	if _, err := leader.client().ApplyConfig(ctx, &registryv1.ApplyConfigRequest{Kind: "ServiceDefaults", Name: "db", Body: []byte(`{"protocol":"tcp","outbound_port":5432}`)}); err != nil {
		t.Fatalf("apply db: %v", err)
	}
	bad := []struct {
		name  string
		call  func() error
		field string
	}{
		{"empty service", func() error {
			_, err := f[0].client().Register(ctx, &registryv1.RegisterRequest{Instance: &registryv1.Instance{Id: "x", Address: "127.0.0.1", Port: 1}})
			return err
		}, "instance.service"},
		{"bad port", func() error {
			_, err := f[0].client().Register(ctx, &registryv1.RegisterRequest{Instance: orders("o-2", 70000)})
			return err
		}, "instance.port"},
		{"bad address", func() error {
			in := orders("o-2", 80)
			in.Address = "not an address"
			_, err := f[0].client().Register(ctx, &registryv1.RegisterRequest{Instance: in})
			return err
		}, "instance.address"},
		{"oversized metadata", func() error {
			in := orders("o-2", 80)
			in.Metadata = map[string]string{"k": strings.Repeat("x", 600)}
			_, err := f[0].client().Register(ctx, &registryv1.RegisterRequest{Instance: in})
			return err
		}, `instance.metadata["k"]`},
		{"unknown kind", func() error {
			_, err := f[0].client().ApplyConfig(ctx, &registryv1.ApplyConfigRequest{Kind: "Frobnicator", Name: "x", Body: []byte(`{}`)})
			return err
		}, "kind"},
		{"invalid spec", func() error {
			_, err := f[0].client().ApplyConfig(ctx, &registryv1.ApplyConfigRequest{Kind: "ServiceDefaults", Name: "orders", Body: []byte(`{"protocol":42}`)})
			return err
		}, "protocol"},
		{"outbound port another service holds", func() error {
			// Applied through a follower: the check runs on the leader,
			// against the stored "db" document.
			_, err := f[1].client().ApplyConfig(ctx, &registryv1.ApplyConfigRequest{Kind: "ServiceDefaults", Name: "pg2", Body: []byte(`{"protocol":"tcp","outbound_port":5432}`)})
			return err
		}, "spec.outbound_port: 5432 is already the outbound_port of ServiceDefaults \"db\""},
		{"ttl check without ttl", func() error {
			in := orders("o-2", 80)
			in.Check = &registryv1.HealthCheck{Type: registryv1.CheckType_CHECK_TYPE_TTL}
			_, err := f[0].client().Register(ctx, &registryv1.RegisterRequest{Instance: in})
			return err
		}, "instance.check.ttl"},
	}
	for _, b := range bad {
		err := b.call()
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), b.field) {
			t.Errorf("%s: got %v, want InvalidArgument naming %s", b.name, err, b.field)
		}
	}
	after, _ := leader.client().ListInstances(ctx, &registryv1.ListInstancesRequest{})
	if len(after.GetInstances()) != 1 {
		t.Fatalf("refused input changed the catalog: %v", after)
	}
	if _, err := f[0].client().Deregister(ctx, &registryv1.DeregisterRequest{Service: "orders", Id: "nope"}); status.Code(err) != codes.NotFound {
		t.Fatalf("deregister unknown: %v", err)
	}

	// Cluster status: three voters, one leader, everyone reachable (each
	// node announces its API address shortly after start).
	waitFor(t, 5*time.Second, func() bool {
		st, err := f[1].clusterClient().ClusterStatus(ctx, &registryv1.ClusterStatusRequest{})
		if err != nil || len(st.GetPeers()) != 3 || st.GetLeaderId() != leader.id {
			return false
		}
		for _, p := range st.GetPeers() {
			if !p.GetReachable() || !p.GetVoter() || p.GetApiAddress() == "" {
				return false
			}
		}
		return true
	})
}

func TestRaftPortRefusesNonRegistryPeers(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.leader(10 * time.Second)
	conn, err := tls.Dial("tcp", c.nodes[0].raftAddr, c.workloadTLS("spiffe://switchyard.local/ns/shop/sa/orders"))
	if err == nil {
		defer conn.Close()
		_, _ = conn.Write([]byte{0})
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err = conn.Read(make([]byte, 1)); err == nil {
			t.Fatal("raft port accepted a workload certificate")
		}
	}
	t.Logf("refused as expected: %v", err)
}

func TestRestartedNodeRejoinsWithItsData(t *testing.T) {
	c := newCluster(t, 3, nil)
	leader := c.leader(10 * time.Second)
	ctx := ctxT(t, 30*time.Second)
	for i := range 20 {
		if _, err := leader.client().Register(ctx, &registryv1.RegisterRequest{Instance: orders("o-"+string(rune('a'+i)), 8080)}); err != nil {
			t.Fatal(err)
		}
	}
	// Stop everything, start everything: the cluster elects a leader from
	// its persisted state and keeps the data.
	for _, nd := range c.nodes {
		nd.stop()
	}
	for _, nd := range c.nodes {
		nd.start()
	}
	leader = c.leader(10 * time.Second)
	got, err := leader.client().ListInstances(ctx, &registryv1.ListInstancesRequest{})
	if err != nil || len(got.GetInstances()) != 20 {
		t.Fatalf("after full restart: %d instances, %v", len(got.GetInstances()), err)
	}
	// A follower restarted alone catches up with writes made while it was down.
	f := c.followers(leader)[0]
	f.stop()
	if _, err := leader.client().Register(ctx, &registryv1.RegisterRequest{Instance: orders("late", 9090)}); err != nil {
		t.Fatal(err)
	}
	f.start()
	waitFor(t, 10*time.Second, func() bool {
		r, err := f.client().GetService(ctx, &registryv1.GetServiceRequest{Service: "orders", Read: &registryv1.ReadOptions{Stale: true}})
		return err == nil && len(r.GetInstances()) == 21
	})
}

func TestTTLAndActiveHealth(t *testing.T) {
	c := newCluster(t, 3, nil)
	leader := c.leader(10 * time.Second)
	f := c.followers(leader)[0]
	ctx := ctxT(t, 30*time.Second)
	in := orders("ttl-1", 8080)
	in.Check = &registryv1.HealthCheck{
		Type: registryv1.CheckType_CHECK_TYPE_TTL, Ttl: durationpb.New(400 * time.Millisecond),
		DeregisterCriticalAfter: durationpb.New(time.Second),
	}
	if _, err := f.client().Register(ctx, &registryv1.RegisterRequest{Instance: in}); err != nil {
		t.Fatal(err)
	}
	healthOf := func(n *node) registryv1.HealthStatus {
		r, err := n.client().GetService(ctx, &registryv1.GetServiceRequest{Service: "orders"})
		if err != nil || len(r.GetInstances()) == 0 {
			return registryv1.HealthStatus_HEALTH_STATUS_UNSPECIFIED
		}
		return r.GetInstances()[0].GetHealth()
	}
	// Heartbeats (through a follower) keep it passing past several TTLs.
	for range 8 {
		if _, err := f.client().Heartbeat(ctx, &registryv1.HeartbeatRequest{Service: "orders", Id: "ttl-1"}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(150 * time.Millisecond)
	}
	if h := healthOf(f); h != registryv1.HealthStatus_HEALTH_STATUS_PASSING {
		t.Fatalf("with heartbeats: %v", h)
	}
	// Silence: critical, then deregistered.
	waitFor(t, 3*time.Second, func() bool { return healthOf(f) == registryv1.HealthStatus_HEALTH_STATUS_CRITICAL })
	waitFor(t, 5*time.Second, func() bool { return healthOf(f) == registryv1.HealthStatus_HEALTH_STATUS_UNSPECIFIED })

	if _, err := f.client().Heartbeat(ctx, &registryv1.HeartbeatRequest{Service: "orders", Id: "ttl-1"}); status.Code(err) != codes.NotFound {
		t.Fatalf("heartbeat after deregistration: %v", err)
	}
	// An instance without a TTL check refuses heartbeats.
	if _, err := f.client().Register(ctx, &registryv1.RegisterRequest{Instance: orders("plain", 1)}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client().Heartbeat(ctx, &registryv1.HeartbeatRequest{Service: "orders", Id: "plain"}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("heartbeat on non-ttl instance: %v", err)
	}
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRestartRestoresFromSnapshot: with aggressive snapshotting, nodes
// restarted after many writes rebuild their catalog from a Raft snapshot
// (catalog.Restore) plus the log after it, and a watcher resuming from an
// index older than the snapshot gets a full snapshot.
func TestRestartRestoresFromSnapshot(t *testing.T) {
	c := newCluster(t, 3, func(cfg *server.Config) {
		cfg.Raft.SnapshotThreshold = 32
		cfg.Raft.TrailingLogs = 8
		cfg.Raft.SnapshotInterval = 50 * time.Millisecond
	})
	leader := c.leader(10 * time.Second)
	ctx := ctxT(t, 60*time.Second)
	first, err := leader.client().Register(ctx, &registryv1.RegisterRequest{Instance: orders("first", 1)})
	if err != nil {
		t.Fatal(err)
	}
	f := c.followers(leader)[0]
	f.stop()
	for i := range 200 {
		if _, err := leader.client().Register(ctx, &registryv1.RegisterRequest{Instance: orders(fmt.Sprintf("o-%d", i), 8080)}); err != nil {
			t.Fatal(err)
		}
	}
	f.start()
	waitFor(t, 15*time.Second, func() bool {
		r, err := f.client().GetService(ctx, &registryv1.GetServiceRequest{Service: "orders", Read: &registryv1.ReadOptions{Stale: true}})
		return err == nil && len(r.GetInstances()) == 201
	})
	time.Sleep(300 * time.Millisecond) // every node snapshots
	for _, nd := range c.nodes {
		nd.stop()
	}
	for _, nd := range c.nodes {
		nd.start()
	}
	c.leader(10 * time.Second)
	for _, nd := range c.nodes {
		waitFor(t, 15*time.Second, func() bool {
			r, err := nd.client().GetService(ctx, &registryv1.GetServiceRequest{Service: "orders", Read: &registryv1.ReadOptions{Stale: true}})
			return err == nil && len(r.GetInstances()) == 201
		})
	}
	stream, err := f.client().Watch(ctx, &registryv1.WatchRequest{FromIndex: first.GetIndex()})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil || !resp.GetSnapshot() || len(resp.GetEvents()) != 201 {
		t.Fatalf("watch from before the snapshot: snapshot=%v events=%d err=%v", resp.GetSnapshot(), len(resp.GetEvents()), err)
	}
}

func TestWorkloadsMayRegisterButNotConfigureOrChangeMembership(t *testing.T) {
	c := newCluster(t, 3, nil)
	leader := c.leader(10 * time.Second)
	ctx := ctxT(t, 20*time.Second)
	conn, err := grpcx.Dial(leader.grpcAddr, credentials.NewTLS(c.workloadTLS("spiffe://switchyard.local/ns/shop/sa/orders")))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	reg, cl := registryv1.NewRegistryServiceClient(conn), registryv1.NewClusterServiceClient(conn)
	if _, err := reg.Register(ctx, &registryv1.RegisterRequest{Instance: orders("o-1", 8080)}); err != nil {
		t.Fatalf("workload register: %v", err)
	}
	if _, err := reg.ApplyConfig(ctx, &registryv1.ApplyConfigRequest{Kind: "ServiceDefaults", Name: "orders", Body: []byte(`{}`)}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("workload apply config: %v", err)
	}
	if _, err := cl.RemoveServer(ctx, &registryv1.RemoveServerRequest{Id: "r1"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("workload remove server: %v", err)
	}
}

// TestJoinAndRemoveVoter: a fourth node started with raft.join asks to be
// added, becomes a voter, catches up and serves; RemoveServer takes it out.
func TestJoinAndRemoveVoter(t *testing.T) {
	c := newCluster(t, 3, nil)
	leader := c.leader(10 * time.Second)
	ctx := ctxT(t, 30*time.Second)
	if _, err := leader.client().Register(ctx, &registryv1.RegisterRequest{Instance: orders("before-join", 1)}); err != nil {
		t.Fatal(err)
	}
	r4 := c.addNode("r4", c.followers(leader)[0])
	r4.start()
	voters := func() map[string]bool {
		st, err := leader.clusterClient().ClusterStatus(ctx, &registryv1.ClusterStatusRequest{})
		if err != nil {
			return nil
		}
		out := map[string]bool{}
		for _, p := range st.GetPeers() {
			out[p.GetId()] = p.GetVoter() && p.GetReachable() && p.GetApiAddress() != ""
		}
		return out
	}
	waitFor(t, 10*time.Second, func() bool { v := voters(); return len(v) == 4 && v["r4"] })
	waitFor(t, 10*time.Second, func() bool {
		r, err := r4.client().GetService(ctx, &registryv1.GetServiceRequest{Service: "orders", Read: &registryv1.ReadOptions{Stale: true}})
		return err == nil && len(r.GetInstances()) == 1
	})
	// The new node serves linearizable reads and forwards writes.
	if _, err := r4.client().Register(ctx, &registryv1.RegisterRequest{Instance: orders("via-r4", 2)}); err != nil {
		t.Fatal(err)
	}
	if _, err := r4.clusterClient().RemoveServer(ctx, &registryv1.RemoveServerRequest{Id: "r4"}); err != nil {
		t.Fatalf("remove r4: %v", err)
	}
	waitFor(t, 10*time.Second, func() bool { v := voters(); _, in := v["r4"]; return len(v) == 3 && !in })
	r4.stop()
	if _, err := leader.client().Register(ctx, &registryv1.RegisterRequest{Instance: orders("after-remove", 3)}); err != nil {
		t.Fatalf("write after removing r4: %v", err)
	}
	if _, err := leader.clusterClient().AddVoter(ctx, &registryv1.AddVoterRequest{Id: ""}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("add voter without id: %v", err)
	}
}
