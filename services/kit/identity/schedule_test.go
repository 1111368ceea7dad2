package identity

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-mesh/switchyard/services/kit/config"
)

func TestRenewAt(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		notAfter time.Time
		r        float64
		want     time.Time
	}{
		{"half-life without jitter", t0.Add(time.Hour), 0, t0.Add(30 * time.Minute)},
		{"max jitter is 10% earlier", t0.Add(time.Hour), 0.999999999, t0.Add(24 * time.Minute)},
		{"10 s SVID", t0.Add(10 * time.Second), 0.5, t0.Add(4500 * time.Millisecond)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := renewAt(t0, tc.notAfter, tc.r); got.Sub(tc.want).Abs() > time.Millisecond {
				t.Fatalf("renewAt = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestRetryDelay(t *testing.T) {
	tests := []struct {
		name      string
		attempt   int
		remaining time.Duration
		r         float64
		min, max  time.Duration
	}{
		{"first retry", 0, 0, 0, 250 * time.Millisecond, 250 * time.Millisecond},
		{"first retry full jitter", 0, 0, 0.999, 490 * time.Millisecond, 500 * time.Millisecond},
		{"grows exponentially", 3, 0, 0, 2 * time.Second, 2 * time.Second},
		{"capped while the SVID is valid", 10, time.Hour, 0.999, 29 * time.Second, 30 * time.Second},
		{"huge attempt stays capped", 1000, time.Hour, 0, 15 * time.Second, 15 * time.Second},
		{"lower cap without a valid SVID", 10, 0, 0.999, 4900 * time.Millisecond, 5 * time.Second},
		{"expired SVID counts as none", 10, -time.Minute, 0, 2500 * time.Millisecond, 2500 * time.Millisecond},
		{"bounded by a quarter of remaining life", 10, 8 * time.Second, 0.5, 2 * time.Second, 2 * time.Second},
		{"never below the floor", 10, 40 * time.Millisecond, 0.5, minRetry, minRetry},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := retryDelay(tc.attempt, tc.remaining, tc.r)
			if got < tc.min || got > tc.max {
				t.Fatalf("retryDelay = %s, want in [%s, %s]", got, tc.min, tc.max)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{CAAddr: "ca:8200", JoinToken: "t", SPIFFEID: "spiffe://switchyard.local/system/registry", TrustBundleFile: "/b.pem"}
	tests := []struct {
		name   string
		mutate func(*Config)
		fields []string
	}{
		{"valid", func(*Config) {}, nil},
		{"empty", func(c *Config) { *c = Config{} }, []string{"ca_addr", "join_token", "spiffe_id", "trust_bundle_file"}},
		{"not a SPIFFE ID", func(c *Config) { c.SPIFFEID = "https://x/y" }, []string{"spiffe_id"}},
		{"trust domain only", func(c *Config) { c.SPIFFEID = "spiffe://switchyard.local" }, []string{"spiffe_id"}},
		{"negative TTL", func(c *Config) { c.TTL = -time.Second }, []string{"ttl"}},
		{"sub-second TTL", func(c *Config) { c.TTL = 1500 * time.Millisecond }, []string{"ttl"}},
		{"whole-second TTL", func(c *Config) { c.TTL = 10 * time.Second }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.mutate(&c)
			err := c.Validate()
			if len(tc.fields) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			for _, f := range tc.fields {
				var fe *config.FieldError
				if !errors.As(err, &fe) || !strings.Contains(err.Error(), f+":") {
					t.Errorf("error %v does not name %s", err, f)
				}
			}
		})
	}
}
