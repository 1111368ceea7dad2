package proxy_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/proxy"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/testpki"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/xdstest"
)

const (
	frontendID = "spiffe://switchyard.local/ns/shop/sa/frontend"
	billingID  = "spiffe://switchyard.local/ns/shop/sa/billing"
	usersID    = "spiffe://switchyard.local/ns/shop/sa/users"
)

func rbacAllow(ids ...string) *hcmv3.HttpFilter {
	var principals []*rbacv3.Principal
	for _, id := range ids {
		principals = append(principals, &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{
			PrincipalName: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: id}}}}})
	}
	r := &rbacfilterv3.RBAC{Rules: &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{
		"users-callers": {Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_Any{Any: true}}}, Principals: principals}}}}
	return &hcmv3.HttpFilter{Name: "envoy.filters.http.rbac", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: xdstest.Any(r)}}
}

func staticCluster(name, addr string, h2 bool) *clusterv3.Cluster {
	c := xdstest.Cluster(name)
	c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
	c.EdsClusterConfig = nil
	c.LoadAssignment = xdstest.Endpoints(name, addr)
	if h2 {
		upstreamH2(c)
	}
	return c
}

// upstreamH2 makes the cluster speak HTTP/2 upstream (explicit_http_config).
func upstreamH2(c *clusterv3.Cluster) {
	c.TypedExtensionProtocolOptions = map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": xdstest.Any(&httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}}}}})}
}

// serverSidecar is the "users" sidecar: mTLS inbound with RBAC, to its app.
func serverSidecar(t testing.TB, ca *testpki.CA, app string, h2 bool, allowed ...string) *sidecar {
	s := startSidecar(t, ca.Issue(t, "/ns/shop/sa/users"), "inbound")
	s.set(t, "1", xdstest.Resources{
		Listeners: []types.Resource{xdstest.HTTPListener("inbound", "0.0.0.0:15006", "inbound", true, rbacAllow(allowed...))},
		Routes:    []types.Resource{xdstest.Routes("inbound", xdstest.PrefixRoute("/", "inbound|local"))},
		Clusters:  []types.Resource{staticCluster("inbound|local", app, h2)},
		Endpoints: []types.Resource{},
	})
	return s
}

// clientSidecar is an app's sidecar whose "users" cluster is mTLS to peer.
func clientSidecar(t testing.TB, ca *testpki.CA, path, peer string) *sidecar {
	s := startSidecar(t, ca.Issue(t, path), "outbound")
	s.set(t, "1", xdstest.Resources{
		Listeners: []types.Resource{xdstest.HTTPListener("outbound", "127.0.0.1:15001", "outbound", false)},
		Routes:    []types.Resource{xdstest.Routes("outbound", xdstest.PrefixRoute("/", "users"))},
		Clusters:  []types.Resource{xdstest.MTLS(xdstest.Cluster("users"), usersID)},
		Endpoints: []types.Resource{xdstest.Endpoints("users", peer)},
	})
	return s
}

func TestMTLSHopAndRBAC(t *testing.T) {
	ca := testpki.NewCA(t)
	app := newBackend(t, "users-app", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "proto=%s xfcc=%s", r.Header.Get("X-Forwarded-Proto"), r.Header.Get("X-Forwarded-Client-Cert"))
	})
	users := serverSidecar(t, ca, app.addr(), false, frontendID)
	frontend := clientSidecar(t, ca, "/ns/shop/sa/frontend", users.addr("inbound"))
	billing := clientSidecar(t, ca, "/ns/shop/sa/billing", users.addr("inbound"))

	code, body, _ := get(t, frontend.addr("outbound"), "users", "/users/1")
	if code != 200 || !strings.Contains(body, "URI="+frontendID) {
		t.Fatalf("frontend → users: %d %q", code, body)
	}
	if r := app.lastRequest(); r.ProtoMajor != 1 {
		t.Fatalf("local app hop used %s", r.Proto)
	}
	code, body, hdr := get(t, billing.addr("outbound"), "users", "/users/1")
	if code != 403 || hdr.Get("x-switchyard-reason") != "rbac_denied" || !strings.Contains(body, billingID) {
		t.Fatalf("billing → users: %d %q %v", code, body, hdr)
	}

	// No SVID: the handshake on the inbound port fails.
	conn, err := tls.Dial("tcp", users.addr("inbound"), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the point of the test
	if err == nil {
		_, err = conn.Write([]byte("GET / HTTP/1.1\r\nHost: users\r\n\r\n"))
		if err == nil {
			_, err = bufio.NewReader(conn).ReadString('\n')
		}
		conn.Close()
	}
	if err == nil {
		t.Fatal("a client without an SVID completed a request on the inbound port")
	}
	// An SVID from another CA is refused too.
	rogue := testpki.NewCA(t).Issue(t, "/ns/shop/sa/frontend")
	if c, err := tls.Dial("tcp", users.addr("inbound"), rogue.ClientTLSConfigWith(nil)); err == nil {
		_, err = c.Write([]byte("GET / HTTP/1.1\r\nHost: users\r\n\r\n"))
		if err == nil {
			_, err = bufio.NewReader(c).ReadString('\n')
		}
		c.Close()
		if err == nil {
			t.Fatal("an SVID from a foreign CA was accepted")
		}
	}
}

// startGRPC serves a gRPC server on loopback with what register adds,
// returning its address.
func startGRPC(t testing.TB, register func(*grpc.Server)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	register(gs)
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)
	return ln.Addr().String()
}

// dialUsers is a gRPC client of "users" through a sidecar's outbound listener.
func dialUsers(t testing.TB, s *sidecar) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(s.addr("outbound"), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("users"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func TestGRPCThroughSidecarPair(t *testing.T) {
	ca := testpki.NewCA(t)
	hs := health.NewServer()
	hs.SetServingStatus("users", healthpb.HealthCheckResponse_SERVING)
	app := startGRPC(t, func(gs *grpc.Server) { healthpb.RegisterHealthServer(gs, hs) })
	users := serverSidecar(t, ca, app, true, frontendID)
	cc := dialUsers(t, clientSidecar(t, ca, "/ns/shop/sa/frontend", users.addr("inbound")))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: "users"})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("gRPC through the pair: %v %v", resp, err)
	}
	// Streaming RPC too (trailers and flushing end to end).
	stream, err := healthpb.NewHealthClient(cc).Watch(ctx, &healthpb.HealthCheckRequest{Service: "users"})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := stream.Recv(); err != nil || m.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("watch: %v %v", m, err)
	}
	hs.SetServingStatus("users", healthpb.HealthCheckResponse_NOT_SERVING)
	if m, err := stream.Recv(); err != nil || m.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("watch update: %v %v", m, err)
	}
}

// TestGRPCLocalReplies: the sidecars' own answers reach a gRPC client as
// gRPC statuses with their reason, from the server side (RBAC) through the
// client sidecar, and from the client side itself (no upstream).
func TestGRPCLocalReplies(t *testing.T) {
	ca := testpki.NewCA(t)
	app := startGRPC(t, func(gs *grpc.Server) { healthpb.RegisterHealthServer(gs, health.NewServer()) })
	users := serverSidecar(t, ca, app, true, frontendID)
	billing := clientSidecar(t, ca, "/ns/shop/sa/billing", users.addr("inbound"))

	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead.Close()
	stranded := clientSidecar(t, ca, "/ns/shop/sa/frontend", dead.Addr().String())

	for _, tc := range []struct {
		name    string
		via     *sidecar
		code    codes.Code
		message string // its start: the sidecar's own words, not the client's about an unexpected response
	}{
		{"denied by the server sidecar", billing, codes.PermissionDenied,
			"RBAC: access denied: " + billingID + " may not call POST /grpc.health.v1.Health/Check"},
		{"no upstream for the client sidecar", stranded, codes.Unavailable, "cannot connect to " + dead.Addr().String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc := dialUsers(t, tc.via)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var trailer metadata.MD // a trailers-only response's one header block
			_, err = healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Trailer(&trailer))
			st, _ := status.FromError(err)
			if st.Code() != tc.code {
				t.Fatalf("status %v, want %v", err, tc.code)
			}
			if !strings.HasPrefix(st.Message(), tc.message) {
				t.Errorf("message %q, want it to start %q", st.Message(), tc.message)
			}
			if len(trailer.Get(proxy.ReasonHeader)) != 1 {
				t.Errorf("no %s in the response: %v", proxy.ReasonHeader, trailer)
			}
		})
	}
	// Metrics count the denial as the 403 it stands for, not as a 200.
	if n := counterValue(t, users, "switchyard_sidecar_downstream_requests_total", map[string]string{"listener": "inbound", "code_class": "4xx"}); n != 1 {
		t.Fatalf("server sidecar counted %v 4xx requests, want 1", n)
	}
}

// unavailableHealth answers every health check UNAVAILABLE, as a replica
// whose dependencies are down does: a trailers-only gRPC response.
type unavailableHealth struct {
	healthpb.UnimplementedHealthServer
}

func (unavailableHealth) Check(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	return nil, status.Error(codes.Unavailable, "database unreachable")
}

// TestGRPCFailingReplicaIsEjected: a gRPC replica answering UNAVAILABLE
// (HTTP 200, grpc-status 14) counts as a gateway failure and is ejected.
func TestGRPCFailingReplicaIsEjected(t *testing.T) {
	healthy := func(gs *grpc.Server) { healthpb.RegisterHealthServer(gs, health.NewServer()) }
	failing := startGRPC(t, func(gs *grpc.Server) { healthpb.RegisterHealthServer(gs, unavailableHealth{}) })
	tune := func(c *clusterv3.Cluster) {
		upstreamH2(c)
		c.OutlierDetection = &clusterv3.OutlierDetection{ConsecutiveGatewayFailure: wrapperspb.UInt32(2), EnforcingConsecutiveGatewayFailure: wrapperspb.UInt32(100),
			Interval: durationpb.New(time.Second), BaseEjectionTime: durationpb.New(30 * time.Second), MaxEjectionPercent: wrapperspb.UInt32(50)}
	}
	s := startSidecar(t, nil, "outbound")
	s.set(t, "1", outbound([]*routev3.Route{routeTo("users", nil)}, map[string][]string{"users": {startGRPC(t, healthy), startGRPC(t, healthy), failing}}, tune))
	cc := dialUsers(t, s)
	var failures, lastFailure int
	for i := range 60 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err != nil {
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("call %d: %v", i, err)
			}
			failures++
			lastFailure = i
		}
	}
	if failures > 2 || lastFailure > 10 {
		t.Fatalf("%d failures, last at call %d: the replica answering UNAVAILABLE was not ejected", failures, lastFailure)
	}
	// The calls by grpc-status, though every one was an HTTP 200.
	grpcResponses := func(status string) float64 {
		return counterValue(t, s, "switchyard_sidecar_upstream_grpc_responses_total", map[string]string{"cluster": "users", "grpc_status": status})
	}
	if ok, unavailable := grpcResponses("OK"), grpcResponses("Unavailable"); ok != float64(60-failures) || unavailable != float64(failures) {
		t.Fatalf("grpc_responses_total: OK %v, Unavailable %v; want %d and %d", ok, unavailable, 60-failures, failures)
	}
}

// flakyHealth answers UNAVAILABLE to its first call and SERVING after,
// recording the service each call asked about.
type flakyHealth struct {
	healthpb.UnimplementedHealthServer
	mu    sync.Mutex
	asked []string
}

func (f *flakyHealth) Check(_ context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, req.GetService())
	if len(f.asked) == 1 {
		return nil, status.Error(codes.Unavailable, "warming up")
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

// TestGRPCRetryOnUnavailable: retry_on unavailable retries a call answered
// UNAVAILABLE, sending its request body (length unknown, as every gRPC
// body's is) again.
func TestGRPCRetryOnUnavailable(t *testing.T) {
	flaky := &flakyHealth{}
	app := startGRPC(t, func(gs *grpc.Server) { healthpb.RegisterHealthServer(gs, flaky) })
	retries := func(ra *routev3.RouteAction) {
		ra.RetryPolicy = &routev3.RetryPolicy{RetryOn: "unavailable,cancelled", NumRetries: wrapperspb.UInt32(2),
			RetryBackOff: &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(time.Millisecond)}}
	}
	s := startSidecar(t, nil, "outbound")
	s.set(t, "1", outbound([]*routev3.Route{routeTo("users", retries)}, map[string][]string{"users": {app}}, upstreamH2))
	cc := dialUsers(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: "users.v1.Users"})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("call through a retry: %v %v", resp, err)
	}
	flaky.mu.Lock()
	defer flaky.mu.Unlock()
	if len(flaky.asked) != 2 || flaky.asked[0] != "users.v1.Users" || flaky.asked[1] != "users.v1.Users" {
		t.Fatalf("upstream saw %q, want the same request twice", flaky.asked)
	}
}

// TestGRPCRetriedOnConnectFailure: the control plane's default retry
// policy (connect-failure, refused-stream) covers gRPC calls too, though
// their bodies have no length: a dead replica costs no call.
func TestGRPCRetriedOnConnectFailure(t *testing.T) {
	live := startGRPC(t, func(gs *grpc.Server) { healthpb.RegisterHealthServer(gs, health.NewServer()) })
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead.Close()
	retries := func(ra *routev3.RouteAction) {
		ra.RetryPolicy = &routev3.RetryPolicy{RetryOn: "connect-failure,refused-stream", NumRetries: wrapperspb.UInt32(2),
			RetryBackOff: &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(time.Millisecond)}}
	}
	s := startSidecar(t, nil, "outbound")
	s.set(t, "1", outbound([]*routev3.Route{routeTo("users", retries)}, map[string][]string{"users": {dead.Addr().String(), live}}, upstreamH2))
	client := healthpb.NewHealthClient(dialUsers(t, s))
	for i := range 10 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
}

// TestGRPCBidiStreamOnARetryingRoute: on a route that retries, a
// bidirectional stream's request body goes through the replay buffer and
// must still flow message by message: each answer arrives before the
// next request is sent.
func TestGRPCBidiStreamOnARetryingRoute(t *testing.T) {
	app := startGRPC(t, func(gs *grpc.Server) {
		healthpb.RegisterHealthServer(gs, health.NewServer())
		reflection.Register(gs)
	})
	retries := func(ra *routev3.RouteAction) {
		ra.RetryPolicy = &routev3.RetryPolicy{RetryOn: "connect-failure,refused-stream,unavailable", NumRetries: wrapperspb.UInt32(2)}
	}
	s := startSidecar(t, nil, "outbound")
	s.set(t, "1", outbound([]*routev3.Route{routeTo("users", retries)}, map[string][]string{"users": {app}}, upstreamH2))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stream, err := reflectionpb.NewServerReflectionClient(dialUsers(t, s)).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		req := &reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}
		if err := stream.Send(req); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		if len(resp.GetListServicesResponse().GetService()) < 2 {
			t.Fatalf("answer %d: %v", i, resp)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != io.EOF {
		t.Fatalf("end of stream: %v", err)
	}
}

// counterValue reads a counter of a sidecar's registry: the series of name
// whose labels include want; 0 when there is none.
func counterValue(t *testing.T, s *sidecar, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue series
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func TestWebSocketUpgrade(t *testing.T) {
	// A minimal upgrade server: 101, then echo lines.
	echo := newBackend(t, "ws", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "want upgrade", 400)
			return
		}
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprint(rw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		rw.Flush()
		for {
			line, err := rw.ReadString('\n')
			if err != nil {
				return
			}
			fmt.Fprint(rw, "echo:"+line)
			rw.Flush()
		}
	})
	s := startSidecar(t, nil, "outbound")
	s.set(t, "1", outbound([]*routev3.Route{routeTo("ws", nil)}, map[string][]string{"ws": {echo.addr()}}, nil))
	conn, err := net.Dial("tcp", s.addr("outbound"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "GET /chat HTTP/1.1\r\nHost: ws\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	for _, msg := range []string{"hello\n", "again\n"} {
		fmt.Fprint(conn, msg)
		got, err := br.ReadString('\n')
		if err != nil || got != "echo:"+msg {
			t.Fatalf("got %q %v", got, err)
		}
	}
}

func TestTCPMode(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	s := startSidecar(t, nil, "redis")
	s.set(t, "1", xdstest.Resources{
		Listeners: []types.Resource{xdstest.TCPListener("redis", "127.0.0.1:6379", "redis")},
		Routes:    []types.Resource{},
		Clusters:  []types.Resource{xdstest.Cluster("redis")},
		Endpoints: []types.Resource{xdstest.Endpoints("redis", ln.Addr().String())},
	})
	c, err := net.Dial("tcp", s.addr("redis"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "PING\r\n")
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || got != "PING\r\n" {
		t.Fatalf("echo through L4: %q %v", got, err)
	}
}

// TestLocalityPrefersSameRegion checks priority spill-over end to end.
func TestLocalityPrefersSameRegion(t *testing.T) {
	near, far := newBackend(t, "near", nil), newBackend(t, "far", nil)
	s := startSidecar(t, nil, "outbound")
	res := outbound([]*routev3.Route{routeTo("users", nil)}, map[string][]string{"users": {near.addr()}}, nil)
	cla := xdstest.Endpoints("users", near.addr())
	farEps := xdstest.Endpoints("users", far.addr()).Endpoints[0]
	farEps.Priority = 1
	cla.Endpoints = append(cla.Endpoints, farEps)
	res.Endpoints = []types.Resource{cla}
	s.set(t, "1", res)
	for range 20 {
		get(t, s.addr("outbound"), "users", "/")
	}
	if far.hits.Load() != 0 {
		t.Fatalf("far got %d while near was healthy", far.hits.Load())
	}
	cla2 := xdstest.Endpoints("users", near.addr())
	cla2.Endpoints[0].LbEndpoints[0].HealthStatus = corev3.HealthStatus_UNHEALTHY
	cla2.Endpoints = append(cla2.Endpoints, farEps)
	res.Endpoints = []types.Resource{cla2}
	s.set(t, "2", res)
	for range 10 {
		if _, body, _ := get(t, s.addr("outbound"), "users", "/"); body != "far" {
			t.Fatalf("spill-over: got %q", body)
		}
	}
}
