package identity

import (
	"errors"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/switchyard-mesh/switchyard/services/kit/config"
)

// Config says where a process gets its SVID. Embed it in a binary's config
// under the key "identity", so it reads identity.ca_addr and so on (flags
// -identity.ca_addr, env SWITCHYARD_IDENTITY_CA_ADDR).
type Config struct {
	// CAAddr is the ca binary's gRPC address, host:port.
	CAAddr string `yaml:"ca_addr" help:"address of the ca gRPC API (host:port)"`
	// JoinToken authenticates the first SVID request; renewals use the
	// current SVID. It is never logged.
	JoinToken string `yaml:"join_token" help:"join token for the first SVID (configured in the ca)"`
	// SPIFFEID is the identity this process asks for; the join token must
	// map to it.
	SPIFFEID string `yaml:"spiffe_id" help:"SPIFFE ID to obtain, e.g. spiffe://switchyard.local/system/registry"`
	// TrustBundleFile is the PEM trust bundle the ca writes on start. It
	// bootstraps trust in the ca's own serving certificate on first contact;
	// afterwards the bundle comes from the ca with every SVID.
	TrustBundleFile string `yaml:"trust_bundle_file" help:"PEM file with the ca's root(s), written by the ca"`
	// TTL is the SVID lifetime to ask for; 0 takes the ca's default.
	TTL time.Duration `yaml:"ttl" help:"SVID lifetime to request (0: ca default)"`
}

// Validate names each missing or malformed field.
func (c Config) Validate() error {
	var errs []error
	if c.CAAddr == "" {
		errs = append(errs, config.Errorf("ca_addr", "required"))
	}
	if c.JoinToken == "" {
		errs = append(errs, config.Errorf("join_token", "required (renewals use the current SVID, but the first SVID needs a token)"))
	}
	if c.SPIFFEID == "" {
		errs = append(errs, config.Errorf("spiffe_id", "required"))
	} else if id, err := spiffeid.FromString(c.SPIFFEID); err != nil {
		errs = append(errs, config.Errorf("spiffe_id", "%q is not a SPIFFE ID: %v", c.SPIFFEID, err))
	} else if id.Path() == "" {
		errs = append(errs, config.Errorf("spiffe_id", "%q has no path; a workload ID names its workload", c.SPIFFEID))
	}
	if c.TrustBundleFile == "" {
		errs = append(errs, config.Errorf("trust_bundle_file", "required to trust the ca on first contact"))
	}
	if c.TTL < 0 || (c.TTL > 0 && c.TTL%time.Second != 0) {
		errs = append(errs, config.Errorf("ttl", "must be 0 (the ca's default) or whole seconds, got %s", c.TTL))
	}
	return errors.Join(errs...)
}
