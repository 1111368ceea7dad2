package app

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-mesh/switchyard/services/kit/config"
)

func load(t *testing.T, file string, args ...string) (Config, error) {
	t.Helper()
	if file != "" {
		p := filepath.Join(t.TempDir(), "shop.yaml")
		if err := os.WriteFile(p, []byte(file), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append([]string{"-config", p}, args...)
	}
	fs := flag.NewFlagSet("shop", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg := DefaultConfig()
	err := config.Load(fs, args, &cfg, func() error { return cfg.Validate() })
	return cfg, err
}

func TestConfigErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		name string
		file string
		args []string
		want []string
	}{
		{"no app", "", nil, []string{`app: want one of frontend, users, orders, billing, got ""`}},
		{"unknown app", "", []string{"-app", "payments"}, []string{`app: want one of`}},
		{"frontend without upstreams", "", []string{"-app", "frontend"},
			[]string{"upstreams.users: required: frontend calls users", "upstreams.orders: required: frontend calls orders"}},
		{"orders without billing", "", []string{"-app", "orders"}, []string{"upstreams.billing: required"}},
		{"upstream not a URL", "", []string{"-app", "orders", "-upstreams.billing", "127.0.0.1:8093"}, []string{"upstreams.billing: want an http:// or https:// base URL"}},
		{"upstream the app does not call", "", []string{"-app", "users", "-upstreams.billing", "http://b"}, []string{"upstreams.billing: users does not call billing"}},
		{"unknown key in file", "app: users\nfaults:\n  latency: 1s\n", nil, []string{`unknown key "faults"`}},
		{"wrong type in file", "app: users\nfault:\n  error_rate: often\n", nil, []string{"fault.error_rate"}},
		{"wrong type in flag", "", []string{"-app", "users", "-http.timeout", "soon"}, []string{"-http.timeout"}},
		{"error rate out of range", "", []string{"-app", "users", "-fault.error_rate", "1.5"}, []string{"fault.error_rate: want 0 to 1"}},
		{"bad listen address", "", []string{"-app", "users", "-http.addr", "8091"}, []string{`http.addr: want host:port, got "8091"`}},
		{"bad admin address", "", []string{"-app", "users", "-admin.addr", "x"}, []string{"admin.addr: want host:port"}},
		{"zero timeout", "", []string{"-app", "users", "-http.timeout", "0s"}, []string{"http.timeout: want a positive duration"}},
		{"bad log level", "", []string{"-app", "users", "-log.level", "loud"}, []string{"log.level"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, tc.file, tc.args...)
			if err == nil {
				t.Fatal("config accepted")
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func TestConfigLayersAndDefaults(t *testing.T) {
	t.Setenv("SWITCHYARD_FAULT_LATENCY", "20ms")
	cfg, err := load(t, "app: frontend\nupstreams:\n  users: http://127.0.0.1:15001\n  orders: http://orders:8092\n",
		"-instance", "frontend-a")
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.resolved()
	if r.HTTP.Addr != ":8090" || r.Admin.Addr != ":8190" || r.Instance != "frontend-a" || r.Fault.Latency != 20*time.Millisecond {
		t.Errorf("resolved = %+v", r)
	}
	cfg, err = load(t, "", "-app", "billing")
	if err != nil {
		t.Fatal(err)
	}
	if r := cfg.resolved(); !strings.HasPrefix(r.Instance, "billing-") || r.HTTP.Addr != ":8093" {
		t.Errorf("billing resolved = %+v", r)
	}
}
