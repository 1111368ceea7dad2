package translate

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/switchyard-mesh/switchyard/services/kit/meshconfig"
	"google.golang.org/protobuf/encoding/protojson"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func catalog() Catalog {
	return Catalog{Services: []Service{
		{Name: "frontend", Instances: []Instance{{ID: "frontend-1", Address: "10.0.0.1", Port: 15006, Health: HealthPassing, Region: "eu", Zone: "eu-1"}}},
		{Name: "orders", Instances: []Instance{
			{ID: "orders-1", Address: "10.0.1.1", Port: 15006, Health: HealthPassing, Region: "eu", Zone: "eu-1"},
			{ID: "orders-2", Address: "10.0.1.2", Port: 15006, Health: HealthCritical, Region: "eu", Zone: "eu-2"},
			{ID: "orders-3", Address: "10.0.1.3", Port: 15006, Health: HealthPassing, Weight: 3, Region: "us", Zone: "us-1", Tags: []string{"v2"}},
		}},
		{Name: "billing", Instances: []Instance{{ID: "billing-1", Address: "10.0.2.1", Port: 15006, Health: HealthWarning}}},
		{Name: "ratelimit", Instances: []Instance{{ID: "ratelimit-1", Address: "10.0.9.1", Port: 8081, Health: HealthPassing}}},
	}}
}

const (
	serviceDefaults = `
kind: ServiceDefaults
name: orders
spec:
  protocol: http
  lb_policy: least_request
  connect_timeout: 250ms
  request_timeout: 3s
  retries:
    attempts: 3
    retry_on: [5xx, connect-failure]
    per_try_timeout: 1s
    backoff: {base_interval: 25ms, max_interval: 250ms}
    budget: {percent: 20, min_retry_concurrency: 3}
  circuit_breaker: {max_connections: 100, max_pending_requests: 10, max_requests: 200}
  outlier_detection: {consecutive_5xx: 5, interval: 10s, base_ejection_time: 30s, max_ejection_percent: 50}
  connection_pool: {idle_timeout: 30s, max_connection_duration: 10m}
---
kind: ServiceDefaults
name: billing
spec: {protocol: grpc, lb_policy: maglev, hash_policy: {header: x-user}, connection_pool: {max_connection_duration: 1h}}
`
	httpRoute = `
kind: HTTPRoute
name: orders-canary
spec:
  service: orders
  rules:
    - name: split
      matches:
        - path: {prefix: /api/}
          method: GET
          headers: [{name: x-env, exact: staging}]
          query: [{name: debug, present: true}]
      backends: [{service: orders, weight: 90}, {service: orders, tag: v2, weight: 10}]
      canary: {header: {name: x-canary, exact: "1"}, backend: {service: orders, tag: v2}}
      mirror: {backend: {service: orders-shadow}, percent: 5}
      fault: {delay: {fixed: 100ms, percent: 10}, abort: {http_status: 503, percent: 0.5}}
      request_headers: {set: {x-route: split}, add: {x-trace: "1"}, remove: [x-debug]}
      response_headers: {remove: [server]}
      prefix_rewrite: /v2/
      timeout: 2s
      retries: {attempts: 1}
`
	authzPolicy = `
kind: AuthorizationPolicy
name: orders-callers
spec:
  service: orders
  rules:
    - from: [spiffe://switchyard.local/ns/default/sa/frontend]
      methods: [GET, POST]
      paths: [/orders*]
    - from: [spiffe://switchyard.local/ns/ops/*]
---
kind: AuthorizationPolicy
name: orders-no-admin
spec:
  service: orders
  action: deny
  rules: [{paths: [/admin*]}]
`
	rateLimit = `
kind: RateLimitPolicy
name: orders-limits
spec:
  service: orders
  domain: shop
  failure_mode: deny
  timeout: 50ms
  descriptors:
    - entries: [{key: user, header: x-user}, {key: plan, value: free}]
    - entries: [{key: ip, remote_address: true}]
  local: {max_tokens: 100, tokens_per_fill: 10, fill_interval: 1s}
`
)

// tcpDefaults makes db a TCP service with an outbound port, cache a TCP
// service without one (inbound only); db admits frontend and ops only.
const tcpDefaults = `
kind: ServiceDefaults
name: db
spec:
  protocol: tcp
  outbound_port: 5432
  connect_timeout: 1s
  circuit_breaker: {max_connections: 50}
---
kind: ServiceDefaults
name: cache
spec: {protocol: tcp}
---
kind: AuthorizationPolicy
name: db-callers
spec:
  service: db
  rules: [{from: [spiffe://switchyard.local/ns/default/sa/frontend, spiffe://switchyard.local/ns/ops/*]}]
`

// tcpCatalog is catalog() plus two db replicas and a cache.
func tcpCatalog() Catalog {
	c := catalog()
	c.Services = append(c.Services,
		Service{Name: "db", Instances: []Instance{
			{ID: "db-1", Address: "10.0.3.1", Port: 15006, Health: HealthPassing},
			{ID: "db-2", Address: "10.0.3.2", Port: 15006, Health: HealthPassing},
		}},
		Service{Name: "cache", Instances: []Instance{{ID: "cache-1", Address: "10.0.4.1", Port: 15006, Health: HealthPassing}}},
	)
	return c
}

func parse(t testing.TB, yamls ...string) Docs {
	t.Helper()
	docs, err := meshconfig.Parse(strings.NewReader(strings.Join(yamls, "\n---\n")))
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

func TestGolden(t *testing.T) {
	all := []string{serviceDefaults, httpRoute, authzPolicy, rateLimit}
	tests := []struct {
		name  string
		docs  []string
		proxy Proxy
		cat   func() Catalog // default catalog
	}{
		{"no-documents-sidecar", nil, Proxy{ID: "frontend-1", Service: "frontend", AppPort: 8080}, nil},
		{"service-defaults", []string{serviceDefaults}, Proxy{ID: "frontend-1", Service: "frontend"}, nil},
		{"http-route", []string{httpRoute}, Proxy{ID: "frontend-1", Service: "frontend"}, nil},
		{"authorization-policy-inbound", []string{authzPolicy}, Proxy{ID: "orders-1", Service: "orders", AppPort: 9000}, nil},
		{"authorization-policy-denied-caller", []string{authzPolicy}, Proxy{ID: "billing-1", Service: "billing"}, nil},
		{"rate-limit-policy", []string{rateLimit}, Proxy{ID: "orders-1", Service: "orders"}, nil},
		{"gateway", all, Proxy{ID: "gw", Kind: Gateway}, nil},
		{"proxyless", all, Proxy{ID: "grpc-client", Kind: Proxyless}, nil},
		{"locality-priorities", nil, Proxy{ID: "frontend-1", Service: "frontend", Region: "eu", Zone: "eu-2"}, nil},
		// frontend may call db: an outbound TCP listener on 127.0.0.1:5432
		// to the db cluster; cache has no outbound_port, so no listener.
		{"tcp-outbound", []string{tcpDefaults}, Proxy{ID: "frontend-1", Service: "frontend"}, tcpCatalog},
		// db's own sidecar: inbound tcp_proxy with network RBAC, and no
		// listener for its own service's port.
		{"tcp-inbound", []string{tcpDefaults}, Proxy{ID: "db-1", Service: "db", AppPort: 5432}, tcpCatalog},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cat := catalog
			if tc.cat != nil {
				cat = tc.cat
			}
			w := Build(cat(), parse(t, tc.docs...), Options{})
			res := w.ForProxy(tc.proxy)
			if _, err := res.Snapshot(); err != nil {
				t.Fatal(err)
			}
			got := render(t, res)
			path := filepath.Join("testdata", tc.name+".json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the translation; run go test -update and review the diff\n%s", path, firstDiff(want, got))
			}
		})
	}
}

// render is stable JSON of every resource, grouped by type.
func render(t *testing.T, r Resources) []byte {
	t.Helper()
	out := map[string][]any{}
	for typ, items := range map[string][]Built{"listeners": r.Listeners, "routes": r.Routes, "clusters": r.Clusters, "endpoints": r.Endpoints} {
		out[typ] = []any{}
		for _, b := range items {
			raw, err := protojson.Marshal(b.Resource)
			if err != nil {
				t.Fatal(err)
			}
			var v any
			if err := json.Unmarshal(raw, &v); err != nil {
				t.Fatal(err)
			}
			out[typ] = append(out[typ], v)
		}
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func firstDiff(want, got []byte) string {
	wl, gl := strings.Split(string(want), "\n"), strings.Split(string(got), "\n")
	for i := 0; i < len(wl) && i < len(gl); i++ {
		if wl[i] != gl[i] {
			return "line " + strconv.Itoa(i+1) + ":\n- " + wl[i] + "\n+ " + gl[i]
		}
	}
	return "lengths differ"
}

func names(bs []Built) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.Name)
	}
	return out
}

func TestScoping(t *testing.T) {
	w := Build(catalog(), parse(t, httpRoute, authzPolicy, rateLimit), Options{})
	tests := []struct {
		proxy Proxy
		want  []string
	}{
		{Proxy{Service: "frontend"}, []string{"billing", "frontend", "orders", "orders-shadow", "ratelimit"}},
		{Proxy{Service: "billing"}, []string{"billing", "frontend", "orders-shadow", "ratelimit"}},
		{Proxy{Service: "ops", Namespace: "ops"}, []string{"billing", "frontend", "orders", "orders-shadow", "ratelimit"}},
		{Proxy{Service: "orders"}, []string{"billing", "frontend", "orders-shadow", "ratelimit"}},
		{Proxy{}, []string{"billing", "frontend", "orders", "orders-shadow", "ratelimit"}},
	}
	for _, tc := range tests {
		if got := w.Visible(tc.proxy); !slices.Equal(got, tc.want) {
			t.Errorf("Visible(%+v) = %v, want %v", tc.proxy, got, tc.want)
		}
	}
	// Sharing: two proxies with the same view get the same resource objects.
	a, b := w.ForProxy(Proxy{ID: "a", Service: "frontend"}), w.ForProxy(Proxy{ID: "b", Service: "frontend"})
	if a.Routes[0].Resource != b.Routes[0].Resource || a.Endpoints[0].Resource != b.Endpoints[0].Resource {
		t.Error("proxies with the same view do not share built resources")
	}
	if got := names(a.Clusters); !slices.Contains(got, "orders~v2") || !slices.Contains(got, ClusterLocalApp) {
		t.Errorf("clusters = %v, want the v2 subset and the local app", got)
	}
}

// tcpListeners lists the outbound TCP listeners of a proxy as name@address.
func tcpListeners(r Resources) []string {
	var out []string
	for _, b := range r.Listeners {
		if !strings.HasPrefix(b.Name, ListenerOutbound+"|") {
			continue
		}
		sa := b.Resource.(*listenerv3.Listener).GetAddress().GetSocketAddress()
		out = append(out, fmt.Sprintf("%s@%s:%d", b.Name, sa.GetAddress(), sa.GetPortValue()))
	}
	return out
}

func TestOutboundTCPListeners(t *testing.T) {
	const more = `
kind: ServiceDefaults
name: redis
spec: {protocol: tcp, outbound_port: 6379, lb_policy: random}
---
kind: ServiceDefaults
name: mq
spec: {protocol: tcp, outbound_port: 5672}
`
	// Stored separately, two documents may claim one port: the name sorting
	// first (db) keeps it, pg gets no listener.
	clash, err := meshconfig.Decode(meshconfig.KindServiceDefaults, "pg", []byte(`{protocol: tcp, outbound_port: 5432}`))
	if err != nil {
		t.Fatal(err)
	}
	docs := append(parse(t, tcpDefaults, more), clash)
	w := Build(tcpCatalog(), docs, Options{})
	tests := []struct {
		name  string
		proxy Proxy
		want  []string
	}{
		{"caller admitted by db's policy", Proxy{Service: "frontend"},
			[]string{"outbound|db@127.0.0.1:5432", "outbound|mq@127.0.0.1:5672", "outbound|redis@127.0.0.1:6379"}},
		{"caller admitted by a pattern", Proxy{Service: "ops", Namespace: "ops"},
			[]string{"outbound|db@127.0.0.1:5432", "outbound|mq@127.0.0.1:5672", "outbound|redis@127.0.0.1:6379"}},
		{"caller db's policy does not admit", Proxy{Service: "billing"},
			[]string{"outbound|mq@127.0.0.1:5672", "outbound|redis@127.0.0.1:6379"}},
		{"own service is not listened for", Proxy{Service: "redis"}, // (and db does not admit redis)
			[]string{"outbound|mq@127.0.0.1:5672"}},
		{"the app's own port is left to the app", Proxy{Service: "frontend", AppPort: 5672},
			[]string{"outbound|db@127.0.0.1:5432", "outbound|redis@127.0.0.1:6379"}},
		{"unknown service sees all", Proxy{},
			[]string{"outbound|db@127.0.0.1:5432", "outbound|mq@127.0.0.1:5672", "outbound|redis@127.0.0.1:6379"}},
		{"gateway: HTTP only", Proxy{Kind: Gateway}, nil},
		{"proxyless: none", Proxy{Kind: Proxyless}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := w.ForProxy(tc.proxy)
			if got := tcpListeners(r); !slices.Equal(got, tc.want) {
				t.Errorf("TCP listeners = %v, want %v", got, tc.want)
			}
			if _, err := r.Snapshot(); err != nil {
				t.Fatal(err)
			}
			// Every TCP listener's cluster is there, with mTLS to the service.
			clusters := map[string]*clusterv3.Cluster{}
			for _, c := range r.Clusters {
				clusters[c.Name] = c.Resource.(*clusterv3.Cluster)
			}
			for _, l := range r.Listeners {
				svc, ok := strings.CutPrefix(l.Name, ListenerOutbound+"|")
				if !ok {
					continue
				}
				c := clusters[svc]
				if c == nil || c.GetTransportSocket() == nil || c.GetType() != clusterv3.Cluster_EDS {
					t.Errorf("listener %s: cluster %s missing or without mTLS: %v", l.Name, svc, c)
				}
			}
		})
	}
	// The route table never carries a TCP service.
	for _, vh := range w.ForProxy(Proxy{Service: "frontend"}).Routes[0].Resource.(*routev3.RouteConfiguration).GetVirtualHosts() {
		if slices.Contains([]string{"db", "cache", "redis", "mq", "pg"}, vh.GetName()) {
			t.Errorf("virtual host for TCP service %s", vh.GetName())
		}
	}
	// Listeners are shared between proxies, not rebuilt per proxy.
	a, b := w.ForProxy(Proxy{ID: "a", Service: "frontend"}), w.ForProxy(Proxy{ID: "b", Service: "ops", Namespace: "ops"})
	if a.Listeners[2].Resource != b.Listeners[2].Resource {
		t.Error("outbound TCP listener rebuilt per proxy")
	}
	// A port the mesh options give the sidecar itself is never taken.
	w = Build(tcpCatalog(), docs, Options{InboundPort: 6379})
	if got := tcpListeners(w.ForProxy(Proxy{Service: "frontend"})); slices.Contains(got, "outbound|redis@127.0.0.1:6379") {
		t.Errorf("TCP listeners = %v include the inbound port", got)
	}
}

func TestVersionsOnlyChangeWithContent(t *testing.T) {
	p := Proxy{ID: "f", Service: "frontend"}
	snap := func(c Catalog) map[string]string {
		s, err := Build(c, nil, Options{}).ForProxy(p).Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for i, r := range s.Resources {
			out[string(rune('0'+i))] = r.Version
		}
		return out
	}
	c1 := catalog()
	v1, v1again := snap(c1), snap(catalog())
	c2 := catalog()
	c2.Services[1].Instances = c2.Services[1].Instances[:2]
	v2 := snap(c2)
	if v1["0"] != v1again["0"] || v1["2"] != v1again["2"] {
		t.Fatal("same input, different versions")
	}
	// Index 0 is clusters, 1 endpoints in go-control-plane's ResponseType order.
	if v1["1"] == v2["1"] {
		t.Error("endpoint version did not change when an instance went away")
	}
	if v1["0"] != v2["0"] {
		t.Error("cluster version changed although no cluster did")
	}
}

// TestEnvoyValidation runs Envoy's own proto constraints (protoc-gen-validate)
// over every resource of every golden case's full document set.
func TestEnvoyValidation(t *testing.T) {
	w := Build(tcpCatalog(), parse(t, serviceDefaults, httpRoute, authzPolicy, rateLimit, tcpDefaults), Options{})
	for _, p := range []Proxy{{Service: "orders"}, {Service: "frontend"}, {Service: "db"}, {Kind: Gateway}, {Kind: Proxyless}, {}} {
		r := w.ForProxy(p)
		for _, group := range [][]Built{r.Listeners, r.Routes, r.Clusters, r.Endpoints} {
			for _, b := range group {
				v, ok := b.Resource.(interface{ ValidateAll() error })
				if !ok {
					t.Fatalf("%s has no ValidateAll", b.Name)
				}
				if err := v.ValidateAll(); err != nil {
					t.Errorf("%v %s: %v", p.Kind, b.Name, err)
				}
			}
		}
	}
}

func TestLocalityPriorities(t *testing.T) {
	w := Build(catalog(), nil, Options{})
	prio := func(p Proxy) map[string]uint32 {
		out := map[string]uint32{}
		for _, b := range w.ForProxy(p).Endpoints {
			if b.Name != "orders" {
				continue
			}
			for _, l := range b.Resource.(*endpointv3.ClusterLoadAssignment).GetEndpoints() {
				out[l.GetLocality().GetRegion()+"/"+l.GetLocality().GetZone()] = l.GetPriority()
			}
		}
		return out
	}
	tests := []struct {
		name string
		p    Proxy
		want map[string]uint32
	}{
		{"no locality: one priority", Proxy{Service: "frontend"}, map[string]uint32{"eu/eu-1": 0, "eu/eu-2": 0, "us/us-1": 0}},
		{"zone, region, elsewhere", Proxy{Service: "frontend", Region: "eu", Zone: "eu-2"}, map[string]uint32{"eu/eu-2": 0, "eu/eu-1": 1, "us/us-1": 2}},
		{"region only", Proxy{Service: "frontend", Region: "us"}, map[string]uint32{"us/us-1": 0, "eu/eu-1": 1, "eu/eu-2": 1}},
		{"no local endpoints: contiguous from 0", Proxy{Service: "frontend", Region: "ap", Zone: "ap-1"}, map[string]uint32{"eu/eu-1": 0, "eu/eu-2": 0, "us/us-1": 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := prio(tc.p); !maps.Equal(got, tc.want) {
				t.Errorf("priorities = %v, want %v", got, tc.want)
			}
		})
	}
}
