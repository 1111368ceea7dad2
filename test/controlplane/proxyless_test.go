// Package controlplane_test runs the control plane with the real ca and
// registry binaries and points an unmodified grpc-go xDS client at it.
package controlplane_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/xds"

	registryv1 "github.com/switchyard-mesh/switchyard/proto/switchyard/registry/v1"
	"github.com/switchyard-mesh/switchyard/services/kit/grpcx"
	"github.com/switchyard-mesh/switchyard/services/kit/meshconfig"
	"github.com/switchyard-mesh/switchyard/test/harness"
)

// dialProxyless is a stock grpc-go client: xds:///<service> with a
// bootstrap pointing at the control plane. Nothing Switchyard-specific.
func dialProxyless(t *testing.T, xdsAddr, service string) testgrpc.TestServiceClient {
	t.Helper()
	bootstrap := fmt.Sprintf(`{
	  "xds_servers": [{"server_uri": %q, "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
	  "node": {"id": "e2e-proxyless-client", "locality": {"region": "eu"}}
	}`, xdsAddr)
	// Equivalent to GRPC_XDS_BOOTSTRAP_CONFIG, which grpc-go reads once per
	// process at init.
	res, err := xds.NewXDSResolverWithConfigForTesting([]byte(bootstrap))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("xds:///"+service, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(res))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return testgrpc.NewTestServiceClient(conn)
}

func spread(client testgrpc.TestServiceClient, n int) (map[string]int, error) {
	seen := map[string]int{}
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{})
		cancel()
		if err != nil {
			return seen, err
		}
		seen[resp.GetServerId()]++
	}
	return seen, nil
}

func TestProxylessClientFollowsRegistryAndRoutes(t *testing.T) {
	m := startMesh(t)
	ports := map[string]int{"b1": startBackend(t, "b1"), "b2": startBackend(t, "b2"), "b3": startBackend(t, "b3")}
	m.register(t, "echo", "echo-1", ports["b1"])
	m.register(t, "echo", "echo-2", ports["b2"])
	m.register(t, "echo", "echo-3", ports["b3"], "v2")

	client := dialProxyless(t, m.xdsAddr, "echo")

	t.Run("resolves and balances over every instance", func(t *testing.T) {
		harness.Poll(t, 15*time.Second, func() error {
			seen, err := spread(client, 30)
			if err != nil {
				return err
			}
			if len(seen) != 3 || seen["b1"] != 10 || seen["b2"] != 10 {
				return fmt.Errorf("30 calls landed %v; want 10 on each backend", seen)
			}
			return nil
		})
	})

	t.Run("deregistration reaches the client as an EDS update", func(t *testing.T) {
		m.deregister(t, "echo", "echo-1")
		harness.Poll(t, 10*time.Second, func() error {
			seen, err := spread(client, 20)
			if err != nil {
				return err
			}
			if seen["b1"] > 0 || len(seen) != 2 {
				return fmt.Errorf("after deregistering echo-1 calls landed %v", seen)
			}
			return nil
		})
	})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := m.svid(t, ctx)
	conn, err := grpcx.Dial(m.registryGRPC, src.ClientCredentials(spiffeid.RequireFromString("spiffe://switchyard.local/system/registry")))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	reg := registryv1.NewRegistryServiceClient(conn)
	apply := func(doc string) error {
		docs, err := meshconfig.Parse(strings.NewReader(doc))
		if err != nil {
			return err
		}
		for _, d := range docs {
			body, err := d.SpecJSON()
			if err != nil {
				return err
			}
			if _, err := reg.ApplyConfig(ctx, &registryv1.ApplyConfigRequest{Kind: d.Kind, Name: d.Name, Body: body}); err != nil {
				return err
			}
		}
		return nil
	}

	t.Run("an applied HTTPRoute changes the client's routes", func(t *testing.T) {
		err := apply(`
kind: HTTPRoute
name: echo-to-v2
spec:
  service: echo
  rules:
    - backends: [{service: echo, tag: v2}]
`)
		if err != nil {
			t.Fatal(err)
		}
		harness.Poll(t, 10*time.Second, func() error {
			seen, err := spread(client, 10)
			if err != nil {
				return err
			}
			if seen["b3"] != 10 {
				return fmt.Errorf("with every call routed to tag v2, calls landed %v", seen)
			}
			return nil
		})
	})

	t.Run("an invalid document is refused naming the field", func(t *testing.T) {
		// The registry validates with the same package meshctl does; send
		// the raw body so the refusal comes from the registry.
		_, err := reg.ApplyConfig(ctx, &registryv1.ApplyConfigRequest{
			Kind: "HTTPRoute", Name: "bad",
			Body: []byte(`{"service": "echo", "rules": [{"backends": [{"service": "echo", "weight": 150}]}]}`),
		})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "spec.rules[0].backends[0].weight") {
			t.Fatalf("err = %v; want InvalidArgument naming spec.rules[0].backends[0].weight", err)
		}
		// Still routed to v2: nothing half-applied.
		seen, err := spread(client, 5)
		if err != nil || seen["b3"] != 5 {
			t.Fatalf("after a refused document calls landed %v (%v)", seen, err)
		}
	})

	t.Run("status shows the client's ACKs and no NACKs", func(t *testing.T) {
		harness.Poll(t, 5*time.Second, func() error {
			ps := m.proxies(t)
			if len(ps) != 1 {
				return fmt.Errorf("proxies = %v", ps)
			}
			p := ps[0]
			acked, _ := p["acked"].(map[string]any)
			current, _ := p["current"].(map[string]any)
			if p["kind"] != "proxyless" || p["nacks"].(float64) != 0 || acked["eds"] == nil || acked["eds"] != current["eds"] {
				return fmt.Errorf("proxy status = %v", p)
			}
			return nil
		})
	})

	t.Run("registry down: last snapshot kept, readiness degraded", func(t *testing.T) {
		if err := m.registry.Stop(); err != nil {
			t.Fatal(err)
		}
		harness.Poll(t, 10*time.Second, func() error {
			code, body := get(t, "http://"+m.cpAdmin+"/readyz")
			if code != http.StatusServiceUnavailable || !strings.Contains(body, "degraded") {
				return fmt.Errorf("readyz = %d %q; want 503 saying degraded", code, body)
			}
			return nil
		})
		if seen, err := spread(client, 5); err != nil || seen["b3"] != 5 {
			t.Fatalf("with the registry down calls landed %v (%v)", seen, err)
		}
		m.registry.Restart(t)
		harness.Poll(t, 15*time.Second, func() error {
			if code, body := get(t, "http://"+m.cpAdmin+"/readyz"); code != http.StatusOK {
				return fmt.Errorf("readyz after the registry returned = %d %q", code, body)
			}
			return nil
		})
	})

	t.Run("control plane restart: traffic unaffected, client resyncs", func(t *testing.T) {
		if err := m.cp.Stop(); err != nil {
			t.Fatal(err)
		}
		if seen, err := spread(client, 5); err != nil || seen["b3"] != 5 {
			t.Fatalf("with the control plane down calls landed %v (%v)", seen, err)
		}
		m.cp.Restart(t)
		// The new process knows the client only once it reconnects and
		// re-subscribes; it then ACKs what the new process sends.
		harness.Poll(t, 30*time.Second, func() error {
			ps := m.proxies(t)
			if len(ps) != 1 || ps[0]["connected"] != true {
				return fmt.Errorf("proxies after restart = %v", ps)
			}
			acked, _ := ps[0]["acked"].(map[string]any)
			current, _ := ps[0]["current"].(map[string]any)
			if acked["eds"] == nil || acked["eds"] != current["eds"] {
				return fmt.Errorf("proxy not resynced: %v", ps[0])
			}
			return nil
		})
		if seen, err := spread(client, 5); err != nil || seen["b3"] != 5 {
			t.Fatalf("after the restart calls landed %v (%v)", seen, err)
		}
	})
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
