package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	registryv1 "github.com/switchyard-mesh/switchyard/proto/switchyard/registry/v1"
	"github.com/switchyard-mesh/switchyard/services/kit/grpcx"
	"github.com/switchyard-mesh/switchyard/services/kit/meshconfig"
	"github.com/switchyard-mesh/switchyard/services/kit/run"
	"github.com/switchyard-mesh/switchyard/services/kit/telemetry"
	"github.com/switchyard-mesh/switchyard/services/registry/internal/api"
	"github.com/switchyard-mesh/switchyard/services/registry/internal/catalog"
	"github.com/switchyard-mesh/switchyard/services/registry/internal/health"
	"github.com/switchyard-mesh/switchyard/services/registry/internal/raftnode"
)

// Parts are what a node is built from besides its configuration: the
// listeners (opened by the caller, so tests choose ports and can cut the
// Raft network), TLS, logging and metrics.
type Parts struct {
	Log          *slog.Logger
	Metrics      prometheus.Registerer
	TLS          TLSConfigs
	GRPCListener net.Listener
	RaftListener net.Listener
	// RaftDial overrides how Raft connects to peers (nil: TCP).
	RaftDial raftnode.DialFunc
	Clock    health.Clock
	// Prober runs active checks (nil: the network prober).
	Prober health.Prober
}

// Node is one assembled registry node.
type Node struct {
	cfg      Config
	log      *slog.Logger
	store    *catalog.Store
	raft     *raftnode.Node
	runner   *health.Runner
	registry *api.Registry
	cluster  *api.Cluster
	grpc     *grpcx.Server
	grpcLn   net.Listener
	peer     credentials.TransportCredentials
	metrics  prometheus.Registerer
}

// meshValidator checks documents with kit/meshconfig, the same rules
// meshctl and the control plane apply.
type meshValidator struct{}

var _ catalog.SetValidator = meshValidator{}

func (meshValidator) Validate(kind, name string, body []byte) error {
	return meshconfig.Validate(kind, name, body)
}

// ValidateWith refuses a document that conflicts with a stored one. Stored
// documents that no longer decode (written by an older version) are left
// out rather than blocking every apply.
func (meshValidator) ValidateWith(kind, name string, body []byte, stored []*catalog.ConfigDoc) error {
	doc, err := meshconfig.Decode(kind, name, body)
	if err != nil {
		return err
	}
	others := make([]meshconfig.Document, 0, len(stored))
	for _, s := range stored {
		if d, err := meshconfig.Decode(s.Kind, s.Name, s.Body); err == nil {
			others = append(others, d)
		}
	}
	return meshconfig.CheckAgainst(doc, others)
}

// New builds a node and starts Raft on it. Run its Tasks to serve.
func New(cfg Config, p Parts) (*Node, error) {
	peers, err := cfg.BootstrapPeers()
	if err != nil {
		return nil, err
	}
	if p.Clock == nil {
		p.Clock = health.SystemClock{}
	}
	if p.Prober == nil {
		p.Prober = health.NetProber{}
	}
	apiAddr := cfg.GRPC.Advertise
	if apiAddr == "" {
		apiAddr = cfg.GRPC.Addr
	}
	raftAddr := cfg.Raft.Advertise
	if raftAddr == "" {
		raftAddr = cfg.Raft.Addr
	}
	advertise, err := net.ResolveTCPAddr("tcp", raftAddr)
	if err != nil {
		return nil, fmt.Errorf("raft.advertise %q: %w", raftAddr, err)
	}
	store := catalog.NewStore(cfg.Raft.WatchLogSize)
	rm := raftnode.NewMetrics(p.Metrics)
	stream := raftnode.NewStreamLayer(p.RaftListener, advertise, p.TLS.RaftServer, p.TLS.RaftClient, p.RaftDial)
	rn, err := raftnode.Start(raftnode.Config{
		ID: cfg.NodeID, DataDir: cfg.DataDir, APIAddress: apiAddr, Bootstrap: peers,
		Timeouts: raftnode.Timeouts{
			Heartbeat: cfg.Raft.HeartbeatTimeout, Election: cfg.Raft.ElectionTimeout,
			LeaderLease: cfg.Raft.LeaderLeaseTimeout, Commit: cfg.Raft.CommitTimeout,
		},
		SnapshotInterval: cfg.Raft.SnapshotInterval, SnapshotThreshold: uint64(cfg.Raft.SnapshotThreshold),
		TrailingLogs: uint64(cfg.Raft.TrailingLogs), ApplyTimeout: 5 * time.Second,
		Log: p.Log.With("component", "raft"), Metrics: rm,
	}, stream, store)
	if err != nil {
		return nil, err
	}
	rm.RegisterNodeGauges(p.Metrics, rn)
	registerCatalogGauges(p.Metrics, store)

	runner := health.NewRunner(health.Config{
		Store: store, Node: rn, Prober: p.Prober, Clock: p.Clock, Tick: cfg.Health.Tick,
		Log: p.Log.With("component", "health"), Metrics: health.NewMetrics(p.Metrics),
	})
	peerCreds := credentials.NewTLS(p.TLS.Peer)
	reg, cl := api.New(api.Config{
		Store: store, Node: rn, Health: runner, Validator: meshValidator{}, Clock: p.Clock,
		Creds: peerCreds, ForwardWait: cfg.GRPC.ForwardWait, Log: p.Log.With("component", "api"), Registerer: p.Metrics,
	})
	unaryLog, streamLog := api.LogInterceptors(p.Log.With("component", "grpc"))
	gs := grpcx.NewServer(grpcx.ServerOptions{Binary: "registry", Registerer: p.Metrics, Creds: credentials.NewTLS(p.TLS.API)},
		grpc.ChainUnaryInterceptor(unaryLog), grpc.ChainStreamInterceptor(streamLog))
	registryv1.RegisterRegistryServiceServer(gs.Server, reg)
	registryv1.RegisterClusterServiceServer(gs.Server, cl)
	return &Node{
		cfg: cfg, log: p.Log, store: store, raft: rn, runner: runner, registry: reg, cluster: cl,
		grpc: gs, grpcLn: p.GRPCListener, peer: peerCreds, metrics: p.Metrics,
	}, nil
}

// Tasks are the node's long-lived parts.
func (n *Node) Tasks() []run.Task {
	return []run.Task{n.raft.Run, n.runner.Run, n.serveGRPC, n.announce}
}

// Ready fails until the node knows a leader that has announced itself.
func (n *Node) Ready(context.Context) error {
	_, _, err := n.raft.Leader()
	return err
}

func (n *Node) serveGRPC(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		n.registry.Close()
	}()
	return n.grpc.Serve(n.grpcLn, n.cfg.Drain)(ctx)
}

// announce makes sure the cluster knows this node: a node started with
// raft.join asks to be added as a voter; every node records its API
// address so followers can forward to it. It stops once its entry is in
// the replicated member directory.
func (n *Node) announce(ctx context.Context) error {
	apiAddr := n.cfg.GRPC.Advertise
	if apiAddr == "" {
		apiAddr = n.cfg.GRPC.Addr
	}
	raftAddr := n.cfg.Raft.Advertise
	if raftAddr == "" {
		raftAddr = n.cfg.Raft.Addr
	}
	for attempt := 0; ; attempt++ {
		if m, ok := n.store.Member(n.cfg.NodeID); ok && m.APIAddress == apiAddr {
			return nil
		}
		target := ""
		if _, addr, err := n.raft.Leader(); err == nil {
			target = addr
		} else if len(n.cfg.Raft.Join) > 0 {
			target = n.cfg.Raft.Join[attempt%len(n.cfg.Raft.Join)]
		}
		if target != "" && target != apiAddr {
			if err := n.askToJoin(ctx, target, raftAddr, apiAddr); err != nil && attempt%10 == 0 {
				n.log.Warn("announce to cluster", "via", target, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (n *Node) askToJoin(ctx context.Context, target, raftAddr, apiAddr string) error {
	conn, err := grpcx.Dial(target, n.peer)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = registryv1.NewClusterServiceClient(conn).AddVoter(ctx, &registryv1.AddVoterRequest{
		Id: n.cfg.NodeID, RaftAddress: raftAddr, ApiAddress: apiAddr,
	})
	return err
}

// HTTPHandler is the HTTP/JSON API for the admin port, with traces and
// switchyard_registry_http_* RED metrics. Call it once per node.
func (n *Node) HTTPHandler() http.Handler {
	return telemetry.HTTPMiddleware(n.metrics, "registry")(api.HTTPHandler(n.registry, n.cluster, n.cfg.HTTP.WriteToken))
}

func registerCatalogGauges(reg prometheus.Registerer, s *catalog.Store) {
	for _, g := range []struct {
		name, help string
		pick       func(svc, inst, cfg int) int
	}{
		{"switchyard_registry_catalog_services", "Services with at least one instance.", func(s, _, _ int) int { return s }},
		{"switchyard_registry_catalog_instances", "Registered instances.", func(_, i, _ int) int { return i }},
		{"switchyard_registry_catalog_configs", "Stored config documents.", func(_, _, c int) int { return c }},
	} {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: g.name, Help: g.help}, func() float64 {
			return float64(g.pick(s.Counts()))
		}))
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "switchyard_registry_catalog_index", Help: "Raft index of the catalog state on this node.",
	}, func() float64 { return float64(s.Index()) }))
}
