// Package registration keeps a process registered in the registry: it
// registers the instance with a TTL check, heartbeats only while the
// process is ready and (optionally) an HTTP health endpoint answers 2xx, and
// deregisters on graceful shutdown. The sidecar registers its workload this
// way (address = its inbound listener, health = the app's, so "passing"
// means the whole path works); system services such as ratelimit register
// themselves so the control plane can route to them.
package registration

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	registryv1 "github.com/switchyard-mesh/switchyard/proto/switchyard/registry/v1"
)

// Config describes the instance and the heartbeat.
type Config struct {
	Client    registryv1.RegistryServiceClient
	Instance  *registryv1.Instance // service, id, address, port, tags, locality, metadata
	TTL       time.Duration        // the registry marks the instance critical after this without a heartbeat
	AppHealth string               // URL probed before each heartbeat; "" skips the probe
	Ready     func() error         // the process's own readiness; nil: always ready
	Log       *slog.Logger
	HTTP      *http.Client
}

// Registrar runs the registration loop.
type Registrar struct {
	cfg Config
	log *slog.Logger
}

// New returns a registrar.
func New(cfg Config) *Registrar {
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: cfg.TTL / 3}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Registrar{cfg: cfg, log: cfg.Log.With("component", "registration", "service", cfg.Instance.GetService(), "instance", cfg.Instance.GetId())}
}

// Run registers, heartbeats every TTL/3 while healthy, re-registers when the
// registry forgot the instance, and deregisters when ctx ends.
func (r *Registrar) Run(ctx context.Context) error {
	inst := r.cfg.Instance
	inst.Check = &registryv1.HealthCheck{Type: registryv1.CheckType_CHECK_TYPE_TTL, Ttl: durationpb.New(r.cfg.TTL)}
	registered, attempted := false, false
	tick := time.NewTicker(r.cfg.TTL / 3)
	defer tick.Stop()
	for {
		if !registered {
			attempted = true
			if err := r.register(ctx); err != nil {
				r.log.Warn("register failed; retrying", "err", err)
			} else {
				registered = true
			}
		}
		if registered {
			if err := r.healthy(ctx); err != nil {
				r.log.Info("not heartbeating: workload path unhealthy", "err", err)
			} else if err := r.heartbeat(ctx); err != nil {
				if status.Code(err) == codes.NotFound {
					registered = false
					r.log.Warn("registry forgot the instance; registering again")
					continue
				}
				r.log.Warn("heartbeat failed", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			// A registration cut short by shutdown may still have landed.
			if attempted {
				r.deregister()
			}
			return nil
		case <-tick.C:
		}
	}
}

func (r *Registrar) register(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := r.cfg.Client.Register(ctx, &registryv1.RegisterRequest{Instance: r.cfg.Instance}); err != nil {
		return fmt.Errorf("register %s/%s: %w", r.cfg.Instance.GetService(), r.cfg.Instance.GetId(), err)
	}
	r.log.Info("registered", "address", fmt.Sprintf("%s:%d", r.cfg.Instance.GetAddress(), r.cfg.Instance.GetPort()))
	return nil
}

func (r *Registrar) heartbeat(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := r.cfg.Client.Heartbeat(ctx, &registryv1.HeartbeatRequest{Service: r.cfg.Instance.GetService(), Id: r.cfg.Instance.GetId()})
	return err
}

// healthy is the process's readiness plus the health endpoint, if any.
func (r *Registrar) healthy(ctx context.Context) error {
	if r.cfg.Ready != nil {
		if err := r.cfg.Ready(); err != nil {
			return fmt.Errorf("not ready: %w", err)
		}
	}
	if r.cfg.AppHealth == "" {
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.cfg.AppHealth, nil)
	if err != nil {
		return err
	}
	resp, err := r.cfg.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("app health %s: %w", r.cfg.AppHealth, err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("app health %s: status %d", r.cfg.AppHealth, resp.StatusCode)
	}
	return nil
}

func (r *Registrar) deregister() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := r.cfg.Client.Deregister(ctx, &registryv1.DeregisterRequest{Service: r.cfg.Instance.GetService(), Id: r.cfg.Instance.GetId()}); err != nil {
		r.log.Warn("deregister failed; the TTL will expire it", "err", err)
		return
	}
	r.log.Info("deregistered")
}
