// Package server assembles a registry node from its configuration: Raft,
// the catalog, the health checker, the gRPC and HTTP APIs and mTLS, and
// runs them as one group of tasks.
package server

import (
	"errors"
	"net"
	"strings"
	"time"

	"github.com/switchyard-mesh/switchyard/services/kit/config"
	"github.com/switchyard-mesh/switchyard/services/kit/identity"
	"github.com/switchyard-mesh/switchyard/services/kit/service"
	"github.com/switchyard-mesh/switchyard/services/registry/internal/raftnode"
)

// Config is the registry binary's configuration.
type Config struct {
	service.Config `yaml:",inline"`

	NodeID  string `yaml:"node_id" help:"this node's Raft server ID, unique and stable across restarts"`
	DataDir string `yaml:"data_dir" help:"directory for the Raft log and snapshots"`

	GRPC     GRPCConfig      `yaml:"grpc"`
	HTTP     HTTPConfig      `yaml:"http"`
	Raft     RaftConfig      `yaml:"raft"`
	Health   HealthConfig    `yaml:"health"`
	TLS      TLSConfig       `yaml:"tls"`
	Identity identity.Config `yaml:"identity"`
	// Drain is how long in-flight calls get at shutdown.
	Drain time.Duration `yaml:"drain" help:"time in-flight calls get to finish at shutdown"`
}

// GRPCConfig is the API listener.
type GRPCConfig struct {
	Addr      string `yaml:"addr" help:"gRPC API listen address"`
	Advertise string `yaml:"advertise" help:"gRPC API address other nodes reach (default: addr)"`
	// ForwardWait is how long a request waits for a leader (during an
	// election) before failing with Unavailable.
	ForwardWait time.Duration `yaml:"forward_wait" help:"how long a write waits for a leader during an election"`
}

// HTTPConfig guards the HTTP/JSON API on the admin port.
type HTTPConfig struct {
	// WriteToken, when set, is the bearer token register, deregister and
	// heartbeat calls must send; unset, only loopback clients may write.
	WriteToken string `yaml:"write_token" help:"bearer token HTTP writes must send (unset: writes from loopback only)"`
}

// RaftConfig is the Raft listener, cluster membership and timing.
type RaftConfig struct {
	Addr      string `yaml:"addr" help:"Raft listen address"`
	Advertise string `yaml:"advertise" help:"Raft address other nodes dial (default: addr)"`
	// Bootstrap lists the first cluster's voters as id=host:port, this node
	// included. Used only on a first start with an empty data_dir.
	Bootstrap []string `yaml:"bootstrap" help:"first cluster's voters, id=host:port,... (first start only)"`
	// Join lists gRPC API addresses of existing nodes; a new node asks them
	// to add it as a voter.
	Join               []string      `yaml:"join" help:"gRPC addresses of existing nodes to join through"`
	HeartbeatTimeout   time.Duration `yaml:"heartbeat_timeout" help:"follower starts an election after this long without the leader"`
	ElectionTimeout    time.Duration `yaml:"election_timeout" help:"candidate restarts an election after this long"`
	LeaderLeaseTimeout time.Duration `yaml:"leader_lease_timeout" help:"leader steps down after this long without a quorum"`
	CommitTimeout      time.Duration `yaml:"commit_timeout" help:"longest wait before an idle leader sends an append"`
	SnapshotInterval   time.Duration `yaml:"snapshot_interval" help:"how often to check whether to snapshot"`
	SnapshotThreshold  int           `yaml:"snapshot_threshold" help:"log entries since the last snapshot that trigger one"`
	TrailingLogs       int           `yaml:"trailing_logs" help:"log entries kept after a snapshot for slow followers"`
	WatchLogSize       int           `yaml:"watch_log_size" help:"recent changes kept so reconnecting watchers get deltas, not a snapshot"`
}

// HealthConfig tunes the leader's health loop.
type HealthConfig struct {
	Tick time.Duration `yaml:"tick" help:"how often TTLs and reaping are evaluated and due probes started"`
}

// TLSConfig names certificate files, used when identity.ca_addr is empty.
type TLSConfig struct {
	CertFile string `yaml:"cert_file" help:"PEM X.509-SVID of spiffe://switchyard.local/system/registry (without identity.ca_addr)"`
	KeyFile  string `yaml:"key_file" help:"PEM private key of cert_file"`
	CAFile   string `yaml:"ca_file" help:"PEM trust bundle verifying peers"`
}

// DefaultConfig returns the container defaults (ports 7100-7102) and the
// LAN Raft timeouts.
func DefaultConfig() Config {
	t := raftnode.LANTimeouts()
	return Config{
		Config:  service.DefaultConfig(":7102"),
		DataDir: "/var/lib/switchyard/registry",
		GRPC:    GRPCConfig{Addr: ":7100", ForwardWait: 3 * time.Second},
		Raft: RaftConfig{
			Addr: ":7101", HeartbeatTimeout: t.Heartbeat, ElectionTimeout: t.Election,
			LeaderLeaseTimeout: t.LeaderLease, CommitTimeout: t.Commit,
			SnapshotInterval: 30 * time.Second, SnapshotThreshold: 8192, TrailingLogs: 10240, WatchLogSize: 8192,
		},
		Health: HealthConfig{Tick: 250 * time.Millisecond},
		Drain:  5 * time.Second,
	}
}

// Validate names every invalid setting.
func (c *Config) Validate() error {
	errs := []error{c.Config.Validate()}
	if c.NodeID == "" {
		errs = append(errs, config.Errorf("node_id", "required"))
	}
	if c.DataDir == "" {
		errs = append(errs, config.Errorf("data_dir", "required"))
	}
	errs = append(errs, hostPort("grpc.addr", c.GRPC.Addr), hostPort("raft.addr", c.Raft.Addr))
	if c.GRPC.Advertise != "" {
		errs = append(errs, advertised("grpc.advertise", c.GRPC.Advertise))
	} else {
		errs = append(errs, advertised("grpc.advertise", c.GRPC.Addr))
	}
	if c.Raft.Advertise != "" {
		errs = append(errs, advertised("raft.advertise", c.Raft.Advertise))
	} else {
		errs = append(errs, advertised("raft.advertise", c.Raft.Addr))
	}
	if _, err := c.BootstrapPeers(); err != nil {
		errs = append(errs, err)
	}
	if c.GRPC.ForwardWait <= 0 {
		errs = append(errs, config.Errorf("grpc.forward_wait", "must be positive"))
	}
	r := c.Raft
	switch {
	case r.HeartbeatTimeout < 5*time.Millisecond:
		errs = append(errs, config.Errorf("raft.heartbeat_timeout", "%s is too low (at least 5ms)", r.HeartbeatTimeout))
	case r.ElectionTimeout < r.HeartbeatTimeout:
		errs = append(errs, config.Errorf("raft.election_timeout", "%s is below raft.heartbeat_timeout %s", r.ElectionTimeout, r.HeartbeatTimeout))
	case r.LeaderLeaseTimeout <= 0 || r.LeaderLeaseTimeout > r.HeartbeatTimeout:
		errs = append(errs, config.Errorf("raft.leader_lease_timeout", "%s must be positive and at most raft.heartbeat_timeout %s", r.LeaderLeaseTimeout, r.HeartbeatTimeout))
	}
	if r.CommitTimeout < time.Millisecond {
		errs = append(errs, config.Errorf("raft.commit_timeout", "%s is too low (at least 1ms)", r.CommitTimeout))
	}
	if r.SnapshotInterval < 5*time.Millisecond {
		errs = append(errs, config.Errorf("raft.snapshot_interval", "%s is too low", r.SnapshotInterval))
	}
	if r.SnapshotThreshold <= 0 || r.TrailingLogs < 0 || r.WatchLogSize <= 0 {
		errs = append(errs, config.Errorf("raft.snapshot_threshold", "snapshot_threshold and watch_log_size must be positive, trailing_logs not negative"))
	}
	if c.Health.Tick < 10*time.Millisecond {
		errs = append(errs, config.Errorf("health.tick", "%s is too low (at least 10ms)", c.Health.Tick))
	}
	if c.Drain < 0 {
		errs = append(errs, config.Errorf("drain", "must not be negative"))
	}
	if c.Identity.CAAddr != "" {
		errs = append(errs, config.Nest("identity", c.Identity.Validate()))
	} else if c.TLS.CertFile == "" || c.TLS.KeyFile == "" || c.TLS.CAFile == "" {
		errs = append(errs, config.Errorf("tls", "set tls.cert_file, tls.key_file and tls.ca_file, or identity.ca_addr: the registry never serves in plaintext"))
	}
	return errors.Join(errs...)
}

// BootstrapPeers parses raft.bootstrap.
func (c *Config) BootstrapPeers() ([]raftnode.Peer, error) {
	var out []raftnode.Peer
	self := false
	for _, p := range c.Raft.Bootstrap {
		id, addr, ok := strings.Cut(p, "=")
		if !ok || id == "" {
			return nil, config.Errorf("raft.bootstrap", "%q is not id=host:port", p)
		}
		if err := advertised("raft.bootstrap", addr); err != nil {
			return nil, err
		}
		self = self || id == c.NodeID
		out = append(out, raftnode.Peer{ID: id, Address: addr})
	}
	if len(out) > 0 && !self {
		return nil, config.Errorf("raft.bootstrap", "does not list this node (node_id %q)", c.NodeID)
	}
	return out, nil
}

func hostPort(field, addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return config.Errorf(field, "%q is not host:port: %v", addr, err)
	}
	return nil
}

// advertised checks an address others dial: it needs a host.
func advertised(field, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return config.Errorf(field, "%q is not host:port: %v", addr, err)
	}
	if host == "" || port == "0" {
		return config.Errorf(field, "%q has no host (or port 0); other nodes cannot dial it: set the advertise address", addr)
	}
	return nil
}
