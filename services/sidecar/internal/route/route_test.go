package route

import (
	"math"
	"math/rand/v2"
	"net/http/httptest"
	"regexp"
	"testing"
)

func ptr[T any](v T) *T { return &v }

func table() *Table {
	return &Table{VirtualHosts: []VirtualHost{
		{Name: "users", Domains: []string{"users", "users.mesh"}, Routes: []Route{
			{Name: "canary", Match: Match{Prefix: "/", CaseSensitive: true, Headers: []HeaderMatcher{{Name: "x-canary", Value: &StringMatcher{Exact: "1"}}}}},
			{Name: "exact", Match: Match{Path: "/health", CaseSensitive: true}},
			{Name: "regex", Match: Match{Regex: regexp.MustCompile(`^/users/[0-9]+$`)}},
			{Name: "post", Match: Match{Prefix: "/api", CaseSensitive: true, Headers: []HeaderMatcher{{Name: ":method", Value: &StringMatcher{Exact: "POST"}}}}},
			{Name: "query", Match: Match{Prefix: "/api", CaseSensitive: true, Query: []QueryMatcher{{Name: "debug", Present: true}}}},
			{Name: "no-header", Match: Match{Prefix: "/api", CaseSensitive: true, Headers: []HeaderMatcher{{Name: "x-internal", Present: ptr(true), Invert: true}}}},
			{Name: "ci-prefix", Match: Match{Prefix: "/CI"}},
		}},
		{Name: "wild-suffix", Domains: []string{"*.example.com"}, Routes: []Route{{Name: "ws", Match: Match{Prefix: "/"}}}},
		{Name: "wild-suffix-longer", Domains: []string{"*.api.example.com"}, Routes: []Route{{Name: "wsl", Match: Match{Prefix: "/"}}}},
		{Name: "wild-prefix", Domains: []string{"orders.*"}, Routes: []Route{{Name: "wp", Match: Match{Prefix: "/"}}}},
		{Name: "default", Domains: []string{"*"}, Routes: []Route{{Name: "any", Match: Match{Prefix: "/"}}}},
	}}
}

func TestFind(t *testing.T) {
	tests := []struct {
		name, method, url string
		headers           map[string]string
		wantVH, wantRoute string
	}{
		{"header canary", "GET", "http://users/x", map[string]string{"x-canary": "1"}, "users", "canary"},
		{"exact path", "GET", "http://users/health", nil, "users", "exact"},
		{"exact path is not a prefix", "GET", "http://users/healthz", nil, "users", ""},
		{"regex", "GET", "http://users/users/42", nil, "users", "regex"},
		{"regex no match", "GET", "http://users/users/abc", nil, "users", ""},
		{"method", "POST", "http://users/api/x", nil, "users", "post"},
		{"query present", "GET", "http://users/api/x?debug", nil, "users", "query"},
		{"inverted presence", "GET", "http://users/api/x", nil, "users", "no-header"},
		{"inverted presence fails", "GET", "http://users/api/x", map[string]string{"x-internal": "y"}, "users", ""},
		{"case-insensitive prefix", "GET", "http://users/ci/a", nil, "users", "ci-prefix"},
		{"host with port", "GET", "http://users:8080/health", nil, "users", "exact"},
		{"longest suffix wins", "GET", "http://a.api.example.com/", nil, "wild-suffix-longer", "wsl"},
		{"suffix", "GET", "http://b.example.com/", nil, "wild-suffix", "ws"},
		{"prefix wildcard", "GET", "http://orders.mesh/", nil, "wild-prefix", "wp"},
		{"default", "GET", "http://nowhere/", nil, "default", "any"},
	}
	tb := table()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.url, nil)
			for k, v := range tt.headers {
				r.Header.Set(k, v)
			}
			vh, rt := tb.Find(r)
			if vh == nil || vh.Name != tt.wantVH {
				t.Fatalf("virtual host %v, want %s", vh, tt.wantVH)
			}
			got := ""
			if rt != nil {
				got = rt.Name
			}
			if got != tt.wantRoute {
				t.Fatalf("route %q, want %q", got, tt.wantRoute)
			}
		})
	}
}

func TestStringMatcher(t *testing.T) {
	tests := []struct {
		m    StringMatcher
		in   string
		want bool
	}{
		{StringMatcher{Exact: "a"}, "a", true},
		{StringMatcher{Exact: "a", IgnoreCase: true}, "A", true},
		{StringMatcher{Prefix: "ab"}, "abc", true},
		{StringMatcher{Suffix: "bc"}, "abc", true},
		{StringMatcher{Contains: "b"}, "abc", true},
		{StringMatcher{Contains: "x"}, "abc", false},
		{StringMatcher{Regex: regexp.MustCompile(`^a.c$`)}, "abc", true},
		{StringMatcher{}, "", true},
	}
	for _, tt := range tests {
		if got := tt.m.Match(tt.in); got != tt.want {
			t.Errorf("%+v.Match(%q) = %v", tt.m, tt.in, got)
		}
	}
}

func TestWeightedSplit(t *testing.T) {
	a := Action{Clusters: []WeightedCluster{{"v1", 90}, {"v2", 10}}}
	r := rand.New(rand.NewPCG(5, 6))
	n, v2 := 100000, 0
	for range n {
		if a.PickCluster(r.Uint64()) == "v2" {
			v2++
		}
	}
	if math.Abs(float64(v2)/float64(n)-0.1) > 0.01 {
		t.Fatalf("v2 share %.3f, want 0.10", float64(v2)/float64(n))
	}
	if got := (&Action{Clusters: []WeightedCluster{{"only", 0}}}).PickCluster(7); got != "only" {
		t.Fatal(got)
	}
}

func TestDescriptor(t *testing.T) {
	r := httptest.NewRequest("GET", "http://users/", nil)
	r.Header.Set("x-user", "alice")
	r.RemoteAddr = "10.1.1.1:3333"
	rl := RateLimit{Actions: []RateLimitAction{{Header: "x-user", HeaderKey: "user"}, {RemoteAddress: true}, {GenericValue: "users-api"}, {DestinationCluster: true}}}
	got, ok := rl.Descriptor(r, "users")
	want := []Entry{{"user", "alice"}, {"remote_address", "10.1.1.1"}, {"generic_key", "users-api"}, {"destination_cluster", "users"}}
	if !ok || len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("entry %d = %v want %v", i, got[i], want[i])
		}
	}
	missing := RateLimit{Actions: []RateLimitAction{{Header: "x-none", HeaderKey: "k"}}}
	if _, ok := missing.Descriptor(r, "users"); ok {
		t.Fatal("descriptor with a missing header must be skipped")
	}
}

func FuzzFind(f *testing.F) {
	f.Add("users:80", "/users/1?debug=1", "POST")
	f.Fuzz(func(t *testing.T, host, path, method string) {
		r := httptest.NewRequest("GET", "http://x/", nil)
		r.Host, r.Method = host, method
		r.URL.Path = path
		table().Find(r) // must not panic
	})
}

func BenchmarkFind(b *testing.B) {
	tb := table()
	r := httptest.NewRequest("GET", "http://users/api/x?debug", nil)
	for b.Loop() {
		tb.Find(r)
	}
}
