package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	registryv1 "github.com/switchyard-mesh/switchyard/proto/switchyard/registry/v1"
	"github.com/switchyard-mesh/switchyard/services/registry/internal/catalog"
	"github.com/switchyard-mesh/switchyard/services/registry/internal/health"
	"github.com/switchyard-mesh/switchyard/services/registry/internal/raftnode"
)

// Config wires the API to the node's parts.
type Config struct {
	Store     *catalog.Store
	Node      *raftnode.Node
	Health    *health.Runner
	Validator catalog.ConfigValidator
	Clock     health.Clock
	// Creds secure forwarded calls to the leader.
	Creds       credentials.TransportCredentials
	ForwardWait time.Duration
	Log         *slog.Logger
	Registerer  prometheus.Registerer
}

// Registry implements RegistryService.
type Registry struct {
	registryv1.UnimplementedRegistryServiceServer
	store     *catalog.Store
	node      *raftnode.Node
	health    *health.Runner
	validator catalog.ConfigValidator
	clock     health.Clock
	fwd       *forwarder
	log       *slog.Logger
	watchers  prometheus.Gauge
	stopping  chan struct{}
	stopOnce  sync.Once
}

// Cluster implements ClusterService.
type Cluster struct {
	registryv1.UnimplementedClusterServiceServer
	node *raftnode.Node
	fwd  *forwarder
}

// New builds both services; Close releases their forwarding connections.
func New(c Config) (*Registry, *Cluster) {
	fwd := &forwarder{node: c.Node, creds: c.Creds, wait: c.ForwardWait, conns: map[string]*grpc.ClientConn{}}
	watchers := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "switchyard_registry_watchers",
		Help: "Open Watch streams on this node.",
	})
	c.Registerer.MustRegister(watchers)
	return &Registry{
			store: c.Store, node: c.Node, health: c.Health, validator: c.Validator, clock: c.Clock,
			fwd: fwd, log: c.Log, watchers: watchers, stopping: make(chan struct{}),
		},
		&Cluster{node: c.Node, fwd: fwd}
}

// Close ends every watch (its client resumes on another node from the
// last index it got) and releases the connections used to forward.
func (r *Registry) Close() {
	r.stopOnce.Do(func() { close(r.stopping) })
	r.fwd.close()
}

// apply proposes a command on the leader and returns its result, mapping a
// refused command to its error.
func (r *Registry) apply(c catalog.Command) (catalog.Result, error) {
	res, err := r.node.Apply(c)
	if err != nil {
		return res, err
	}
	return res, res.Err
}

// Register implements RegistryService.
func (r *Registry) Register(ctx context.Context, req *registryv1.RegisterRequest) (*registryv1.RegisterResponse, error) {
	if req.GetInstance() == nil {
		return nil, toStatus(&catalog.FieldError{Field: "instance", Reason: "is missing"})
	}
	in, err := catalog.NormalizeInstance(instanceFromProto(req.GetInstance()))
	if err != nil {
		return nil, toStatus(err)
	}
	return onLeader(ctx, r.fwd, func(context.Context) (*registryv1.RegisterResponse, error) {
		res, err := r.apply(catalog.Register{Instance: in, Now: r.clock.Now()})
		if err != nil {
			return nil, err
		}
		return &registryv1.RegisterResponse{Index: res.Index}, nil
	}, func(ctx context.Context, cc *grpc.ClientConn) (*registryv1.RegisterResponse, error) {
		return registryv1.NewRegistryServiceClient(cc).Register(ctx, req)
	})
}

// Deregister implements RegistryService.
func (r *Registry) Deregister(ctx context.Context, req *registryv1.DeregisterRequest) (*registryv1.DeregisterResponse, error) {
	k := catalog.Key{Service: req.GetService(), ID: req.GetId()}
	if err := catalog.ValidateKey(k); err != nil {
		return nil, toStatus(err)
	}
	return onLeader(ctx, r.fwd, func(context.Context) (*registryv1.DeregisterResponse, error) {
		res, err := r.apply(catalog.Deregister{Service: k.Service, ID: k.ID})
		if err != nil {
			return nil, err
		}
		return &registryv1.DeregisterResponse{Index: res.Index}, nil
	}, func(ctx context.Context, cc *grpc.ClientConn) (*registryv1.DeregisterResponse, error) {
		return registryv1.NewRegistryServiceClient(cc).Deregister(ctx, req)
	})
}

// Heartbeat implements RegistryService.
func (r *Registry) Heartbeat(ctx context.Context, req *registryv1.HeartbeatRequest) (*registryv1.HeartbeatResponse, error) {
	k := catalog.Key{Service: req.GetService(), ID: req.GetId()}
	if err := catalog.ValidateKey(k); err != nil {
		return nil, toStatus(err)
	}
	return onLeader(ctx, r.fwd, func(context.Context) (*registryv1.HeartbeatResponse, error) {
		idx, err := r.health.Heartbeat(k)
		if err != nil {
			return nil, err
		}
		return &registryv1.HeartbeatResponse{Index: idx}, nil
	}, func(ctx context.Context, cc *grpc.ClientConn) (*registryv1.HeartbeatResponse, error) {
		return registryv1.NewRegistryServiceClient(cc).Heartbeat(ctx, req)
	})
}

// read serves a read locally when stale is allowed, after a read index on
// the leader, or by forwarding it to the leader.
func read[Resp any](ctx context.Context, r *Registry, opts *registryv1.ReadOptions, serve func() Resp, remote func(context.Context, *grpc.ClientConn) (Resp, error)) (Resp, error) {
	if opts.GetStale() {
		return serve(), nil
	}
	return onLeader(ctx, r.fwd, func(ctx context.Context) (Resp, error) {
		if _, err := r.node.ReadIndex(ctx); err != nil {
			var zero Resp
			return zero, err
		}
		return serve(), nil
	}, remote)
}

// GetService implements RegistryService.
func (r *Registry) GetService(ctx context.Context, req *registryv1.GetServiceRequest) (*registryv1.GetServiceResponse, error) {
	if err := catalog.ValidateServiceName("service", req.GetService()); err != nil {
		return nil, toStatus(err)
	}
	return read(ctx, r, req.GetRead(), func() *registryv1.GetServiceResponse {
		ins, idx := r.store.Instances(catalog.Filter{Service: req.GetService(), Health: catalog.Health(req.GetHealth())})
		return &registryv1.GetServiceResponse{Instances: instancesToProto(ins), Index: idx}
	}, func(ctx context.Context, cc *grpc.ClientConn) (*registryv1.GetServiceResponse, error) {
		return registryv1.NewRegistryServiceClient(cc).GetService(ctx, req)
	})
}

// ListServices implements RegistryService.
func (r *Registry) ListServices(ctx context.Context, req *registryv1.ListServicesRequest) (*registryv1.ListServicesResponse, error) {
	return read(ctx, r, req.GetRead(), func() *registryv1.ListServicesResponse {
		sums, idx := r.store.Services()
		out := &registryv1.ListServicesResponse{Index: idx}
		for _, s := range sums {
			out.Services = append(out.Services, &registryv1.ServiceSummary{
				Name: s.Name, Instances: uint32(s.Instances), Passing: uint32(s.Passing), Critical: uint32(s.Critical),
				Tags: s.Tags, Regions: s.Regions,
			})
		}
		return out
	}, func(ctx context.Context, cc *grpc.ClientConn) (*registryv1.ListServicesResponse, error) {
		return registryv1.NewRegistryServiceClient(cc).ListServices(ctx, req)
	})
}

// ListInstances implements RegistryService.
func (r *Registry) ListInstances(ctx context.Context, req *registryv1.ListInstancesRequest) (*registryv1.ListInstancesResponse, error) {
	if req.GetService() != "" {
		if err := catalog.ValidateServiceName("service", req.GetService()); err != nil {
			return nil, toStatus(err)
		}
	}
	return read(ctx, r, req.GetRead(), func() *registryv1.ListInstancesResponse {
		ins, idx := r.store.Instances(catalog.Filter{Service: req.GetService(), Region: req.GetRegion(), Health: catalog.Health(req.GetHealth())})
		return &registryv1.ListInstancesResponse{Instances: instancesToProto(ins), Index: idx}
	}, func(ctx context.Context, cc *grpc.ClientConn) (*registryv1.ListInstancesResponse, error) {
		return registryv1.NewRegistryServiceClient(cc).ListInstances(ctx, req)
	})
}

// watchBatchLimit caps the events in one WatchResponse (resets are whole).
const watchBatchLimit = 1024

// Watch implements RegistryService. It serves from this node's state: the
// indexes are Raft's, the same on every node, so a watcher that moves to
// another node resumes exactly where it left off.
func (r *Registry) Watch(req *registryv1.WatchRequest, stream grpc.ServerStreamingServer[registryv1.WatchResponse]) error {
	if req.GetService() != "" {
		if err := catalog.ValidateServiceName("service", req.GetService()); err != nil {
			return toStatus(err)
		}
	}
	r.watchers.Inc()
	defer r.watchers.Dec()
	ctx := stream.Context()
	from, sent := req.GetFromIndex(), req.GetFromIndex()
	for {
		changed := r.store.Changed()
		b := r.store.WatchFrom(from, watchBatchLimit)
		resp := &registryv1.WatchResponse{Index: b.Index, Snapshot: b.Reset}
		for _, ev := range b.Events {
			if r.wanted(req, ev) {
				resp.Events = append(resp.Events, eventToProto(ev))
			}
		}
		// Send changes, resets, and progress when filtered-out changes
		// moved the index, so a reconnect resumes from near the head.
		if b.Reset || len(resp.Events) > 0 || (len(b.Events) > 0 && b.Index > sent) {
			if err := stream.Send(resp); err != nil {
				return err
			}
			sent = b.Index
		}
		from = b.Index
		if !b.Reset && len(b.Events) == watchBatchLimit {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.stopping:
			return status.Errorf(codes.Unavailable, "registry node shutting down: resume on another node from index %d", from)
		case <-changed:
		}
	}
}

func (r *Registry) wanted(req *registryv1.WatchRequest, ev catalog.Event) bool {
	if ev.Instance != nil {
		return req.GetService() == "" || ev.Instance.Service == req.GetService()
	}
	return !req.GetInstancesOnly() && req.GetService() == ""
}

// ApplyConfig implements RegistryService.
func (r *Registry) ApplyConfig(ctx context.Context, req *registryv1.ApplyConfigRequest) (*registryv1.ApplyConfigResponse, error) {
	if err := allow(ctx, "write config", systemCaller); err != nil {
		return nil, err
	}
	if err := errors.Join(catalog.ValidateConfigKey(req.GetKind(), req.GetName()), catalog.ValidateConfigBody(req.GetBody())); err != nil {
		return nil, toStatus(err)
	}
	if err := r.validator.Validate(req.GetKind(), req.GetName(), req.GetBody()); err != nil {
		return nil, toStatus(fmt.Errorf("%w", asInvalid(err)))
	}
	cmd := catalog.ApplyConfig{Kind: req.GetKind(), Name: req.GetName(), Body: req.GetBody()}
	if req.ExpectedVersion != nil {
		v := req.GetExpectedVersion()
		cmd.ExpectedVersion = &v
	}
	return onLeader(ctx, r.fwd, func(context.Context) (*registryv1.ApplyConfigResponse, error) {
		if sv, ok := r.validator.(catalog.SetValidator); ok {
			stored, _ := r.store.Configs("")
			if err := sv.ValidateWith(req.GetKind(), req.GetName(), req.GetBody(), stored); err != nil {
				return nil, toStatus(asInvalid(err))
			}
		}
		res, err := r.apply(cmd)
		if err != nil {
			return nil, err
		}
		return &registryv1.ApplyConfigResponse{Config: configToProto(res.Config)}, nil
	}, func(ctx context.Context, cc *grpc.ClientConn) (*registryv1.ApplyConfigResponse, error) {
		return registryv1.NewRegistryServiceClient(cc).ApplyConfig(ctx, req)
	})
}

// asInvalid makes any validator error an InvalidArgument: the validator
// only refuses documents, it has no other failure.
func asInvalid(err error) error {
	var fe *catalog.FieldError
	if errors.As(err, &fe) {
		return err
	}
	return errors.Join(&catalog.FieldError{Field: "body", Reason: "refused by the config validator"}, err)
}

// GetConfig implements RegistryService.
func (r *Registry) GetConfig(ctx context.Context, req *registryv1.GetConfigRequest) (*registryv1.GetConfigResponse, error) {
	if err := catalog.ValidateConfigKey(req.GetKind(), req.GetName()); err != nil {
		return nil, toStatus(err)
	}
	resp, err := read(ctx, r, req.GetRead(), func() *registryv1.GetConfigResponse {
		d, idx, ok := r.store.Config(req.GetKind(), req.GetName())
		if !ok {
			return &registryv1.GetConfigResponse{Index: idx}
		}
		return &registryv1.GetConfigResponse{Config: configToProto(d), Index: idx}
	}, func(ctx context.Context, cc *grpc.ClientConn) (*registryv1.GetConfigResponse, error) {
		return registryv1.NewRegistryServiceClient(cc).GetConfig(ctx, req)
	})
	if err == nil && resp.GetConfig() == nil {
		return nil, toStatus(fmt.Errorf("config %s/%s: %w", req.GetKind(), req.GetName(), catalog.ErrNotFound))
	}
	return resp, err
}

// ListConfig implements RegistryService.
func (r *Registry) ListConfig(ctx context.Context, req *registryv1.ListConfigRequest) (*registryv1.ListConfigResponse, error) {
	return read(ctx, r, req.GetRead(), func() *registryv1.ListConfigResponse {
		docs, idx := r.store.Configs(req.GetKind())
		out := &registryv1.ListConfigResponse{Index: idx}
		for _, d := range docs {
			out.Configs = append(out.Configs, configToProto(d))
		}
		return out
	}, func(ctx context.Context, cc *grpc.ClientConn) (*registryv1.ListConfigResponse, error) {
		return registryv1.NewRegistryServiceClient(cc).ListConfig(ctx, req)
	})
}

// DeleteConfig implements RegistryService.
func (r *Registry) DeleteConfig(ctx context.Context, req *registryv1.DeleteConfigRequest) (*registryv1.DeleteConfigResponse, error) {
	if err := allow(ctx, "write config", systemCaller); err != nil {
		return nil, err
	}
	if err := catalog.ValidateConfigKey(req.GetKind(), req.GetName()); err != nil {
		return nil, toStatus(err)
	}
	cmd := catalog.DeleteConfig{Kind: req.GetKind(), Name: req.GetName()}
	if req.ExpectedVersion != nil {
		v := req.GetExpectedVersion()
		cmd.ExpectedVersion = &v
	}
	return onLeader(ctx, r.fwd, func(context.Context) (*registryv1.DeleteConfigResponse, error) {
		res, err := r.apply(cmd)
		if err != nil {
			return nil, err
		}
		return &registryv1.DeleteConfigResponse{Index: res.Index}, nil
	}, func(ctx context.Context, cc *grpc.ClientConn) (*registryv1.DeleteConfigResponse, error) {
		return registryv1.NewRegistryServiceClient(cc).DeleteConfig(ctx, req)
	})
}
