// Package app wires the sidecar: identity, the ADS client, the proxy, the
// admin endpoints, registration in the registry and the Workload API.
package app

import (
	"errors"
	"net"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/switchyard-mesh/switchyard/services/kit/config"
	"github.com/switchyard-mesh/switchyard/services/kit/identity"
	"github.com/switchyard-mesh/switchyard/services/kit/service"
)

// Config is the sidecar's configuration.
type Config struct {
	service.Config `yaml:",inline"`

	Service    string `yaml:"service" help:"name of the workload's service (e.g. users)"`
	Namespace  string `yaml:"namespace" help:"workload namespace (part of its SPIFFE ID)"`
	InstanceID string `yaml:"instance_id" help:"this instance's id in the registry (default: <service>-<hostname>)"`
	AppPort    int    `yaml:"app_port" help:"port of the local app behind the inbound listener"`
	Region     string `yaml:"region" help:"locality region, for locality-aware routing"`
	Zone       string `yaml:"zone" help:"locality zone"`

	XDSAddr     string `yaml:"xds_addr" help:"control plane ADS address (host:port)"`
	XDSServerID string `yaml:"xds_server_id" help:"SPIFFE ID the control plane must present"`

	// Bind addresses override the xDS listener addresses (to run several
	// sidecars on one host); empty keeps what the control plane says.
	OutboundAddr string `yaml:"outbound_addr" help:"bind address for the outbound listener (default from xDS, 127.0.0.1:15001)"`
	InboundAddr  string `yaml:"inbound_addr" help:"bind address for the inbound listener (default from xDS, 0.0.0.0:15006)"`

	Registration Registration `yaml:"registration"`

	// Runtime: concurrency (GOMAXPROCS) is like Envoy's --concurrency; one
	// core (linkerd2-proxy's default) avoids cross-thread wake-ups and is
	// cheapest per request at sidecar loads. The GC settings suit a proxy
	// whose live heap is small and steady.
	service.RuntimeConfig `yaml:",inline"`

	WorkloadAPISocket string        `yaml:"workload_api_socket" help:"unix socket for the SPIFFE Workload API (empty: off)"`
	Drain             time.Duration `yaml:"drain" help:"time for in-flight requests on shutdown or listener replacement"`

	// Insecure runs without identity: xDS in plaintext, and any listener or
	// cluster that needs mTLS refuses to serve (never a silent downgrade).
	Insecure bool            `yaml:"insecure" help:"no identity: plaintext xDS; mTLS listeners and clusters refuse (development only)"`
	Identity identity.Config `yaml:"identity"`
}

// Registration is how the sidecar registers its workload.
type Registration struct {
	RegistryAddr  string        `yaml:"registry_addr" help:"registry gRPC address, or the members comma-separated to fail over between them (empty: do not register)"`
	RegistryID    string        `yaml:"registry_id" help:"SPIFFE ID the registry must present"`
	AdvertiseAddr string        `yaml:"advertise_addr" help:"host:port peers reach this sidecar's inbound listener at"`
	Tags          []string      `yaml:"tags" help:"instance tags (e.g. v2 for subsets)"`
	TTL           time.Duration `yaml:"ttl" help:"TTL of the registry's check; heartbeats every ttl/3"`
	AppHealthURL  string        `yaml:"app_health_url" help:"app health URL probed before each heartbeat, e.g. http://127.0.0.1:8080/healthz (empty: none)"`
}

// DefaultConfig has the container defaults: admin on :15000, listeners from xDS.
func DefaultConfig() Config {
	return Config{
		Config:      service.DefaultConfig(":15000"),
		Namespace:   "default",
		AppPort:     8080,
		XDSAddr:     "controlplane:18000",
		XDSServerID: "spiffe://switchyard.local/system/controlplane",
		Registration: Registration{
			RegistryID: "spiffe://switchyard.local/system/registry",
			TTL:        10 * time.Second,
		},
		Drain:         5 * time.Second,
		RuntimeConfig: service.RuntimeConfig{Concurrency: 1, GCPercent: 200},
	}
}

// Validate names each invalid field.
func (c Config) Validate() error {
	errs := []error{c.Config.Validate()}
	if c.Service == "" {
		errs = append(errs, config.Errorf("service", "required"))
	}
	if c.AppPort <= 0 || c.AppPort > 65535 {
		errs = append(errs, config.Errorf("app_port", "must be 1..65535, got %d", c.AppPort))
	}
	if c.XDSAddr == "" {
		errs = append(errs, config.Errorf("xds_addr", "required"))
	}
	for field, a := range map[string]string{"outbound_addr": c.OutboundAddr, "inbound_addr": c.InboundAddr} {
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			errs = append(errs, config.Errorf(field, "%q is not host:port: %v", a, err))
		}
	}
	errs = append(errs, c.RuntimeConfig.Validate())
	if c.Drain < 0 {
		errs = append(errs, config.Errorf("drain", "must not be negative"))
	}
	if r := c.Registration; r.RegistryAddr != "" {
		if _, port, err := net.SplitHostPort(r.AdvertiseAddr); err != nil {
			errs = append(errs, config.Errorf("registration.advertise_addr", "required host:port when registration.registry_addr is set: %v", err))
		} else if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
			errs = append(errs, config.Errorf("registration.advertise_addr", "bad port %q", port))
		}
		if r.AppHealthURL != "" {
			if u, err := url.Parse(r.AppHealthURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				errs = append(errs, config.Errorf("registration.app_health_url", "%q is not an http(s) URL", r.AppHealthURL))
			}
		}
		if r.TTL < 300*time.Millisecond {
			errs = append(errs, config.Errorf("registration.ttl", "must be at least 300ms, got %s", r.TTL))
		}
		if !c.Insecure {
			if _, err := spiffeid.FromString(r.RegistryID); err != nil {
				errs = append(errs, config.Errorf("registration.registry_id", "%q: %v", r.RegistryID, err))
			}
		}
	}
	if !c.Insecure {
		if _, err := spiffeid.FromString(c.XDSServerID); err != nil {
			errs = append(errs, config.Errorf("xds_server_id", "%q: %v", c.XDSServerID, err))
		}
		errs = append(errs, config.Nest("identity", c.Identity.Validate()))
	}
	return errors.Join(errs...)
}

func (c Config) instanceID() string {
	if c.InstanceID != "" {
		return c.InstanceID
	}
	host, _ := os.Hostname()
	return c.Service + "-" + host
}
