package app

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/credentials"

	registryv1 "github.com/switchyard-mesh/switchyard/proto/switchyard/registry/v1"
	"github.com/switchyard-mesh/switchyard/services/kit/grpcx"
	"github.com/switchyard-mesh/switchyard/services/kit/identity"
	"github.com/switchyard-mesh/switchyard/services/kit/registration"
	"github.com/switchyard-mesh/switchyard/services/kit/run"
	"github.com/switchyard-mesh/switchyard/services/kit/service"
	"github.com/switchyard-mesh/switchyard/services/kit/workloadapi"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/proxy"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/xds"
)

// Run starts the sidecar and serves until ctx is cancelled.
func Run(ctx context.Context, cfg Config) error {
	gogc, memoryLimit := cfg.RuntimeConfig.Apply()
	base, err := service.Start(ctx, "sidecar", cfg.Config)
	if err != nil {
		return err
	}
	log := base.Log.With("service", cfg.Service)
	log.Info("proxy runtime", "gomaxprocs", runtime.GOMAXPROCS(0), "gogc", gogc, "memory_limit", memoryLimit)
	// Every series carries the workload's service: with the upstream
	// cluster label that is the service pair for the mesh dashboard.
	reg := prometheus.WrapRegistererWith(prometheus.Labels{"service": cfg.Service}, base.Metrics)

	var tasks []run.Task
	var id proxy.Identity
	var xdsCreds, registryCreds credentials.TransportCredentials
	if cfg.Insecure {
		log.Warn("insecure: xDS is plaintext and mTLS listeners/clusters will refuse to serve; development only")
	} else {
		src, err := identity.New(ctx, cfg.Identity, identity.Options{Log: log, Registerer: base.Metrics})
		if err != nil {
			return fmt.Errorf("identity: %w", err)
		}
		tasks = append(tasks, src.Run)
		id = src
		xdsCreds = src.ClientCredentials(spiffeid.RequireFromString(cfg.XDSServerID))
		registryCreds = src.ClientCredentials(spiffeid.RequireFromString(cfg.Registration.RegistryID))
		if cfg.WorkloadAPISocket != "" {
			tasks = append(tasks, workloadapi.New(src, log).Serve(cfg.WorkloadAPISocket))
		}
	}
	if cfg.Insecure && cfg.WorkloadAPISocket != "" {
		return fmt.Errorf("workload_api_socket: needs an identity (insecure is set)")
	}

	bind := map[string]string{}
	if cfg.OutboundAddr != "" {
		bind["outbound"] = cfg.OutboundAddr
	}
	if cfg.InboundAddr != "" {
		bind["inbound"] = cfg.InboundAddr
	}
	px := proxy.New(proxy.Config{Log: log, Metrics: reg, Identity: id, Bind: bind, Drain: cfg.Drain})

	conn, err := grpcx.Dial(cfg.XDSAddr, xdsCreds)
	if err != nil {
		return fmt.Errorf("dial control plane %s: %w", cfg.XDSAddr, err)
	}
	defer conn.Close()
	client := xds.NewClient(xds.ClientConfig{
		Conn: conn, Log: log, Metrics: reg, OnUpdate: px.Apply,
		Node: xds.Node{ID: "sidecar~" + cfg.instanceID(), Cluster: cfg.Service, Region: cfg.Region, Zone: cfg.Zone,
			Metadata: map[string]string{"service": cfg.Service, "namespace": cfg.Namespace, "kind": "sidecar", "app_port": strconv.Itoa(cfg.AppPort)}},
	})

	base.Admin.AddReadiness("xds", func(context.Context) error { return px.Ready() })
	base.Admin.Handle("GET /config_dump", px.ConfigDump(client))
	base.Admin.Handle("GET /clusters", px.Clusters())
	base.Admin.Handle("GET /stats/prometheus", promhttp.HandlerFor(base.Metrics, promhttp.HandlerOpts{}))
	base.Admin.Handle("GET /ready", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if err := px.Ready(); err != nil {
			http.Error(w, "NOT READY: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("LIVE\n"))
	}))
	tasks = append(tasks, px.Run, client.Run)

	if r := cfg.Registration; r.RegistryAddr != "" {
		rc, err := grpcx.Dial(r.RegistryAddr, registryCreds)
		if err != nil {
			return fmt.Errorf("dial registry %s: %w", r.RegistryAddr, err)
		}
		defer rc.Close()
		host, port, _ := net.SplitHostPort(r.AdvertiseAddr)
		p, _ := strconv.Atoi(port)
		tasks = append(tasks, registration.New(registration.Config{
			Client: registryv1.NewRegistryServiceClient(rc), TTL: r.TTL, AppHealth: r.AppHealthURL, Ready: px.Ready, Log: log,
			Instance: &registryv1.Instance{Service: cfg.Service, Id: cfg.instanceID(), Address: host, Port: uint32(p), Tags: r.Tags,
				Locality: &registryv1.Locality{Region: cfg.Region, Zone: cfg.Zone},
				Metadata: map[string]string{"namespace": cfg.Namespace, "proxy": "sidecar"}},
		}).Run)
	}
	return base.Run(ctx, tasks...)
}
