package service

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestRuntimeConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  RuntimeConfig
		want string // "" = valid
	}{
		{"default collector", RuntimeConfig{GCPercent: 100}, ""},
		{"off with a limit", RuntimeConfig{GCPercent: -1, MemoryLimitMB: 64}, ""},
		{"off without a limit", RuntimeConfig{GCPercent: -1}, "gc_percent: -1 (GC off) needs memory_limit_mb"},
		{"below off", RuntimeConfig{GCPercent: -2}, "gc_percent: must be -1 (off) or more"},
		{"negative limit", RuntimeConfig{GCPercent: 100, MemoryLimitMB: -1}, "memory_limit_mb: must be 0 (none) or more"},
		{"negative concurrency", RuntimeConfig{Concurrency: -1, GCPercent: 100}, "concurrency: must be 0 (all cores) or more"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestRuntimeConfigApplyYieldsToTheEnvironment(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))

	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	gogc, limit := RuntimeConfig{GCPercent: 700, MemoryLimitMB: 300}.Apply()
	if gogc != 700 || limit != 300<<20 || debug.SetGCPercent(700) != 700 {
		t.Fatalf("config applied: gogc %d limit %d", gogc, limit)
	}

	// Set in the environment, the runtime already read them at start;
	// Apply leaves them and reports what they say.
	t.Setenv("GOGC", "off")
	t.Setenv("GOMEMLIMIT", "1GiB")
	debug.SetMemoryLimit(1 << 30)
	gogc, limit = RuntimeConfig{GCPercent: 50, MemoryLimitMB: 10}.Apply()
	if gogc != -1 || limit != 1<<30 {
		t.Fatalf("environment should win: gogc %d limit %d", gogc, limit)
	}
}
