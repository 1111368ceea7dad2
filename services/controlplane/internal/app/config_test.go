package app

import (
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.Insecure = true
	if err := ok.Validate(); err != nil {
		t.Fatalf("insecure defaults: %v", err)
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   []string
	}{
		{"identity required unless insecure", func(c *Config) { c.Insecure = false },
			[]string{"identity.ca_addr: required", "identity.join_token: required"}},
		{"bad trust domain", func(c *Config) { c.TrustDomain = "Not A Domain" }, []string{"trust_domain:"}},
		{"max delay below debounce", func(c *Config) { c.Debounce = time.Second; c.MaxDelay = time.Millisecond }, []string{"max_delay: must be at least debounce"}},
		{"negative debounce", func(c *Config) { c.Debounce = -time.Second }, []string{"debounce: must be 0..10s"}},
		{"empty addresses", func(c *Config) { c.XDSAddr, c.RegistryAddr = "", "" }, []string{"xds_addr: required", "registry_addr: required"}},
		{"no namespace", func(c *Config) { c.DefaultNamespace = "" }, []string{"default_namespace: required"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Insecure = true
			tc.mutate(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
