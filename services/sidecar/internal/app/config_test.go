package app

import (
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	good := func() Config {
		c := DefaultConfig()
		c.Service = "users"
		c.Insecure = true
		return c
	}
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr []string
	}{
		{"defaults plus service", func(*Config) {}, nil},
		{"no service", func(c *Config) { c.Service = "" }, []string{"service: required"}},
		{"bad app port", func(c *Config) { c.AppPort = 70000 }, []string{"app_port: must be 1..65535"}},
		{"bad bind", func(c *Config) { c.OutboundAddr = "15001" }, []string{"outbound_addr:"}},
		{"registration needs advertise", func(c *Config) { c.Registration.RegistryAddr = "registry:7100" }, []string{"registration.advertise_addr:"}},
		{"registration health url", func(c *Config) {
			c.Registration.RegistryAddr, c.Registration.AdvertiseAddr, c.Registration.AppHealthURL = "registry:7100", "users:15006", "localhost/healthz"
		}, []string{"registration.app_health_url:"}},
		{"ttl too short", func(c *Config) {
			c.Registration.RegistryAddr, c.Registration.AdvertiseAddr, c.Registration.TTL = "registry:7100", "users:15006", 1
		}, []string{"registration.ttl:"}},
		{"identity required unless insecure", func(c *Config) { c.Insecure = false }, []string{"identity.ca_addr: required", "identity.join_token: required"}},
		{"gc off needs a memory limit", func(c *Config) { c.GCPercent = -1 }, []string{"gc_percent: -1 (GC off) needs memory_limit_mb"}},
		{"gc off with a memory limit", func(c *Config) { c.GCPercent, c.MemoryLimitMB = -1, 24 }, nil},
		{"negative memory limit", func(c *Config) { c.MemoryLimitMB = -5 }, []string{"memory_limit_mb: must be 0"}},
		{"bad control plane id", func(c *Config) { c.Insecure = false; c.XDSServerID = "controlplane" }, []string{"xds_server_id:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good()
			tt.mutate(&c)
			err := c.Validate()
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %v", tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}
