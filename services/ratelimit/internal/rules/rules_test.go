package rules

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/limits"
)

const good = `domain: api
descriptors:
  - key: path
    rate_limit: {unit: second, requests_per_unit: 10}
`

func TestReloadKeepsRunningRulesOnBadChange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yaml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(good)
	var applied []*limits.Config
	m := NewMetrics(prometheus.NewRegistry())
	r, cfg, err := NewReloader(slog.New(slog.DiscardHandler), m, time.Second, func(c *limits.Config) { applied = append(applied, c) }, File{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.HasDomain("api") {
		t.Fatal("initial rules missing")
	}
	if err := r.Check(); err != nil || len(applied) != 0 {
		t.Fatalf("unchanged file: err=%v applied=%d", err, len(applied))
	}

	for _, bad := range []struct{ src, want string }{
		{strings.Replace(good, "second", "fortnight", 1), `domain "api" descriptors[0].rate_limit.unit: unknown unit "fortnight"`},
		{strings.Replace(good, "10}", "-1}", 1), `descriptors[0].rate_limit.requests_per_unit: must not be negative`},
		{good + "  - key: path\n    rate_limit: {unit: hour, requests_per_unit: 1}\n", `descriptors[1]: duplicate descriptor path`},
	} {
		write(bad.src)
		err := r.Check()
		if err == nil || !strings.Contains(err.Error(), bad.want) || !strings.HasPrefix(err.Error(), path+":") {
			t.Fatalf("bad change: err = %v, want %q", err, bad.want)
		}
		if len(applied) != 0 {
			t.Fatal("a bad change was applied")
		}
		r.Check() // reported once, not at every poll
	}
	if got := testutil.ToFloat64(m.reloads.WithLabelValues("failure")); got != 3 {
		t.Fatalf("failures = %v, want 3", got)
	}

	write(strings.Replace(good, "10}", "20}", 1))
	if err := r.Check(); err != nil || len(applied) != 1 {
		t.Fatalf("good change: err=%v applied=%d", err, len(applied))
	}
	rule, _ := applied[0].Match("api", []limits.Entry{{Key: "path", Value: "/"}})
	if rule.Limits[0].RequestsPerUnit != 20 {
		t.Fatalf("applied rule = %+v", rule)
	}
	if got := testutil.ToFloat64(m.reloads.WithLabelValues("success")); got != 2 {
		t.Fatalf("successes = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.rules); got != 1 {
		t.Fatalf("rules = %v", got)
	}
}

func TestNewReloaderRefusesBadStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, []byte("domain: api\ndescriptors: [{key: a, rate_limit: {unit: fortnight, requests_per_unit: 1}}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := NewReloader(slog.New(slog.DiscardHandler), nil, time.Second, func(*limits.Config) {}, File{Path: path})
	if err == nil || !strings.Contains(err.Error(), `unknown unit "fortnight"`) {
		t.Fatalf("err = %v", err)
	}
	if _, _, err := NewReloader(slog.New(slog.DiscardHandler), nil, time.Second, func(*limits.Config) {}, File{Path: path + ".missing"}); err == nil {
		t.Fatal("missing file accepted")
	}
}

func TestEmptyFileIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(File{Path: path}); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Fatalf("an empty rules file: %v, want it refused", err)
	}
}
