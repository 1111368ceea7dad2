package app

import (
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	base := func() Config {
		c := DefaultConfig()
		c.Limits.Path = "rules.yaml"
		c.TLS.Mode = "insecure"
		return c
	}
	if err := base().Validate(); err != nil {
		t.Fatalf("defaults + path: %v", err)
	}
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"no rules", func(c *Config) { c.Limits.Path = "" }, "limits.path: required"},
		{"failure mode", func(c *Config) { c.Decision.FailureMode = "maybe" }, `decision.failure_mode: want open or closed, got "maybe"`},
		{"redis addr", func(c *Config) { c.Redis.Addrs = []string{"nohost"} }, `redis.addrs: entry 0: want host:port, got "nohost"`},
		{"sentinel without addrs", func(c *Config) { c.Redis.MasterName = "m" }, "redis.master_name: needs the Sentinel addresses"},
		{"timeout", func(c *Config) { c.Redis.Timeout = 0 }, "redis.timeout: must be positive"},
		{"pipelines", func(c *Config) { c.Redis.Pipelines = 0 }, "redis.pipelines: must be positive"},
		{"tls mode", func(c *Config) { c.TLS.Mode = "tls" }, `tls.mode: want spiffe or insecure, got "tls"`},
		{"spiffe needs identity", func(c *Config) { c.TLS.Mode = "spiffe" }, "identity.ca_addr: required"},
		{"allowed clients need spiffe", func(c *Config) { c.TLS.AllowedClients = []string{"spiffe://switchyard.local/system/gateway"} }, "tls.allowed_clients: needs tls.mode spiffe"},
		{"bad client id", func(c *Config) {
			c.TLS.Mode = "spiffe"
			c.TLS.AllowedClients = []string{"gateway"}
		}, `tls.allowed_clients: tls.allowed_clients[0]: "gateway" is not a SPIFFE ID`},
		{"grpc addr", func(c *Config) { c.GRPC.Addr = "8081" }, `grpc.addr: want host:port, got "8081"`},
		{"gc", func(c *Config) { c.GCPercent = -2 }, "gc_percent: must be -1 (off) or more"},
		{"gc off without a memory limit", func(c *Config) { c.GCPercent, c.MemoryLimitMB = -1, 0 }, "gc_percent: -1 (GC off) needs memory_limit_mb"},
		{"registration needs mTLS", func(c *Config) {
			c.Registration.RegistryAddr = "registry:7100"
			c.Registration.AdvertiseAddr = "ratelimit:8081"
		}, "registration.registry_addr: needs tls.mode spiffe"},
		{"registration needs an advertise address", func(c *Config) {
			c.Registration.RegistryAddr = "registry:7100"
			c.Registration.AdvertiseAddr = ":8081"
		}, `registration.advertise_addr: want the host:port proxies dial, got ":8081"`},
		{"registration ttl", func(c *Config) {
			c.Registration.RegistryAddr = "registry:7100"
			c.Registration.TTL = 0
		}, "registration.ttl: must be at least 1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.change(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
