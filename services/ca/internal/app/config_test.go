package app

import (
	"github.com/switchyard-mesh/switchyard/services/kit/config"

	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	tok := TokenConfig{Token: "a-long-enough-token-1", SPIFFEID: "spiffe://switchyard.local/system/registry"}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   []string // field names the error must mention; none: valid
	}{
		{"defaults", func(*Config) {}, nil},
		{"with tokens", func(c *Config) {
			c.JoinTokens = []TokenConfig{tok, {Token: "another-long-token-2", SPIFFEID: "spiffe://switchyard.local/ns/shop/sa/orders", Expires: "2030-01-01T00:00:00Z", SingleUse: true}}
		}, nil},
		{"empty addresses", func(c *Config) { c.GRPCAddr, c.DataDir = "", "" }, []string{"grpc_addr", "data_dir"}},
		{"bad trust domain", func(c *Config) { c.TrustDomain = "Not A Domain" }, []string{"trust_domain"}},
		{"ttl order", func(c *Config) { c.SVIDTTL, c.MaxSVIDTTL = time.Hour, time.Minute }, []string{"max_svid_ttl"}},
		{"zero ttl", func(c *Config) { c.SVIDTTL = 0 }, []string{"svid_ttl"}},
		{"root shorter than SVIDs", func(c *Config) { c.RootTTL = time.Hour }, []string{"root_ttl"}},
		{"upstream half set", func(c *Config) { c.Upstream.CertFile = "x.crt" }, []string{"upstream"}},
		{"upstream bundle alone", func(c *Config) { c.Upstream.BundleFile = "b.crt" }, []string{"upstream.bundle_file"}},
		{"short token", func(c *Config) { c.JoinTokens = []TokenConfig{{Token: "short", SPIFFEID: tok.SPIFFEID}} }, []string{"join_tokens[0].token"}},
		{"duplicate token", func(c *Config) { c.JoinTokens = []TokenConfig{tok, tok} }, []string{"join_tokens[1].token"}},
		{"bad SPIFFE ID", func(c *Config) {
			c.JoinTokens = []TokenConfig{{Token: tok.Token, SPIFFEID: "spiffe://switchyard.local"}}
		}, []string{"join_tokens[0].spiffe_id"}},
		{"foreign trust domain", func(c *Config) { c.JoinTokens = []TokenConfig{{Token: tok.Token, SPIFFEID: "spiffe://evil.example/x"}} }, []string{"join_tokens[0].spiffe_id"}},
		{"bad expiry", func(c *Config) {
			c.JoinTokens = []TokenConfig{{Token: tok.Token, SPIFFEID: tok.SPIFFEID, Expires: "tomorrow"}}
		}, []string{"join_tokens[0].expires"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mutate(&c)
			err := c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			for _, f := range tc.want {
				if !strings.Contains(err.Error(), f+":") {
					t.Errorf("error %q does not name %s", err, f)
				}
			}
			for _, tok := range []string{tok.Token, "short"} {
				if strings.Contains(err.Error(), tok) {
					t.Errorf("error leaks a token: %v", err)
				}
			}
		})
	}
}

// The configuration shipped for compose and make dev must load.
func TestShippedConfigLoads(t *testing.T) {
	c := DefaultConfig()
	if err := config.LoadFile("../../testdata/compose.yaml", &c, func() error { return c.Validate() }); err != nil {
		t.Fatal(err)
	}
	if len(c.JoinTokens) < 10 {
		t.Fatalf("%d join tokens, want one per component", len(c.JoinTokens))
	}
}
