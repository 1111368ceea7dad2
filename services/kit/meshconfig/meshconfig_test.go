package meshconfig

import (
	"errors"
	"slices"
	"strings"
	"testing"

	configv1 "github.com/switchyard-mesh/switchyard/proto/switchyard/config/v1"
)

const validStream = `
kind: ServiceDefaults
name: orders
spec:
  protocol: http
  lb_policy: ring_hash
  hash_policy: {header: x-user}
  connect_timeout: 250ms
  requestTimeout: 3s
  retries:
    attempts: 3
    retry_on: [5xx, connect-failure]
    per_try_timeout: 1s
    backoff: {base_interval: 25ms, max_interval: 250ms}
    budget: {percent: 20, min_retry_concurrency: 3}
  circuit_breaker: {max_connections: 100, max_pending_requests: 10}
  connection_pool: {idle_timeout: 30s, max_connection_duration: 10m}
  outlier_detection:
    consecutive_5xx: 5
    interval: 10s
    base_ejection_time: 30s
    max_ejection_percent: 50
---
kind: HTTPRoute
name: checkout
spec:
  service: orders
  rules:
    - name: canary
      matches:
        - path: {prefix: /api/}
          method: GET
          headers: [{name: x-env, exact: staging}]
          query: [{name: debug, present: true}]
      backends:
        - {service: orders, weight: 90}
        - {service: orders, tag: v2, weight: 10}
      canary:
        header: {name: x-canary, exact: "1"}
        backend: {service: orders, tag: v2}
      mirror: {backend: {service: orders-shadow}, percent: 5}
      fault:
        delay: {fixed: 100ms, percent: 10}
        abort: {http_status: 503, percent: 1}
      request_headers: {set: {x-route: canary}, remove: [x-debug]}
      prefix_rewrite: /v2/
      timeout: 2s
      retries: {attempts: 1}
---
kind: AuthorizationPolicy
name: orders-callers
spec:
  service: orders
  rules:
    - from: [spiffe://switchyard.local/ns/default/sa/frontend]
      methods: [GET]
      paths: [/orders*]
---
kind: RateLimitPolicy
name: orders-limits
spec:
  service: orders
  descriptors:
    - entries: [{key: user, header: x-user}, {key: plan, value: free}]
  local: {max_tokens: 100, tokens_per_fill: 10, fill_interval: 1s}
---
`

func TestParseValid(t *testing.T) {
	docs, err := Parse(strings.NewReader(validStream))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	var keys []string
	for _, d := range docs {
		keys = append(keys, d.Key())
	}
	want := "ServiceDefaults/orders HTTPRoute/checkout AuthorizationPolicy/orders-callers RateLimitPolicy/orders-limits"
	if got := strings.Join(keys, " "); got != want {
		t.Fatalf("keys = %s, want %s", got, want)
	}
	sd := docs[0].Spec.(*configv1.ServiceDefaults)
	if sd.RequestTimeout.AsDuration().String() != "3s" || sd.ConnectTimeout.AsDuration().String() != "250ms" {
		t.Errorf("durations = %v %v", sd.RequestTimeout.AsDuration(), sd.ConnectTimeout.AsDuration())
	}
	if sd.Retries.GetAttempts() != 3 || sd.HashPolicy.GetHeader() != "x-user" {
		t.Errorf("retries/hash = %v", sd)
	}
	rt := docs[1].Spec.(*configv1.HTTPRoute)
	if got := rt.Rules[0].Backends[1].Tag; got != "v2" {
		t.Errorf("backend tag = %q", got)
	}
}

func TestDocumentRoundTrip(t *testing.T) {
	docs, err := Parse(strings.NewReader(validStream))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		spec, err := d.SpecJSON()
		if err != nil {
			t.Fatal(err)
		}
		back, err := Decode(d.Kind, d.Name, spec)
		if err != nil {
			t.Fatalf("%s: decode own JSON: %v", d.Key(), err)
		}
		spec2, _ := back.SpecJSON()
		if string(spec) != string(spec2) {
			t.Errorf("%s: JSON not stable:\n%s\n%s", d.Key(), spec, spec2)
		}
		y, err := d.YAML()
		if err != nil {
			t.Fatal(err)
		}
		again, err := Parse(strings.NewReader(string(y)))
		if err != nil || len(again) != 1 {
			t.Fatalf("%s: reparse own YAML: %v\n%s", d.Key(), err, y)
		}
		// Whole document as body.
		if _, err := Decode(d.Kind, d.Name, y); err != nil {
			t.Errorf("%s: Decode whole document: %v", d.Key(), err)
		}
	}
}

func TestValidateErrors(t *testing.T) {
	tests := []struct {
		name, kind, doc string
		want            []string // substrings of the error, each must appear
	}{
		{"weight out of range", KindHTTPRoute, `{service: orders, rules: [{backends: [{service: a, weight: 50}, {service: b, weight: 150}]}]}`,
			[]string{`HTTPRoute "doc" spec.rules[0].backends[1].weight: must be 0..100`, "weights must sum to 100, got 200"}},
		{"unknown field", KindHTTPRoute, `{service: orders, rules: [{backendz: []}]}`,
			[]string{`spec.rules[0].backendz: unknown field`}},
		{"wrong type", KindServiceDefaults, `{protocol: 7}`, []string{`spec.protocol: must be a string, got number 7`}},
		{"bad duration", KindServiceDefaults, `{connect_timeout: soon}`, []string{`spec.connect_timeout: must be a duration`}},
		{"negative duration", KindServiceDefaults, `{connect_timeout: -1s}`, []string{`spec.connect_timeout: must not be negative`}},
		{"bad protocol", KindServiceDefaults, `{protocol: udp}`, []string{`spec.protocol: must be one of http, grpc, tcp, got "udp"`}},
		{"hash policy missing", KindServiceDefaults, `{lb_policy: maglev}`, []string{`spec.hash_policy: required when lb_policy is maglev`}},
		{"hash policy two", KindServiceDefaults, `{lb_policy: ring_hash, hash_policy: {header: a, source_ip: true}}`, []string{`spec.hash_policy: set exactly one`}},
		{"too many retries", KindServiceDefaults, `{retries: {attempts: 11, retry_on: [sometimes]}}`,
			[]string{`spec.retries.attempts: must be 0..10, got 11`, `spec.retries.retry_on[0]: must be one of`}},
		{"budget on route", KindHTTPRoute, `{service: a, rules: [{retries: {budget: {percent: 10}}}]}`, []string{`spec.rules[0].retries.budget: only valid in ServiceDefaults`}},
		{"tcp retries", KindServiceDefaults, `{protocol: tcp, retries: {attempts: 1}}`, []string{`spec.retries: not valid for a tcp service`}},
		{"outbound port without tcp", KindServiceDefaults, `{outbound_port: 5432}`, []string{`ServiceDefaults "doc" spec.outbound_port: only valid with protocol tcp`}},
		{"outbound port on http", KindServiceDefaults, `{protocol: http, outbound_port: 5432}`, []string{`spec.outbound_port: only valid with protocol tcp`}},
		{"outbound port privileged", KindServiceDefaults, `{protocol: tcp, outbound_port: 80}`, []string{`spec.outbound_port: must be 1024..65535, got 80`}},
		{"outbound port too high", KindServiceDefaults, `{protocol: tcp, outbound_port: 65536}`, []string{`spec.outbound_port: must be 1024..65535, got 65536`}},
		{"outbound port negative", KindServiceDefaults, `{protocol: tcp, outbound_port: -1}`, []string{`spec.outbound_port: must be a non-negative integer`}},
		{"outbound port not a number", KindServiceDefaults, `{protocol: tcp, outbound_port: db}`, []string{`spec.outbound_port: must be a non-negative integer, got string "db"`}},
		{"outbound port sidecar admin", KindServiceDefaults, `{protocol: tcp, outbound_port: 15000}`, []string{`spec.outbound_port: 15000 is a sidecar's own port`}},
		{"pool on tcp", KindServiceDefaults, `{protocol: tcp, connection_pool: {idle_timeout: 1m}}`, []string{`spec.connection_pool: not valid for a tcp service`}},
		{"pool empty", KindServiceDefaults, `{connection_pool: {}}`, []string{`spec.connection_pool: set idle_timeout or max_connection_duration`}},
		{"pool zero lifetime", KindServiceDefaults, `{connection_pool: {max_connection_duration: 0s}}`, []string{`spec.connection_pool.max_connection_duration: must be greater than 0`}},
		{"pool lifetime too short", KindServiceDefaults, `{connection_pool: {max_connection_duration: 10ms}}`, []string{`spec.connection_pool.max_connection_duration: must be at least 100ms`}},
		{"pool idle too long", KindServiceDefaults, `{connection_pool: {idle_timeout: 25h}}`, []string{`spec.connection_pool.idle_timeout: must be at most 24h0m0s`}},
		{"outbound port sidecar outbound", KindServiceDefaults, `{protocol: tcp, outbound_port: 15001}`, []string{`spec.outbound_port: 15001 is a sidecar's own port`}},
		{"outbound port sidecar inbound", KindServiceDefaults, `{protocol: tcp, outboundPort: 15006}`, []string{`spec.outbound_port: 15006 is a sidecar's own port`}},
		{"regex", KindHTTPRoute, `{service: a, rules: [{matches: [{path: {regex: "(["}}]}]}`, []string{`spec.rules[0].matches[0].path.regex: invalid RE2`}},
		{"path two", KindHTTPRoute, `{service: a, rules: [{matches: [{path: {exact: /a, prefix: /b}}]}]}`, []string{`spec.rules[0].matches[0].path: set exactly one`}},
		{"path slash", KindHTTPRoute, `{service: a, rules: [{matches: [{path: {prefix: api}}]}]}`, []string{`path.prefix: must start with '/'`}},
		{"rewrite without prefix", KindHTTPRoute, `{service: a, rules: [{prefix_rewrite: /x}]}`, []string{`spec.rules[0].prefix_rewrite: needs every match to have a path prefix`}},
		{"fault abort both", KindHTTPRoute, `{service: a, rules: [{fault: {abort: {http_status: 500, grpc_status: 2, percent: 200}}}]}`,
			[]string{`spec.rules[0].fault.abort: set exactly one of http_status, grpc_status`, `spec.rules[0].fault.abort.percent: must be 0..100, got 200`}},
		{"mirror backend", KindHTTPRoute, `{service: a, rules: [{mirror: {percent: 5}}]}`, []string{`spec.rules[0].mirror.backend: required`}},
		{"header pseudo", KindHTTPRoute, `{service: a, rules: [{request_headers: {set: {":path": /x}}}]}`, []string{`pseudo-header ":path"`}},
		{"no rules", KindHTTPRoute, `{service: a}`, []string{`spec.rules: at least one rule is required`}},
		{"bad service", KindHTTPRoute, `{service: Orders_1, rules: [{}]}`, []string{`spec.service: must be 1-63 lowercase`}},
		{"authz spiffe", KindAuthorizationPolicy, `{service: a, rules: [{from: ["frontend", "spiffe://x/*/y"]}]}`,
			[]string{`spec.rules[0].from[0]: must be a SPIFFE ID`, `spec.rules[0].from[1]: '*' may only end the ID`}},
		{"authz action", KindAuthorizationPolicy, `{service: a, action: maybe, rules: [{methods: [get]}]}`,
			[]string{`spec.action: must be one of allow, deny`, `spec.rules[0].methods[0]: must be one of GET`}},
		{"authz empty rule", KindAuthorizationPolicy, `{service: a, rules: [{}]}`, []string{`spec.rules[0]: set at least one of from, methods, paths`}},
		{"ratelimit entry", KindRateLimitPolicy, `{service: a, descriptors: [{entries: [{key: k, value: v, header: h}, {key: k, remote_address: true}]}]}`,
			[]string{`spec.descriptors[0].entries[0]: set exactly one of value, header, remote_address`, `spec.descriptors[0].entries[1].key: duplicate key "k"`}},
		{"ratelimit local", KindRateLimitPolicy, `{service: a, local: {max_tokens: 0, tokens_per_fill: 5, fill_interval: 10ms}}`,
			[]string{`spec.local.max_tokens: must be at least 1`, `spec.local.tokens_per_fill: must not exceed max_tokens`, `spec.local.fill_interval: must be at least 50ms`}},
		{"ratelimit empty", KindRateLimitPolicy, `{service: a}`, []string{`spec: set descriptors, local or both`}},
		{"unknown kind", "Gateway", `{}`, []string{`kind: unknown kind`}},
		{"not a mapping", KindHTTPRoute, `[1, 2]`, []string{`spec: must be a mapping, got a list`}},
		{"not yaml", KindHTTPRoute, "a: [", []string{`not YAML or JSON`}},
		{"whole document mismatch", KindHTTPRoute, `{kind: HTTPRoute, name: other, spec: {service: a, rules: [{}]}}`, []string{`body is document HTTPRoute/other`}},
		{"set twice", KindServiceDefaults, `{lb_policy: random, lbPolicy: random}`, []string{`set twice`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(tc.kind, "doc", []byte(tc.doc))
			if err == nil {
				t.Fatal("Validate accepted an invalid document")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Errorf("error %v does not wrap a *FieldError", err)
			}
		})
	}
}

func TestValidateName(t *testing.T) {
	for _, name := range []string{"", "A", "-a", "a_b", strings.Repeat("a", 64)} {
		if err := Validate(KindServiceDefaults, name, []byte(`{}`)); err == nil || !strings.Contains(err.Error(), "name: must be") {
			t.Errorf("name %q: err = %v", name, err)
		}
	}
	if err := Validate(KindServiceDefaults, "orders-2", []byte(``)); err != nil {
		t.Errorf("empty spec: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ name, stream, want string }{
		{"missing kind", "name: a\nspec: {}\n", "kind: required"},
		{"missing spec", "kind: HTTPRoute\nname: a\n", "spec: required"},
		{"extra key", "kind: HTTPRoute\nname: a\nmetadata: {}\nspec: {service: a, rules: [{}]}\n", "metadata: unknown field"},
		{"second invalid", "kind: ServiceDefaults\nname: a\nspec: {}\n---\nkind: ServiceDefaults\nname: b\nspec: {protocol: x}\n", `document 2 (line 5): ServiceDefaults "b" spec.protocol`},
		{"duplicate", "kind: ServiceDefaults\nname: a\nspec: {}\n---\nkind: ServiceDefaults\nname: a\nspec: {}\n", "repeats document 1"},
		{"outbound port twice", "kind: ServiceDefaults\nname: db\nspec: {protocol: tcp, outbound_port: 5432}\n---\nkind: ServiceDefaults\nname: cache\nspec: {protocol: tcp, outbound_port: 5432}\n",
			`ServiceDefaults "db" spec.outbound_port: 5432 is already the outbound_port of ServiceDefaults "cache"`},
		{"syntax", "kind: [\n", "document 1"},
		{"scalar", "hello\n", "must be a mapping"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			docs, err := Parse(strings.NewReader(tc.stream))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if docs != nil {
				t.Errorf("got %d documents with an error; want none (nothing half-applies)", len(docs))
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	for _, seed := range strings.Split(validStream, "---") {
		f.Add(KindHTTPRoute, seed)
	}
	f.Add(KindServiceDefaults, `{retries: {attempts: 1e30}}`)
	f.Add(KindRateLimitPolicy, `{service: a, local: {max_tokens: -1}}`)
	f.Add(KindAuthorizationPolicy, `{service: a, rules: [{from: ["*"]}]}`)
	f.Fuzz(func(t *testing.T, kind, body string) {
		d, err := Decode(kind, "fuzz", []byte(body))
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error without a FieldError: %v", err)
			}
			return
		}
		// Whatever is accepted must round-trip through its canonical form.
		spec, err := d.SpecJSON()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Decode(d.Kind, d.Name, spec); err != nil {
			t.Fatalf("canonical form of an accepted document refused: %v\n%s", err, spec)
		}
	})
}

func TestValidOutboundPorts(t *testing.T) {
	for _, doc := range []string{`{protocol: tcp}`, `{protocol: tcp, outbound_port: 1024}`, `{protocol: tcp, outbound_port: 5432}`,
		`{protocol: tcp, outboundPort: 65535}`, `{protocol: tcp, outbound_port: 0}`, `{protocol: tcp, outbound_port: 6379, lb_policy: ring_hash, hash_policy: {source_ip: true}}`} {
		if err := Validate(KindServiceDefaults, "db", []byte(doc)); err != nil {
			t.Errorf("%s: %v", doc, err)
		}
	}
}

func TestOutboundPorts(t *testing.T) {
	docs, err := Parse(strings.NewReader(`
kind: ServiceDefaults
name: redis
spec: {protocol: tcp, outbound_port: 6379}
---
kind: ServiceDefaults
name: db
spec: {protocol: tcp, outbound_port: 5432}
---
kind: ServiceDefaults
name: mq
spec: {protocol: tcp}
---
kind: ServiceDefaults
name: web
spec: {protocol: http}
`))
	if err != nil {
		t.Fatal(err)
	}
	ports, errs := OutboundPorts(docs)
	if len(errs) != 0 || len(ports) != 2 || ports["db"] != 5432 || ports["redis"] != 6379 {
		t.Fatalf("OutboundPorts = %v, %v", ports, errs)
	}
	// Stored documents can conflict (the registry validates each alone): the
	// name sorting first keeps the port, whatever the input order.
	clash, err := Decode(KindServiceDefaults, "cache", []byte(`{protocol: tcp, outbound_port: 6379}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, set := range [][]Document{append(slices.Clone(docs), clash), append([]Document{clash}, docs...)} {
		ports, errs = OutboundPorts(set)
		if ports["cache"] != 6379 || ports["redis"] != 0 || ports["db"] != 5432 || len(errs) != 1 {
			t.Fatalf("OutboundPorts = %v, %v", ports, errs)
		}
		var fe *FieldError
		if !errors.As(errs[0], &fe) || fe.Name != "redis" || fe.Field != "spec.outbound_port" || !strings.Contains(fe.Reason, `ServiceDefaults "cache"`) {
			t.Errorf("error = %#v", errs[0])
		}
		if err := CheckSet(set); err == nil || !strings.Contains(err.Error(), `ServiceDefaults "redis" spec.outbound_port: 6379 is already`) {
			t.Errorf("CheckSet = %v", err)
		}
	}
}

func TestCheckAgainst(t *testing.T) {
	doc := func(name, spec string) Document {
		t.Helper()
		d, err := Decode(KindServiceDefaults, name, []byte(spec))
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	stored := []Document{doc("db", `{protocol: tcp, outbound_port: 5432}`), doc("web", `{protocol: http}`)}
	tests := []struct {
		name    string
		doc     Document
		wantErr string
	}{
		{"free port", doc("redis", `{protocol: tcp, outbound_port: 6379}`), ""},
		{"taken port", doc("pg2", `{protocol: tcp, outbound_port: 5432}`), `ServiceDefaults "pg2" spec.outbound_port: 5432 is already the outbound_port of ServiceDefaults "db"`},
		{"replacing itself", doc("db", `{protocol: tcp, outbound_port: 5432}`), ""},
		{"no outbound port", doc("mq", `{protocol: tcp}`), ""},
		{"http service", doc("api", `{protocol: http}`), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckAgainst(tc.doc, stored)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("CheckAgainst = %v, want %q", err, tc.wantErr)
			}
		})
	}
}
