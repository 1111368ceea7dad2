package proxy_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/xdstest"
)

// max_connection_duration, for an HTTP/1.1 and an h2c upstream: requests
// keep succeeding while the sidecar moves to new upstream connections at
// least every lifetime, a request in flight across the limit completes,
// and the retired connections are closed. Without the setting, the same
// traffic uses the connections it started with.
func TestMaxConnectionDuration(t *testing.T) {
	const lifetime = 250 * time.Millisecond
	for _, h2 := range []bool{false, true} {
		for _, limited := range []bool{true, false} {
			t.Run(fmt.Sprintf("h2=%v limited=%v", h2, limited), func(t *testing.T) {
				var opened, closed atomic.Int64
				var protoMu sync.Mutex
				protos := map[string]int{}
				srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					protoMu.Lock()
					protos[r.Proto]++
					protoMu.Unlock()
					if r.URL.Path == "/slow" {
						time.Sleep(3 * lifetime)
					}
					fmt.Fprint(w, "ok")
				}))
				srv.Config.Protocols = new(http.Protocols)
				srv.Config.Protocols.SetHTTP1(true)
				srv.Config.Protocols.SetUnencryptedHTTP2(true)
				srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
					switch s {
					case http.StateNew:
						opened.Add(1)
					case http.StateClosed:
						closed.Add(1)
					}
				}
				srv.Start()
				t.Cleanup(srv.Close)
				tune := func(c *clusterv3.Cluster) {
					opts := &httpv3.HttpProtocolOptions{UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
						ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{
							HttpProtocolOptions: &corev3.Http1ProtocolOptions{}}}}}
					if h2 {
						opts.UpstreamProtocolOptions = &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
							ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}}}}
					}
					if limited {
						opts.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{MaxConnectionDuration: durationpb.New(lifetime)}
					}
					c.TypedExtensionProtocolOptions = map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": xdstest.Any(opts)}
				}
				s := startSidecar(t, nil, "outbound")
				s.set(t, "1", outbound([]*routev3.Route{routeTo("users", nil)}, map[string][]string{"users": {srv.Listener.Addr().String()}}, tune))

				slow := make(chan int, 1)
				go func() {
					req, _ := http.NewRequest("GET", "http://"+s.addr("outbound")+"/slow", nil)
					req.Host = "users"
					resp, err := httpClient.Do(req)
					if err != nil {
						slow <- 0
						return
					}
					resp.Body.Close()
					slow <- resp.StatusCode
				}()
				for end := time.Now().Add(5 * lifetime); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
					if code, body, _ := get(t, s.addr("outbound"), "users", "/"); code != 200 {
						t.Fatalf("status %d (%s)", code, body)
					}
				}
				if code := <-slow; code != 200 {
					t.Fatalf("the request in flight across the limit got %d, want 200", code)
				}
				protoMu.Lock()
				want := "HTTP/1.1"
				if h2 {
					want = "HTTP/2.0"
				}
				if len(protos) != 1 || protos[want] == 0 {
					t.Fatalf("upstream requests by protocol %v, want all %s", protos, want)
				}
				protoMu.Unlock()
				n := opened.Load()
				if !limited {
					// HTTP/1.1: one connection for the sequential requests and
					// one for the slow one; h2: both on one.
					if n > 2 {
						t.Fatalf("%d upstream connections without a lifetime, want at most 2", n)
					}
					return
				}
				// 5 lifetimes of sequential requests: at least 4 connections.
				if n < 4 {
					t.Fatalf("%d upstream connections over 5 lifetimes, want at least 4", n)
				}
				eventually(t, "retired connections closed", func() bool { return closed.Load() >= opened.Load()-1 })
			})
		}
	}
}
