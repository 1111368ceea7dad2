package translate

import (
	"bytes"
	"encoding/json"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
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
---
kind: ServiceDefaults
name: billing
spec: {protocol: grpc, lb_policy: maglev, hash_policy: {header: x-user}}
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
	}{
		{"no-documents-sidecar", nil, Proxy{ID: "frontend-1", Service: "frontend", AppPort: 8080}},
		{"service-defaults", []string{serviceDefaults}, Proxy{ID: "frontend-1", Service: "frontend"}},
		{"http-route", []string{httpRoute}, Proxy{ID: "frontend-1", Service: "frontend"}},
		{"authorization-policy-inbound", []string{authzPolicy}, Proxy{ID: "orders-1", Service: "orders", AppPort: 9000}},
		{"authorization-policy-denied-caller", []string{authzPolicy}, Proxy{ID: "billing-1", Service: "billing"}},
		{"rate-limit-policy", []string{rateLimit}, Proxy{ID: "orders-1", Service: "orders"}},
		{"gateway", all, Proxy{ID: "gw", Kind: Gateway}},
		{"proxyless", all, Proxy{ID: "grpc-client", Kind: Proxyless}},
		{"locality-priorities", nil, Proxy{ID: "frontend-1", Service: "frontend", Region: "eu", Zone: "eu-2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := Build(catalog(), parse(t, tc.docs...), Options{})
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
	w := Build(catalog(), parse(t, serviceDefaults, httpRoute, authzPolicy, rateLimit), Options{})
	for _, p := range []Proxy{{Service: "orders"}, {Service: "frontend"}, {Kind: Gateway}, {Kind: Proxyless}, {}} {
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
