package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"time"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	registryv1 "github.com/switchyard-mesh/switchyard/proto/switchyard/registry/v1"
	"github.com/switchyard-mesh/switchyard/services/kit/grpcx"
	"github.com/switchyard-mesh/switchyard/services/kit/identity"
	"github.com/switchyard-mesh/switchyard/services/kit/rawconn"
	"github.com/switchyard-mesh/switchyard/services/kit/registration"
	"github.com/switchyard-mesh/switchyard/services/kit/run"
	"github.com/switchyard-mesh/switchyard/services/kit/service"
	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/debugapi"
	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/decider"
	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/limits"
	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/rls"
	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/rules"
	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/store"
)

// Validate checks the settings and loads the rules they name, as `ratelimit
// validate` does, without starting anything.
func Validate(cfg Config) (*limits.Config, error) {
	r, err := rules.Load(rules.File{Path: cfg.Limits.Path})
	if err != nil {
		return nil, fmt.Errorf("limits.path: %w", err)
	}
	return r, nil
}

// Run serves rate-limit decisions until ctx is cancelled.
func Run(ctx context.Context, cfg Config) error {
	b, err := service.Start(ctx, "ratelimit", cfg.Config)
	if err != nil {
		return err
	}
	log := b.Log
	gogc, memoryLimit := cfg.RuntimeConfig.Apply()
	log.Info("runtime", "gomaxprocs", runtime.GOMAXPROCS(0), "gogc", gogc, "memory_limit", memoryLimit)

	var d *decider.Decider
	reloader, initial, err := rules.NewReloader(log.With("component", "rules"), rules.NewMetrics(b.Metrics),
		cfg.Limits.ReloadInterval, func(c *limits.Config) { d.SetRules(c) }, rules.File{Path: cfg.Limits.Path})
	if err != nil {
		return fmt.Errorf("limits.path: %w", err)
	}

	var st store.Store
	if len(cfg.Redis.Addrs) == 0 {
		st = store.NewMemory()
		log.Warn("NO REDIS CONFIGURED: using the in-memory store; every replica limits on its own and counters vanish on restart (set redis.addrs for shared limits)")
	} else {
		opts := store.Options{
			Addrs: cfg.Redis.Addrs, MasterName: cfg.Redis.MasterName, Username: cfg.Redis.Username,
			Password: cfg.Redis.Password, DB: cfg.Redis.DB, Timeout: cfg.Redis.Timeout, PoolSize: cfg.Redis.PoolSize,
		}
		client := store.NewClient(opts)
		defer client.Close()
		rs := store.NewRedis(client, cfg.Redis.Pipelines)
		defer rs.Close()
		lctx, cancel := context.WithTimeout(ctx, max(4*cfg.Redis.Timeout, 500*time.Millisecond))
		if err := rs.Load(lctx); err != nil {
			// Not fatal: the decider fails open/closed and recovers, and
			// the script is sent with EVAL when Redis comes back.
			log.Warn("redis not reachable at start; deciding in failure mode until it is", "redis", opts.String(), "err", err)
		} else {
			log.Info("using redis", "redis", opts.String())
		}
		cancel()
		st = rs
	}

	d = decider.New(decider.Config{
		Timeout:        cfg.Redis.Timeout,
		FailOpen:       cfg.Decision.FailureMode == "open",
		FailuresToDown: cfg.Decision.FailuresToDown,
		ProbeInterval:  cfg.Decision.ProbeInterval,
		Log:            log.With("component", "decider"),
		Metrics:        decider.NewMetrics(b.Metrics),
	}, st, initial)
	log.Info("rate limit rules loaded", "path", cfg.Limits.Path, "domains", initial.Domains())

	tasks := []run.Task{d.Run, reloader.Run}
	var creds credentials.TransportCredentials
	if cfg.TLS.Mode == "spiffe" {
		src, err := identity.New(ctx, cfg.Identity, identity.Options{Log: log, Registerer: b.Metrics})
		if err != nil {
			return err
		}
		allowed, _ := identity.ParseIDs("tls.allowed_clients", cfg.TLS.AllowedClients)
		authz := tlsconfig.AuthorizeMemberOf(identity.TrustDomain)
		if len(allowed) > 0 {
			authz = tlsconfig.AuthorizeOneOf(allowed...)
		}
		creds = credentials.NewTLS(src.ServerTLSConfigWith(authz))
		tasks = append(tasks, src.Run)
		if cfg.Registration.RegistryAddr != "" {
			task, closeConn, err := registrationTask(cfg, src, log)
			if err != nil {
				return err
			}
			defer closeConn()
			tasks = append(tasks, task)
		}
	} else {
		log.Warn("RLS gRPC is plaintext (tls.mode insecure); use only for local tests")
	}

	srv := newRLSServer(b.Metrics, creds)
	rlsv3.RegisterRateLimitServiceServer(srv.Server, rls.New(d))
	ln, err := run.Listen("grpc.addr", cfg.GRPC.Addr)
	if err != nil {
		return err
	}
	log.Info("RLS gRPC listening", "addr", ln.Addr().String(), "tls", cfg.TLS.Mode)

	b.Admin.AddReadiness("store", d.Healthy)
	debugapi.Register(b.Admin.Handle, d)
	// Raw socket calls: fewer OS thread hand-offs per decision (kit/rawconn).
	return b.Run(ctx, append(tasks, srv.Serve(rawconn.Listener{Listener: ln}, cfg.GRPC.Drain))...)
}

// registrationTask keeps this replica registered (TTL heartbeats,
// deregistered on shutdown) so the control plane can route proxies to it.
func registrationTask(cfg Config, src *identity.Source, log *slog.Logger) (run.Task, func(), error) {
	r := cfg.Registration
	registryID, err := spiffeid.FromString(r.RegistryID)
	if err != nil {
		return nil, nil, fmt.Errorf("registration.registry_id: %w", err)
	}
	conn, err := grpcx.Dial(r.RegistryAddr, src.ClientCredentials(registryID))
	if err != nil {
		return nil, nil, fmt.Errorf("dial registry %s: %w", r.RegistryAddr, err)
	}
	id := r.InstanceID
	if id == "" {
		if id, err = os.Hostname(); err != nil {
			_ = conn.Close()
			return nil, nil, fmt.Errorf("registration.instance_id: not set and no host name: %w", err)
		}
	}
	host, portText, _ := net.SplitHostPort(r.AdvertiseAddr)
	port, _ := strconv.ParseUint(portText, 10, 16)
	reg := registration.New(registration.Config{
		Client: registryv1.NewRegistryServiceClient(conn), TTL: r.TTL, Log: log,
		Instance: &registryv1.Instance{Service: r.Service, Id: id, Address: host, Port: uint32(port),
			Metadata: map[string]string{"spiffe_id": src.ID().String(), "protocol": "grpc"}},
	})
	return reg.Run, func() { _ = conn.Close() }, nil
}

// streamWorkers is how many goroutines serve RLS calls. Each call runs on a
// worker whose stack has already grown, rather than on a new goroutine
// that grows its stack again; it is sized for the concurrent calls of a
// busy gateway (a call waits on Redis for most of its life), and calls
// beyond it still get a goroutine of their own.
const streamWorkers = 128

// rlsWindow is the RLS server's HTTP/2 flow-control window, per stream and
// per connection. Setting it turns off grpc-go's bandwidth estimation,
// which pings the client whenever data arrives and no ping is out: below
// saturation that was one more write and read per decision on each side,
// for windows that calls of a few hundred bytes never fill.
const rlsWindow = 1 << 20

// newRLSServer is kit's gRPC server tuned for tens of thousands of tiny
// calls a second: spans only for calls that arrive traced, stream workers,
// and a fixed flow-control window.
func newRLSServer(reg prometheus.Registerer, creds credentials.TransportCredentials) *grpcx.Server {
	return grpcx.NewServer(grpcx.ServerOptions{Binary: "ratelimit", Registerer: reg, Creds: creds, TracePropagatedOnly: true},
		grpc.NumStreamWorkers(streamWorkers), grpc.InitialWindowSize(rlsWindow), grpc.InitialConnWindowSize(rlsWindow))
}
