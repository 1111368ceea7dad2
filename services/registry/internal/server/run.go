package server

import (
	"context"
	"fmt"

	"github.com/switchyard-mesh/switchyard/services/kit/run"
	"github.com/switchyard-mesh/switchyard/services/kit/service"
)

// Run starts a registry node from cfg and serves until ctx is cancelled.
func Run(ctx context.Context, cfg Config) error {
	base, err := service.Start(ctx, "registry", cfg.Config)
	if err != nil {
		return err
	}
	log := base.Log.With("node_id", cfg.NodeID)
	var tasks []run.Task
	var tlsc TLSConfigs
	if cfg.Identity.CAAddr != "" {
		var renew run.Task
		tlsc, renew, err = identityTLS(ctx, cfg.Identity, log, base.Metrics)
		tasks = append(tasks, renew)
	} else {
		tlsc, err = FilesTLS(cfg.TLS)
	}
	if err != nil {
		return err
	}
	grpcLn, err := run.Listen("grpc.addr", cfg.GRPC.Addr)
	if err != nil {
		return err
	}
	raftLn, err := run.Listen("raft.addr", cfg.Raft.Addr)
	if err != nil {
		_ = grpcLn.Close()
		return err
	}
	n, err := New(cfg, Parts{Log: log, Metrics: base.Metrics, TLS: tlsc, GRPCListener: grpcLn, RaftListener: raftLn})
	if err != nil {
		_ = grpcLn.Close()
		_ = raftLn.Close()
		return fmt.Errorf("start registry node %s: %w", cfg.NodeID, err)
	}
	base.Admin.AddReadiness("raft-leader", n.Ready)
	base.Admin.Handle("/v1/", n.HTTPHandler())
	return base.Run(ctx, append(tasks, n.Tasks()...)...)
}
