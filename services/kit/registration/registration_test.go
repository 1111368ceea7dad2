package registration

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	registryv1 "github.com/switchyard-mesh/switchyard/proto/switchyard/registry/v1"
)

// catalog is an in-test stand-in for the registry's API (the registry
// itself is exercised in test/sidecar end to end).
type catalog struct {
	registryv1.UnimplementedRegistryServiceServer
	mu          sync.Mutex
	instances   map[string]*registryv1.Instance
	heartbeats  atomic.Int64
	deregisters atomic.Int64
}

func (c *catalog) Register(_ context.Context, r *registryv1.RegisterRequest) (*registryv1.RegisterResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.instances[r.GetInstance().GetId()] = r.GetInstance()
	return &registryv1.RegisterResponse{Index: 1}, nil
}

func (c *catalog) Heartbeat(_ context.Context, r *registryv1.HeartbeatRequest) (*registryv1.HeartbeatResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.instances[r.GetId()]; !ok {
		return nil, status.Error(codes.NotFound, "no such instance")
	}
	c.heartbeats.Add(1)
	return &registryv1.HeartbeatResponse{}, nil
}

func (c *catalog) Deregister(_ context.Context, r *registryv1.DeregisterRequest) (*registryv1.DeregisterResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.instances, r.GetId())
	c.deregisters.Add(1)
	return &registryv1.DeregisterResponse{}, nil
}

func (c *catalog) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.instances = map[string]*registryv1.Instance{}
}

func (c *catalog) has(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.instances[id]
	return ok
}

func TestRegisterHeartbeatDeregister(t *testing.T) {
	cat := &catalog{instances: map[string]*registryv1.Instance{}}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	gs := grpc.NewServer()
	registryv1.RegisterRegistryServiceServer(gs, cat)
	go func() { _ = gs.Serve(ln) }()
	defer gs.Stop()
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()

	var appUp atomic.Bool
	appUp.Store(true)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !appUp.Load() {
			w.WriteHeader(503)
		}
	}))
	defer app.Close()
	var ready atomic.Bool
	ready.Store(true)
	r := New(Config{Client: registryv1.NewRegistryServiceClient(cc), TTL: 60 * time.Millisecond, AppHealth: app.URL + "/healthz",
		Instance: &registryv1.Instance{Service: "users", Id: "users-1", Address: "10.0.0.5", Port: 15006},
		Ready: func() error {
			if !ready.Load() {
				return errors.New("xds not warm")
			}
			return nil
		}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()

	waitFor(t, "heartbeats", func() bool { return cat.heartbeats.Load() >= 3 })
	cat.mu.Lock()
	inst := cat.instances["users-1"]
	cat.mu.Unlock()
	if inst.GetCheck().GetType() != registryv1.CheckType_CHECK_TYPE_TTL || inst.GetPort() != 15006 {
		t.Fatalf("registered %v", inst)
	}
	appUp.Store(false)
	time.Sleep(30 * time.Millisecond)
	before := cat.heartbeats.Load()
	time.Sleep(100 * time.Millisecond)
	if cat.heartbeats.Load() != before {
		t.Fatal("heartbeats continued while the app was unhealthy")
	}
	appUp.Store(true)
	cat.forget()
	waitFor(t, "re-registration", func() bool { return cat.has("users-1") })
	cancel()
	<-done
	if cat.deregisters.Load() != 1 || cat.has("users-1") {
		t.Fatalf("not deregistered on shutdown: %d calls, has=%v", cat.deregisters.Load(), cat.has("users-1"))
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
