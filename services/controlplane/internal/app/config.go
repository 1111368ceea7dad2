// Package app wires the control plane: the registry watch, the debounced
// translation into per-proxy snapshots, the ADS server and the admin
// endpoints meshctl reads.
package app

import (
	"errors"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/switchyard-mesh/switchyard/services/kit/config"
	"github.com/switchyard-mesh/switchyard/services/kit/identity"
	"github.com/switchyard-mesh/switchyard/services/kit/service"
)

// Config is the controlplane's configuration.
type Config struct {
	service.Config `yaml:",inline"`

	// XDSAddr is where the ADS gRPC server listens.
	XDSAddr string `yaml:"xds_addr" help:"xDS (ADS, SotW and delta) gRPC listen address"`
	// RegistryAddr is the registry's gRPC API.
	RegistryAddr string `yaml:"registry_addr" help:"registry gRPC address (host:port), or the members comma-separated to fail over between them"`
	// RegistryID is the SPIFFE ID the registry must present.
	RegistryID string `yaml:"registry_id" help:"SPIFFE ID the registry must present"`
	// TrustDomain of the mesh; proxies from it may connect.
	TrustDomain string `yaml:"trust_domain" help:"SPIFFE trust domain"`
	// DefaultNamespace completes workload SPIFFE IDs
	// (spiffe://<td>/ns/<ns>/sa/<service>) for instances and proxies that
	// do not carry a "namespace" in their metadata.
	DefaultNamespace string `yaml:"default_namespace" help:"namespace of services and proxies that name none"`
	// Debounce is the quiet period after a registry change before
	// translating; MaxDelay caps how long a steady stream of changes can
	// hold a push back.
	Debounce time.Duration `yaml:"debounce" help:"quiet period after a registry change before pushing"`
	MaxDelay time.Duration `yaml:"max_delay" help:"longest a burst of changes may delay a push"`
	// Insecure serves xDS and dials the registry without TLS (tests, make
	// dev). Otherwise identity is required.
	Insecure bool `yaml:"insecure" help:"plaintext xDS and registry connections (development only)"`
	// XDSPlaintext serves xDS without TLS while still using identity for
	// the registry: for proxyless gRPC clients on a trusted host.
	XDSPlaintext bool            `yaml:"xds_plaintext" help:"serve xDS without TLS (the registry connection still uses identity)"`
	Identity     identity.Config `yaml:"identity"`
}

// DefaultConfig is the container default: xDS on :18000, admin on :18001.
func DefaultConfig() Config {
	return Config{
		Config:           service.DefaultConfig(":18001"),
		XDSAddr:          ":18000",
		RegistryAddr:     "registry:7100",
		RegistryID:       "spiffe://switchyard.local/system/registry",
		TrustDomain:      "switchyard.local",
		DefaultNamespace: "default",
		Debounce:         100 * time.Millisecond,
		MaxDelay:         time.Second,
	}
}

// Validate names each invalid field.
func (c Config) Validate() error {
	errs := []error{c.Config.Validate()}
	if c.XDSAddr == "" {
		errs = append(errs, config.Errorf("xds_addr", "required"))
	}
	if c.RegistryAddr == "" {
		errs = append(errs, config.Errorf("registry_addr", "required"))
	}
	if _, err := spiffeid.TrustDomainFromString(c.TrustDomain); err != nil {
		errs = append(errs, config.Errorf("trust_domain", "%q: %v", c.TrustDomain, err))
	}
	if c.DefaultNamespace == "" {
		errs = append(errs, config.Errorf("default_namespace", "required"))
	}
	if c.Debounce < 0 || c.Debounce > 10*time.Second {
		errs = append(errs, config.Errorf("debounce", "must be 0..10s, got %s", c.Debounce))
	}
	if c.MaxDelay < c.Debounce {
		errs = append(errs, config.Errorf("max_delay", "must be at least debounce (%s), got %s", c.Debounce, c.MaxDelay))
	}
	if !c.Insecure {
		if _, err := spiffeid.FromString(c.RegistryID); err != nil {
			errs = append(errs, config.Errorf("registry_id", "%q: %v", c.RegistryID, err))
		}
		errs = append(errs, config.Nest("identity", c.Identity.Validate()))
	}
	return errors.Join(errs...)
}
