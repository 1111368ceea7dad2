// Package app assembles the ratelimit binary from its configuration: the
// rules and their reloader, the store (Redis or in-memory), the decider,
// the RLS gRPC server with SPIFFE mTLS, and the admin endpoints.
package app

import (
	"errors"
	"net"
	"time"

	"github.com/switchyard-mesh/switchyard/services/kit/config"
	"github.com/switchyard-mesh/switchyard/services/kit/identity"
	"github.com/switchyard-mesh/switchyard/services/kit/service"
)

// Config is the ratelimit binary's configuration.
type Config struct {
	service.Config `yaml:",inline"`

	GRPC     GRPCConfig      `yaml:"grpc"`
	Limits   LimitsConfig    `yaml:"limits"`
	Redis    RedisConfig     `yaml:"redis"`
	Decision DecisionConfig  `yaml:"decision"`
	TLS      TLSConfig       `yaml:"tls"`
	Identity identity.Config `yaml:"identity"`
	// Registration puts this replica in the registry's catalog, where the
	// control plane finds the RLS service for the proxies it configures.
	Registration RegistrationConfig `yaml:"registration"`
	// Runtime: concurrency (GOMAXPROCS, default all cores), gc_percent and
	// memory_limit_mb. The live heap is a few MB and every decision leaves
	// garbage (gRPC's most of it), so the garbage sets how often it
	// collects, and each collection delays the decisions in flight: the
	// default collects rarely.
	service.RuntimeConfig `yaml:",inline"`
}

// GRPCConfig is the RLS listener.
type GRPCConfig struct {
	Addr  string        `yaml:"addr" help:"RLS gRPC listen address"`
	Drain time.Duration `yaml:"drain" help:"time in-flight calls get to finish at shutdown"`
}

// LimitsConfig says where the rate-limit rules are.
type LimitsConfig struct {
	Path           string        `yaml:"path" help:"rate limit rules: a YAML file or a directory of them (envoyproxy/ratelimit schema)"`
	ReloadInterval time.Duration `yaml:"reload_interval" help:"how often the rules are checked for changes"`
}

// RedisConfig is the shared store. No address means the in-memory store.
type RedisConfig struct {
	Addrs      []string      `yaml:"addrs" help:"Redis address; several for a Cluster, or the Sentinels with master_name (empty: in-memory store, per replica)"`
	MasterName string        `yaml:"master_name" help:"Sentinel master name"`
	Username   string        `yaml:"username" help:"Redis ACL user"`
	Password   string        `yaml:"password" help:"Redis password"`
	DB         int           `yaml:"db" help:"Redis database number"`
	PoolSize   int           `yaml:"pool_size" help:"connections per Redis node"`
	Pipelines  int           `yaml:"pipelines" help:"concurrent pipelines that coalesce decisions into one write (single and Sentinel modes)"`
	Timeout    time.Duration `yaml:"timeout" help:"deadline of one decision round trip to Redis"`
}

// DecisionConfig is how decisions degrade.
type DecisionConfig struct {
	FailureMode    string        `yaml:"failure_mode" help:"when the store fails: open (allow) or closed (refuse)"`
	FailuresToDown int           `yaml:"failures_to_down" help:"consecutive store errors (not timeouts) after which the store is treated as down"`
	ProbeInterval  time.Duration `yaml:"probe_interval" help:"how often a down store is probed"`
}

// TLSConfig secures the RLS listener.
type TLSConfig struct {
	Mode           string   `yaml:"mode" help:"spiffe (mTLS with an SVID from the ca, see identity.*) or insecure (plaintext, local tests only)"`
	AllowedClients []string `yaml:"allowed_clients" help:"SPIFFE IDs allowed to call (empty: any ID of the trust domain)"`
}

// RegistrationConfig is how a replica registers itself.
type RegistrationConfig struct {
	RegistryAddr  string        `yaml:"registry_addr" help:"registry gRPC address, or the members comma-separated (empty: do not register)"`
	AdvertiseAddr string        `yaml:"advertise_addr" help:"host:port proxies dial for RLS (required with registry_addr)"`
	Service       string        `yaml:"service" help:"catalog service name the control plane looks for"`
	InstanceID    string        `yaml:"instance_id" help:"this replica's instance ID (default: the host name)"`
	TTL           time.Duration `yaml:"ttl" help:"heartbeat TTL: the registry marks the replica critical after this without one"`
	RegistryID    string        `yaml:"registry_id" help:"SPIFFE ID the registry must present"`
}

// DefaultConfig returns the container defaults: RLS on 8081, admin on 6070,
// a 25 ms Redis deadline, failing open.
func DefaultConfig() Config {
	return Config{
		Config: service.DefaultConfig(":6070"),
		GRPC:   GRPCConfig{Addr: ":8081", Drain: 5 * time.Second},
		Limits: LimitsConfig{ReloadInterval: time.Second},
		Redis:  RedisConfig{PoolSize: 16, Pipelines: 1, Timeout: 25 * time.Millisecond},
		Decision: DecisionConfig{
			FailureMode:    "open",
			FailuresToDown: 3,
			ProbeInterval:  250 * time.Millisecond,
		},
		TLS: TLSConfig{Mode: "spiffe"},
		Registration: RegistrationConfig{
			Service: "ratelimit", TTL: 10 * time.Second, RegistryID: "spiffe://switchyard.local/system/registry",
		},
		RuntimeConfig: service.RuntimeConfig{GCPercent: 2000, MemoryLimitMB: 256},
	}
}

// Validate names every invalid setting.
func (c Config) Validate() error {
	errs := []error{c.Config.Validate()}
	if _, _, err := net.SplitHostPort(c.GRPC.Addr); err != nil {
		errs = append(errs, config.Errorf("grpc.addr", "want host:port, got %q", c.GRPC.Addr))
	}
	if c.GRPC.Drain < 0 {
		errs = append(errs, config.Errorf("grpc.drain", "must not be negative"))
	}
	if c.Limits.Path == "" {
		errs = append(errs, config.Errorf("limits.path", "required: the rate limit rules file or directory"))
	}
	if c.Limits.ReloadInterval <= 0 {
		errs = append(errs, config.Errorf("limits.reload_interval", "must be positive, got %s", c.Limits.ReloadInterval))
	}
	for i, a := range c.Redis.Addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			errs = append(errs, config.Errorf("redis.addrs", "entry %d: want host:port, got %q", i, a))
		}
	}
	if c.Redis.MasterName != "" && len(c.Redis.Addrs) == 0 {
		errs = append(errs, config.Errorf("redis.master_name", "needs the Sentinel addresses in redis.addrs"))
	}
	if c.Redis.PoolSize <= 0 {
		errs = append(errs, config.Errorf("redis.pool_size", "must be positive, got %d", c.Redis.PoolSize))
	}
	if c.Redis.Pipelines <= 0 {
		errs = append(errs, config.Errorf("redis.pipelines", "must be positive, got %d", c.Redis.Pipelines))
	}
	if c.Redis.Timeout <= 0 {
		errs = append(errs, config.Errorf("redis.timeout", "must be positive, got %s", c.Redis.Timeout))
	}
	if c.Redis.DB < 0 {
		errs = append(errs, config.Errorf("redis.db", "must not be negative"))
	}
	if c.Decision.FailureMode != "open" && c.Decision.FailureMode != "closed" {
		errs = append(errs, config.Errorf("decision.failure_mode", "want open or closed, got %q", c.Decision.FailureMode))
	}
	if c.Decision.FailuresToDown <= 0 {
		errs = append(errs, config.Errorf("decision.failures_to_down", "must be positive, got %d", c.Decision.FailuresToDown))
	}
	if c.Decision.ProbeInterval <= 0 {
		errs = append(errs, config.Errorf("decision.probe_interval", "must be positive, got %s", c.Decision.ProbeInterval))
	}
	errs = append(errs, c.RuntimeConfig.Validate())
	switch c.TLS.Mode {
	case "spiffe":
		errs = append(errs, config.Nest("identity", c.Identity.Validate()))
		if _, err := identity.ParseIDs("tls.allowed_clients", c.TLS.AllowedClients); err != nil {
			errs = append(errs, config.Errorf("tls.allowed_clients", "%v", err))
		}
	case "insecure":
		if len(c.TLS.AllowedClients) > 0 {
			errs = append(errs, config.Errorf("tls.allowed_clients", "needs tls.mode spiffe"))
		}
	default:
		errs = append(errs, config.Errorf("tls.mode", "want spiffe or insecure, got %q", c.TLS.Mode))
	}
	if r := c.Registration; r.RegistryAddr != "" {
		if c.TLS.Mode != "spiffe" {
			errs = append(errs, config.Errorf("registration.registry_addr", "needs tls.mode spiffe: the registry is called over mTLS"))
		}
		if host, port, err := net.SplitHostPort(r.AdvertiseAddr); err != nil || host == "" || port == "0" {
			errs = append(errs, config.Errorf("registration.advertise_addr", "want the host:port proxies dial, got %q", r.AdvertiseAddr))
		}
		if r.Service == "" {
			errs = append(errs, config.Errorf("registration.service", "required"))
		}
		if r.TTL < time.Second {
			errs = append(errs, config.Errorf("registration.ttl", "must be at least 1s, got %s", r.TTL))
		}
		if _, err := identity.ParseIDs("registration.registry_id", []string{r.RegistryID}); err != nil {
			errs = append(errs, config.Errorf("registration.registry_id", "%v", err))
		}
	}
	return errors.Join(errs...)
}
