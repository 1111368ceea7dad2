package limits

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func mustParse(t *testing.T, src string) *Config {
	t.Helper()
	cfg, err := Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return cfg
}

func TestLoadPathTiers(t *testing.T) {
	cfg, err := LoadPath("testdata/tiers.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.Domains(), []string{"api", "internal"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("domains = %v, want %v", got, want)
	}
	tests := []struct {
		name    string
		domain  string
		entries []Entry
		want    Rule
		ok      bool
	}{
		{"seed", "api", []Entry{{"path", "/seed"}}, Rule{Domain: "api", Path: "path=/seed", Limits: []Limit{{Unit: Second, RequestsPerUnit: 10, Burst: 10}}}, true},
		{"free tier has two limits", "api", []Entry{{"plan", "free"}, {"user", "alice"}}, Rule{Domain: "api", Path: "plan=free.user", Limits: []Limit{
			{Name: "free-hourly", Unit: Hour, RequestsPerUnit: 100, Burst: 100},
			{Name: "free-daily", Unit: Day, RequestsPerUnit: 1000, Burst: 1000},
		}}, true},
		{"pro tier", "api", []Entry{{"plan", "pro"}, {"user", "bob"}}, Rule{Domain: "api", Path: "plan=pro.user", Limits: []Limit{{Name: "pro-hourly", Unit: Hour, RequestsPerUnit: 10000, Burst: 10000}}}, true},
		{"gcra with burst", "api", []Entry{{"path", "/smooth"}}, Rule{Domain: "api", Path: "path=/smooth", Limits: []Limit{{Unit: Second, RequestsPerUnit: 5, Algorithm: GCRA, Burst: 2}}}, true},
		{"prefix value unlimited", "api", []Entry{{"path", "/static/app.js"}}, Rule{Domain: "api", Path: "path=/static/*", Unlimited: true}, true},
		{"shadow any value", "api", []Entry{{"remote_address", "10.0.0.1"}}, Rule{Domain: "api", Path: "remote_address", Shadow: true, Limits: []Limit{{Unit: Minute, RequestsPerUnit: 60, Burst: 60}}}, true},
		{"plan alone has no limit", "api", []Entry{{"plan", "free"}}, Rule{}, false},
		{"deeper than config", "api", []Entry{{"path", "/seed"}, {"user", "x"}}, Rule{}, false},
		{"unknown value", "api", []Entry{{"plan", "enterprise"}, {"user", "x"}}, Rule{}, false},
		{"unknown domain", "nope", []Entry{{"path", "/seed"}}, Rule{}, false},
		{"no entries", "api", nil, Rule{}, false},
		{"second domain", "internal", []Entry{{"service", "orders"}}, Rule{Domain: "internal", Path: "service", Limits: []Limit{{Unit: Second, RequestsPerUnit: 1000, Burst: 1000}}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := cfg.Match(tt.domain, tt.entries)
			if ok != tt.ok || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Match = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestParseErrorsNameThePlace(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string
	}{
		{"unknown unit", `
domain: api
descriptors:
  - key: a
    rate_limit: {unit: second, requests_per_unit: 1}
  - key: b
    rate_limit: {unit: fortnight, requests_per_unit: 1}
`, `test.yaml:7: domain "api" descriptors[1].rate_limit.unit: unknown unit "fortnight"`},
		{"duplicate descriptor", `
domain: api
descriptors:
  - key: plan
    value: free
  - key: plan
    value: free
`, `test.yaml:6: domain "api" descriptors[1]: duplicate descriptor plan=free (also at descriptors[0])`},
		{"duplicate nested wildcard", `
domain: api
descriptors:
  - key: plan
    value: free
    descriptors:
      - key: user
        rate_limit: {unit: hour, requests_per_unit: 1}
      - key: user
        rate_limit: {unit: day, requests_per_unit: 1}
`, `domain "api" descriptors[0].descriptors[1]: duplicate descriptor user (also at descriptors[0].descriptors[0])`},
		{"duplicate yaml key", `
domain: api
descriptors:
  - key: a
    key: b
`, `descriptors[0].key: duplicate key "key"`},
		{"negative limit", `
domain: api
descriptors:
  - key: a
    rate_limit: {unit: second, requests_per_unit: -5}
`, `domain "api" descriptors[0].rate_limit.requests_per_unit: must not be negative, got -5`},
		{"negative in list", `
domain: api
descriptors:
  - key: a
    rate_limits:
      - {unit: second, requests_per_unit: 5}
      - {unit: day, requests_per_unit: -1}
`, `descriptors[0].rate_limits[1].requests_per_unit: must not be negative`},
		{"unknown field", `
domain: api
descriptors:
  - key: a
    rate_limit: {unit: second, requests_per_unit: 1, replaces: [x]}
`, `descriptors[0].rate_limit.replaces: unknown field`},
		{"missing key", `
domain: api
descriptors:
  - value: x
`, `descriptors[0].key: is required`},
		{"missing domain", `descriptors: []`, `domain: is required`},
		{"unlimited with limit", `
domain: api
descriptors:
  - key: a
    unlimited: true
    rate_limit: {unit: second, requests_per_unit: 1}
`, `descriptors[0].unlimited: an unlimited descriptor cannot also have rate_limit`},
		{"both forms", `
domain: api
descriptors:
  - key: a
    rate_limit: {unit: second, requests_per_unit: 1}
    rate_limits: [{unit: second, requests_per_unit: 1}]
`, `use either rate_limit or rate_limits`},
		{"burst on fixed window", `
domain: api
descriptors:
  - key: a
    rate_limit: {unit: second, requests_per_unit: 1, burst: 3}
`, `descriptors[0].rate_limit.burst: only applies to algorithm gcra`},
		{"unknown algorithm", `
domain: api
descriptors:
  - key: a
    rate_limit: {unit: second, requests_per_unit: 1, algorithm: leaky}
`, `descriptors[0].rate_limit.algorithm: unknown algorithm "leaky"`},
		{"non-integer", `
domain: api
descriptors:
  - key: a
    rate_limit: {unit: second, requests_per_unit: 1.5}
`, `requests_per_unit: must be a whole number, got "1.5"`},
		{"too big", `
domain: api
descriptors:
  - key: a
    rate_limit: {unit: second, requests_per_unit: 5000000000}
`, `requests_per_unit: must be at most 4294967295`},
		{"duplicate domain", "domain: api\n---\ndomain: api\n", `test.yaml:3: domain "api" domain: domain "api" is already defined in test.yaml:1`},
		{"bad yaml", "domain: [", `test.yaml: yaml:`},
		{"shadow not bool", `
domain: api
descriptors:
  - key: a
    shadow_mode: yes please
`, `descriptors[0].shadow_mode: must be true or false`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("test.yaml", []byte(tt.src))
			if err == nil {
				t.Fatalf("Parse accepted bad config, want error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %q\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

func TestParseAcceptsEnvoyproxyExamples(t *testing.T) {
	// The shape of envoyproxy/ratelimit's documented examples: upper-case
	// units, nested wildcard keys, shadow mode, and an empty domain.
	cfg := mustParse(t, `
domain: mongo_cps
descriptors:
  - key: database
    value: users
    rate_limit:
      unit: SECOND
      requests_per_unit: 500
  - key: database
    value: default
    shadow_mode: true
    rate_limit:
      unit: second
      requests_per_unit: 500
  - key: remote_address
    descriptors:
      - key: path
        rate_limit:
          unit: minute
          requests_per_unit: 0
---
domain: empty
`)
	r, ok := cfg.Match("mongo_cps", []Entry{{"remote_address", "1.2.3.4"}, {"path", "/x"}})
	if !ok || r.Limits[0].RequestsPerUnit != 0 || r.Path != "remote_address.path" {
		t.Fatalf("Match = %+v, %v", r, ok)
	}
	if !cfg.HasDomain("empty") {
		t.Fatal("empty domain missing")
	}
	var paths []string
	cfg.Walk(func(r Rule) { paths = append(paths, r.Domain+":"+r.Path) })
	want := []string{"mongo_cps:database=default", "mongo_cps:database=users", "mongo_cps:remote_address.path"}
	if !reflect.DeepEqual(paths, want) {
		t.Fatalf("Walk = %v, want %v", paths, want)
	}
}

func TestLoadPathDirectory(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", "domain: a\n")
	write("b.yml", "domain: b\n")
	write("notes.txt", "not yaml at all: [")
	cfg, err := LoadPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Domains(); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Fatalf("domains = %v", got)
	}
	write("c.yaml", "domain: a\n")
	if _, err := LoadPath(dir); err == nil || !strings.Contains(err.Error(), `domain "a" is already defined in `+filepath.Join(dir, "a.yaml")) {
		t.Fatalf("err = %v", err)
	}
}

func TestUnitPeriods(t *testing.T) {
	for name, u := range unitNames {
		if u.Period() <= 0 {
			t.Errorf("unit %s has no period", name)
		}
		if u.String() != name {
			t.Errorf("unit %s prints as %s", name, u)
		}
	}
	if Day.Period() != 24*time.Hour {
		t.Errorf("day = %v", Day.Period())
	}
}

func FuzzParse(f *testing.F) {
	seed, err := os.ReadFile("testdata/tiers.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte("domain: a\ndescriptors:\n  - key: k\n    value: v*\n    rate_limit: {unit: day, requests_per_unit: 3}\n"))
	f.Add([]byte("domain: a\ndescriptors: [{key: k, descriptors: [{key: j, unlimited: true}]}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		cfg.Walk(func(r Rule) {
			if r.Unlimited && len(r.Limits) > 0 {
				t.Fatalf("rule %s is unlimited and limited", r.Path)
			}
			for _, l := range r.Limits {
				if l.Unit.Period() <= 0 {
					t.Fatalf("rule %s has a limit without a period", r.Path)
				}
				if l.Algorithm == GCRA && l.Burst == 0 && l.RequestsPerUnit > 0 {
					t.Fatalf("rule %s has gcra without burst", r.Path)
				}
			}
			if _, ok := cfg.Match(r.Domain, []Entry{{Key: "k", Value: "v"}}); ok && r.Path == "" {
				t.Fatal("matched a rule without a path")
			}
		})
	})
}
