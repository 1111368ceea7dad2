package app

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/switchyard-mesh/switchyard/services/ca/internal/jointoken"
	"github.com/switchyard-mesh/switchyard/services/kit/config"
	"github.com/switchyard-mesh/switchyard/services/kit/service"
)

// Config is the ca's configuration.
type Config struct {
	service.Config `yaml:",inline"`

	// GRPCAddr is where the CA API listens.
	GRPCAddr string `yaml:"grpc_addr" help:"CA gRPC API listen address"`
	// TrustDomain SVIDs are minted in.
	TrustDomain string `yaml:"trust_domain" help:"SPIFFE trust domain"`
	// DataDir holds the root key and certificate (0600) and the used-token log.
	DataDir string `yaml:"data_dir" help:"directory for the root key/certificate and used single-use tokens"`
	// BundleFile is where the PEM trust bundle is written on start for
	// components to bootstrap trust in the ca (identity.trust_bundle_file).
	// Default: <data_dir>/bundle.pem.
	BundleFile string `yaml:"bundle_file" help:"where to write the PEM trust bundle (default <data_dir>/bundle.pem)"`
	// SVIDTTL is the default SVID lifetime, MaxSVIDTTL the most a caller may ask for.
	SVIDTTL    time.Duration `yaml:"svid_ttl" help:"default SVID lifetime"`
	MaxSVIDTTL time.Duration `yaml:"max_svid_ttl" help:"longest SVID lifetime a caller may request"`
	// RootTTL is the lifetime of a root created on first start.
	RootTTL time.Duration `yaml:"root_ttl" help:"lifetime of the self-signed root created on first start"`
	// ExtraRootsFile holds roots published in the trust bundle beside the
	// signing root, so a new root reaches every peer before the ca signs
	// with it.
	ExtraRootsFile string `yaml:"extra_roots_file" help:"PEM roots to publish in the trust bundle ahead of a root change"`
	// Upstream, when set, replaces the self-signed root with operator key
	// material, so Switchyard chains to an existing PKI.
	Upstream UpstreamConfig `yaml:"upstream"`
	// JoinTokens authenticate first issuance (file only).
	JoinTokens []TokenConfig `yaml:"join_tokens"`
}

// UpstreamConfig names operator-supplied signing material.
type UpstreamConfig struct {
	CertFile   string `yaml:"cert_file" help:"PEM signing CA certificate, then any intermediates up to the root"`
	KeyFile    string `yaml:"key_file" help:"PEM private key of cert_file"`
	BundleFile string `yaml:"bundle_file" help:"PEM root certificate(s) cert_file chains to (empty if cert_file is itself a root)"`
}

// TokenConfig is one join token.
type TokenConfig struct {
	Token     string `yaml:"token"`
	SPIFFEID  string `yaml:"spiffe_id"`
	Expires   string `yaml:"expires"` // RFC 3339; empty: never
	SingleUse bool   `yaml:"single_use"`
}

// DefaultConfig is the container default: API on :8200, admin on :8201.
func DefaultConfig() Config {
	return Config{
		Config:      service.DefaultConfig(":8201"),
		GRPCAddr:    ":8200",
		TrustDomain: "switchyard.local",
		DataDir:     "/var/lib/switchyard/ca",
		SVIDTTL:     time.Hour,
		MaxSVIDTTL:  24 * time.Hour,
		RootTTL:     10 * 365 * 24 * time.Hour,
	}
}

// Validate names each invalid field.
func (c Config) Validate() error {
	errs := []error{c.Config.Validate()}
	if c.GRPCAddr == "" {
		errs = append(errs, config.Errorf("grpc_addr", "required"))
	}
	if _, err := spiffeid.TrustDomainFromString(c.TrustDomain); err != nil {
		errs = append(errs, config.Errorf("trust_domain", "%q: %v", c.TrustDomain, err))
	}
	if c.DataDir == "" {
		errs = append(errs, config.Errorf("data_dir", "required"))
	}
	if c.SVIDTTL <= 0 {
		errs = append(errs, config.Errorf("svid_ttl", "must be positive, got %s", c.SVIDTTL))
	}
	if c.MaxSVIDTTL < c.SVIDTTL {
		errs = append(errs, config.Errorf("max_svid_ttl", "must be at least svid_ttl (%s), got %s", c.SVIDTTL, c.MaxSVIDTTL))
	}
	if c.RootTTL <= c.MaxSVIDTTL {
		errs = append(errs, config.Errorf("root_ttl", "must exceed max_svid_ttl (%s), got %s", c.MaxSVIDTTL, c.RootTTL))
	}
	if (c.Upstream.CertFile == "") != (c.Upstream.KeyFile == "") {
		errs = append(errs, config.Errorf("upstream", "cert_file and key_file go together"))
	}
	if c.Upstream.BundleFile != "" && c.Upstream.CertFile == "" {
		errs = append(errs, config.Errorf("upstream.bundle_file", "set without upstream.cert_file"))
	}
	if _, err := c.tokens(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c Config) bundleFile() string {
	if c.BundleFile != "" {
		return c.BundleFile
	}
	return filepath.Join(c.DataDir, "bundle.pem")
}

// tokens converts the configured join tokens, naming the bad field. Token
// values never appear in errors.
func (c Config) tokens() ([]jointoken.Token, error) {
	td, tdErr := spiffeid.TrustDomainFromString(c.TrustDomain)
	var errs []error
	out := make([]jointoken.Token, 0, len(c.JoinTokens))
	seen := map[string]int{}
	for i, t := range c.JoinTokens {
		field := fmt.Sprintf("join_tokens[%d]", i)
		if len(t.Token) < 16 {
			errs = append(errs, config.Errorf(field+".token", "must be at least 16 characters"))
		} else if j, dup := seen[t.Token]; dup {
			errs = append(errs, config.Errorf(field+".token", "same token as join_tokens[%d]", j))
		}
		seen[t.Token] = i
		id, err := spiffeid.FromString(t.SPIFFEID)
		switch {
		case err != nil:
			errs = append(errs, config.Errorf(field+".spiffe_id", "%q: %v", t.SPIFFEID, err))
		case id.Path() == "":
			errs = append(errs, config.Errorf(field+".spiffe_id", "%q has no path", t.SPIFFEID))
		case tdErr == nil && !id.MemberOf(td):
			errs = append(errs, config.Errorf(field+".spiffe_id", "%q is not in trust domain %q", t.SPIFFEID, c.TrustDomain))
		}
		var expires time.Time
		if t.Expires != "" {
			if expires, err = time.Parse(time.RFC3339, t.Expires); err != nil {
				errs = append(errs, config.Errorf(field+".expires", "want RFC 3339 (2026-12-31T00:00:00Z), got %q", t.Expires))
			}
		}
		out = append(out, jointoken.Token{Value: t.Token, ID: id, Expires: expires, SingleUse: t.SingleUse})
	}
	return out, errors.Join(errs...)
}
