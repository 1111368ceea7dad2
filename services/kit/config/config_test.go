package config_test

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-mesh/switchyard/services/kit/config"
)

type serverConfig struct {
	Addr    string        `yaml:"addr"`
	Timeout time.Duration `yaml:"timeout"`
}

type testConfig struct {
	Name     string            `yaml:"name"`
	Workers  int               `yaml:"workers"`
	Debug    bool              `yaml:"debug"`
	Ratio    float64           `yaml:"ratio"`
	Peers    []string          `yaml:"peers"`
	Server   serverConfig      `yaml:"server"`
	Labels   map[string]string `yaml:"labels"`
	Upstream []serverConfig    `yaml:"upstreams"`
}

func defaults() *testConfig {
	return &testConfig{Name: "default", Workers: 2, Server: serverConfig{Addr: "127.0.0.1:1", Timeout: time.Second}}
}

func (c *testConfig) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, config.Errorf("name", "must not be empty"))
	}
	if c.Workers < 1 {
		errs = append(errs, config.Errorf("workers", "must be at least 1, got %d", c.Workers))
	}
	return errors.Join(errs...)
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func load(t *testing.T, args []string) (*testConfig, error) {
	t.Helper()
	cfg := defaults()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return cfg, config.Load(fs, args, cfg, cfg.Validate)
}

func TestLoadLayers(t *testing.T) {
	file := writeFile(t, `
name: from-file
workers: 4
peers: [a, b]
server:
  addr: 10.0.0.1:80
labels: {zone: eu}
upstreams:
  - addr: 10.0.0.2:80
    timeout: 3s
`)
	t.Setenv("SWITCHYARD_WORKERS", "8")
	t.Setenv("SWITCHYARD_SERVER_TIMEOUT", "5s")
	cfg, err := load(t, []string{"-config", file, "-server.addr", "0.0.0.0:9", "-debug"})
	if err != nil {
		t.Fatal(err)
	}
	want := testConfig{
		Name: "from-file", Workers: 8, Debug: true, Peers: []string{"a", "b"},
		Server:   serverConfig{Addr: "0.0.0.0:9", Timeout: 5 * time.Second},
		Labels:   map[string]string{"zone": "eu"},
		Upstream: []serverConfig{{Addr: "10.0.0.2:80", Timeout: 3 * time.Second}},
	}
	if cfg.Name != want.Name || cfg.Workers != want.Workers || cfg.Debug != want.Debug ||
		strings.Join(cfg.Peers, ",") != "a,b" || cfg.Server != want.Server ||
		cfg.Labels["zone"] != "eu" || len(cfg.Upstream) != 1 || cfg.Upstream[0] != want.Upstream[0] {
		t.Fatalf("got %+v, want %+v", *cfg, want)
	}
}

func TestLoadDefaultsOnly(t *testing.T) {
	cfg, err := load(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Name != "default" || cfg.Server.Timeout != time.Second {
		t.Fatalf("defaults lost: %+v", cfg)
	}
}

func TestLoadEnvList(t *testing.T) {
	t.Setenv("SWITCHYARD_PEERS", "x, y,,z")
	cfg, err := load(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.Peers, "|"); got != "x|y|z" {
		t.Fatalf("peers = %q", got)
	}
}

func TestLoadErrorsNameTheField(t *testing.T) {
	tests := []struct {
		name string
		file string
		env  map[string]string
		args []string
		want string
	}{
		{name: "unknown key", file: "nmae: x\n", want: `(top level): unknown key "nmae"`},
		{name: "unknown nested key", file: "server:\n  adr: x\n", want: `server: unknown key "adr"`},
		{name: "wrong type", file: "workers: many\n", want: `workers: want a whole number, got "many"`},
		{name: "wrong duration", file: "server:\n  timeout: soon\n", want: `server.timeout: want a duration`},
		{name: "mapping for scalar", file: "name: {a: b}\n", want: `name: want a single value, got a mapping`},
		{name: "scalar for list", file: "peers: a\n", want: `peers: want a list`},
		{name: "list item", file: "upstreams:\n  - addr: a\n    timeout: x\n", want: `upstreams[0].timeout: want a duration`},
		{name: "validation", file: "workers: 0\n", want: `workers: must be at least 1, got 0`},
		{name: "required missing", file: "name: ''\n", want: `name: must not be empty`},
		{name: "env wrong type", env: map[string]string{"SWITCHYARD_DEBUG": "maybe"}, want: `debug (env SWITCHYARD_DEBUG): want true or false`},
		{name: "flag wrong type", args: []string{"-workers", "x"}, want: `-workers`},
		{name: "unknown flag", args: []string{"-nope"}, want: `flag provided but not defined: -nope`},
		{name: "stray argument", args: []string{"extra"}, want: `unexpected arguments`},
		{name: "bad yaml", file: "a: [\n", want: `config file`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			args := tt.args
			if tt.file != "" {
				args = append([]string{"-config", writeFile(t, tt.file)}, args...)
			}
			_, err := load(t, args)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestLoadFileMissing(t *testing.T) {
	_, err := load(t, []string{"-config", filepath.Join(t.TempDir(), "absent.yaml")})
	if err == nil || !strings.Contains(err.Error(), "read config file") {
		t.Fatalf("error = %v", err)
	}
}

func TestNest(t *testing.T) {
	err := config.Nest("admin", errors.Join(config.Errorf("addr", "bad"), config.Errorf("port", "worse")))
	var fe *config.FieldError
	if !errors.As(err, &fe) || fe.Field != "admin.addr" {
		t.Fatalf("first nested field = %v", err)
	}
	if !strings.Contains(err.Error(), "admin.port: worse") {
		t.Fatalf("error = %v", err)
	}
	if config.Nest("x", nil) != nil {
		t.Fatal("Nest(nil) must be nil")
	}
}

func TestSubcommand(t *testing.T) {
	for _, tt := range []struct {
		args []string
		name string
		rest int
	}{
		{nil, "", 0},
		{[]string{"-config", "x"}, "", 2},
		{[]string{"validate", "-config", "x"}, "validate", 2},
	} {
		name, rest := config.Subcommand(tt.args)
		if name != tt.name || len(rest) != tt.rest {
			t.Errorf("Subcommand(%q) = %q, %q", tt.args, name, rest)
		}
	}
}

func FuzzLoadFile(f *testing.F) {
	f.Add("name: a\nworkers: 3\nserver: {addr: x, timeout: 1s}\npeers: [a]\nlabels: {a: b}\n")
	f.Add("upstreams:\n  - addr: a\n")
	f.Add("&a x: *a\n")
	f.Fuzz(func(t *testing.T, body string) {
		path := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := defaults()
		if err := config.LoadFile(path, cfg, cfg.Validate); err == nil && (cfg.Name == "" || cfg.Workers < 1) {
			t.Fatalf("accepted an invalid config: %+v", cfg)
		}
	})
}

type common struct {
	Level string `yaml:"level"`
}

type withInline struct {
	common `yaml:",inline"`
	Port   int `yaml:"port"`
}

func (withInline) Validate() error { return nil }

func TestInline(t *testing.T) {
	cfg := &withInline{}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	t.Setenv("SWITCHYARD_PORT", "7")
	if err := config.Load(fs, []string{"-config", writeFile(t, "level: debug\n")}, cfg, cfg.Validate); err != nil {
		t.Fatal(err)
	}
	if cfg.Level != "debug" || cfg.Port != 7 {
		t.Fatalf("inline fields not loaded: %+v", cfg)
	}
}
