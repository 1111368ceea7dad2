package controlplane_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	registryv1 "github.com/switchyard-mesh/switchyard/proto/switchyard/registry/v1"
	"github.com/switchyard-mesh/switchyard/services/kit/grpcx"
	"github.com/switchyard-mesh/switchyard/test/harness"
)

const (
	typeCDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	typeEDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	typeLDS = "type.googleapis.com/envoy.config.listener.v3.Listener"
	typeRDS = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
)

// simProxy is a simulated sidecar: one SotW ADS stream subscribing like
// Envoy (CDS and LDS wildcard, then EDS and RDS by name), ACKing every
// response and recording when EDS responses arrive.
type simProxy struct {
	id, service string
	edsAcks     atomic.Int64
	mu          sync.Mutex
	edsAt       []time.Time
}

func (p *simProxy) run(ctx context.Context, conn *grpc.ClientConn) error {
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	md, _ := structpb.NewStruct(map[string]any{"service": p.service, "kind": "sidecar"})
	node := &corev3.Node{Id: p.id, Metadata: md}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: typeCDS}); err != nil {
		return err
	}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: typeLDS}); err != nil {
		return err
	}
	names := map[string][]string{typeEDS: nil, typeRDS: {"outbound"}}
	subscribed := map[string]bool{}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		now := time.Now()
		typ := resp.GetTypeUrl()
		switch typ {
		case typeCDS:
			var eds []string
			for _, a := range resp.GetResources() {
				var c clusterv3.Cluster
				if err := proto.Unmarshal(a.GetValue(), &c); err != nil {
					return err
				}
				if c.GetEdsClusterConfig() != nil {
					eds = append(eds, c.GetName())
				}
			}
			names[typeEDS] = eds
		case typeEDS:
			p.mu.Lock()
			p.edsAt = append(p.edsAt, now)
			p.mu.Unlock()
		}
		ack := &discoveryv3.DiscoveryRequest{TypeUrl: typ, VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce(), ResourceNames: names[typ]}
		if typ == typeCDS || typ == typeLDS {
			ack.ResourceNames = nil
		}
		if err := stream.Send(ack); err != nil {
			return err
		}
		if typ == typeEDS {
			p.edsAcks.Add(1)
		}
		// After the first CDS/LDS, subscribe to what they reference.
		next := map[string]string{typeCDS: typeEDS, typeLDS: typeRDS}[typ]
		if next != "" && !subscribed[next] {
			subscribed[next] = true
			if err := stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: next, ResourceNames: names[next]}); err != nil {
				return err
			}
		}
	}
}

func (p *simProxy) firstEDSAfter(t0 time.Time) (time.Duration, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, at := range p.edsAt {
		if at.After(t0) {
			return at.Sub(t0), true
		}
	}
	return 0, false
}

func rssBytes(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			kb, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// TestScale is the BENCHMARKS.md measurement (SWITCHYARD_SCALE=1): 10,000
// endpoints in 100 services, 1,000 simulated sidecars on ADS, then one new
// instance of a service every proxy may call; how long until each proxy has
// the EDS update (and has ACKed it), and the control plane's memory.
func TestScale(t *testing.T) {
	if os.Getenv("SWITCHYARD_SCALE") == "" {
		t.Skip("set SWITCHYARD_SCALE=1 to run the 1,000-proxy scale measurement")
	}
	const (
		services     = 100 // svc-00..svc-98 plus "users"
		perService   = 100
		proxies      = 1000
		changes      = 5
		callersPerSv = 4
	)
	m := startMesh(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// 10,000 instances through the registry's HTTP API, 32 at a time.
	names := make([]string, 0, services)
	for i := range services - 1 {
		names = append(names, fmt.Sprintf("svc-%02d", i))
	}
	names = append(names, "users")
	start := time.Now()
	var wg sync.WaitGroup
	work := make(chan [2]int)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for w := range work {
				body, _ := json.Marshal(map[string]any{
					"service": names[w[0]], "id": fmt.Sprintf("%s-%d", names[w[0]], w[1]),
					"address": fmt.Sprintf("10.%d.%d.%d", w[0], w[1]/250, w[1]%250+1), "port": 15006,
					"locality": map[string]string{"region": "eu", "zone": fmt.Sprintf("eu-%d", w[1]%3)},
				})
				resp, err := http.Post("http://"+m.registryHTTP+"/v1/register", "application/json", bytes.NewReader(body))
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
			}
		}()
	}
	for s := range services {
		for i := range perService {
			work <- [2]int{s, i}
		}
	}
	close(work)
	wg.Wait()
	t.Logf("registered %d instances in %v", services*perService, time.Since(start))

	// Each private service admits 4 callers, so every proxy sees 4 + users.
	src := m.svid(t, ctx)
	conn, err := grpcx.Dial(m.registryGRPC, src.ClientCredentials(spiffeid.RequireFromString("spiffe://switchyard.local/system/registry")))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	reg := registryv1.NewRegistryServiceClient(conn)
	for i := range services - 1 {
		var from []string
		for k := 1; k <= callersPerSv; k++ {
			from = append(from, fmt.Sprintf(`"spiffe://switchyard.local/ns/default/sa/%s"`, names[(i+k)%(services-1)]))
		}
		body := fmt.Sprintf(`{"service": %q, "rules": [{"from": [%s]}]}`, names[i], strings.Join(from, ","))
		if _, err := reg.ApplyConfig(ctx, &registryv1.ApplyConfigRequest{Kind: "AuthorizationPolicy", Name: names[i], Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}

	// 1,000 simulated sidecars over 50 connections.
	conns := make([]*grpc.ClientConn, 50)
	for i := range conns {
		c, err := grpc.NewClient(m.xdsAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	sims := make([]*simProxy, proxies)
	for i := range sims {
		sims[i] = &simProxy{id: fmt.Sprintf("proxy-%04d", i), service: names[i%(services-1)]}
		go func(p *simProxy, c *grpc.ClientConn) {
			if err := p.run(ctx, c); err != nil && ctx.Err() == nil {
				t.Errorf("%s: %v", p.id, err)
			}
		}(sims[i], conns[i%len(conns)])
	}
	start = time.Now()
	harness.Poll(t, 120*time.Second, func() error {
		n := 0
		for _, p := range sims {
			if p.edsAcks.Load() > 0 {
				n++
			}
		}
		if n < proxies {
			return fmt.Errorf("%d/%d proxies have ACKed endpoints", n, proxies)
		}
		return nil
	})
	t.Logf("all %d proxies connected and ACKed their first config in %v", proxies, time.Since(start))
	time.Sleep(2 * time.Second)

	var lat []time.Duration
	for c := range changes {
		t0 := time.Now()
		m.register(t, "users", fmt.Sprintf("users-new-%d", c), 40000+c)
		harness.Poll(t, 30*time.Second, func() error {
			missing := 0
			for _, p := range sims {
				if _, ok := p.firstEDSAfter(t0); !ok {
					missing++
				}
			}
			if missing > 0 {
				return fmt.Errorf("%d proxies without the update", missing)
			}
			return nil
		})
		for _, p := range sims {
			d, _ := p.firstEDSAfter(t0)
			lat = append(lat, d)
		}
		time.Sleep(time.Second)
	}
	slices.Sort(lat)
	pct := func(q float64) time.Duration { return lat[int(q*float64(len(lat)-1))] }
	rss := rssBytes(t, m.cp.PID())
	heap := metric(t, "http://"+m.cpAdmin+"/metrics", "go_memstats_heap_inuse_bytes")
	t.Logf("SCALE: %d proxies, %d endpoints, %d changes: registry change → EDS received+ACKed by every proxy: p50 %v p90 %v p99 %v max %v; controlplane RSS %.1f MB (Go heap in use %.1f MB)",
		proxies, services*perService, changes, pct(.5), pct(.9), pct(.99), lat[len(lat)-1], float64(rss)/(1<<20), heap/(1<<20))
	if pct(.99) > time.Second {
		t.Errorf("p99 %v exceeds the 1 s target", pct(.99))
	}
	if rss > 300<<20 {
		t.Errorf("controlplane RSS %d MB exceeds the 300 MB target", rss>>20)
	}
	ps := m.proxies(t)
	nacks := 0
	for _, p := range ps {
		nacks += int(p["nacks"].(float64))
	}
	if len(ps) != proxies || nacks != 0 {
		t.Errorf("status: %d proxies, %d NACKs", len(ps), nacks)
	}
	cancel() // before the connections close, so the streams end quietly
}

// metric reads one unlabelled sample from a Prometheus text endpoint.
func metric(t *testing.T, url, name string) float64 {
	t.Helper()
	_, body := get(t, url)
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, name+" ") {
			v, _ := strconv.ParseFloat(strings.TrimPrefix(line, name+" "), 64)
			return v
		}
	}
	return 0
}
