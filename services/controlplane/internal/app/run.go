package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoveryservice "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	xdsserver "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	registryv1 "github.com/switchyard-mesh/switchyard/proto/switchyard/registry/v1"
	"github.com/switchyard-mesh/switchyard/services/controlplane/internal/debounce"
	"github.com/switchyard-mesh/switchyard/services/controlplane/internal/registrywatch"
	"github.com/switchyard-mesh/switchyard/services/controlplane/internal/translate"
	"github.com/switchyard-mesh/switchyard/services/controlplane/internal/xds"
	"github.com/switchyard-mesh/switchyard/services/kit/grpcx"
	"github.com/switchyard-mesh/switchyard/services/kit/identity"
	"github.com/switchyard-mesh/switchyard/services/kit/meshconfig"
	"github.com/switchyard-mesh/switchyard/services/kit/run"
	"github.com/switchyard-mesh/switchyard/services/kit/service"
)

const drain = 5 * time.Second

// Run serves xDS until ctx is cancelled.
func Run(ctx context.Context, cfg Config) error {
	base, err := service.Start(ctx, "controlplane", cfg.Config)
	if err != nil {
		return err
	}
	log := base.Log

	var serverCreds, registryCreds credentials.TransportCredentials
	var tasks []run.Task
	if cfg.Insecure {
		log.Warn("insecure: xDS and the registry connection are plaintext; use only for tests and make dev")
	} else {
		src, err := identity.New(ctx, cfg.Identity, identity.Options{Log: log, Registerer: base.Metrics})
		if err != nil {
			return fmt.Errorf("identity: %w", err)
		}
		tasks = append(tasks, src.Run)
		td := spiffeid.RequireTrustDomainFromString(cfg.TrustDomain)
		if cfg.XDSPlaintext {
			log.Warn("xds_plaintext: xDS is served without TLS")
		} else {
			serverCreds = credentials.NewTLS(src.ServerTLSConfigWith(tlsconfig.AuthorizeMemberOf(td)))
		}
		registryCreds = src.ClientCredentials(spiffeid.RequireFromString(cfg.RegistryID))
	}

	conn, err := grpcx.Dial(cfg.RegistryAddr, registryCreds)
	if err != nil {
		return fmt.Errorf("dial registry %s: %w", cfg.RegistryAddr, err)
	}
	defer conn.Close()

	metrics := xds.NewMetrics(base.Metrics)
	watcher := registrywatch.New(registryv1.NewRegistryServiceClient(conn), log.With("component", "registry"), base.Metrics)
	pub := xds.NewPublisher(log.With("component", "publisher"), metrics, translate.Options{TrustDomain: cfg.TrustDomain, DefaultNamespace: cfg.DefaultNamespace})
	tracker := xds.NewTracker(log.With("component", "xds"), metrics, pub.AddProxy, pub.ChangeAt)
	invalid := newInvalidDocs(base.Metrics)

	base.Admin.AddReadiness("registry", watcher.Check)
	base.Admin.AddReadiness("snapshot", func(context.Context) error {
		if !pub.Ready() {
			return fmt.Errorf("no snapshot translated yet")
		}
		return nil
	})
	registerDebug(base.Admin, tracker, pub)

	srv := grpcx.NewServer(grpcx.ServerOptions{Binary: "controlplane", Registerer: base.Metrics, Creds: serverCreds},
		grpc.MaxConcurrentStreams(1<<20),
		// Proxies keep their streams open for hours; let them ping.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
	)
	xs := xdsserver.NewServer(ctx, pub.Cache, tracker)
	discoveryservice.RegisterAggregatedDiscoveryServiceServer(srv.Server, xs)
	clusterservice.RegisterClusterDiscoveryServiceServer(srv.Server, xs)
	endpointservice.RegisterEndpointDiscoveryServiceServer(srv.Server, xs)
	listenerservice.RegisterListenerDiscoveryServiceServer(srv.Server, xs)
	routeservice.RegisterRouteDiscoveryServiceServer(srv.Server, xs)

	ln, err := run.Listen("xds_addr", cfg.XDSAddr)
	if err != nil {
		return err
	}
	log.Info("serving xDS", "addr", ln.Addr().String(), "registry", cfg.RegistryAddr)

	publish := func(ctx context.Context) error {
		debounce.Run(ctx, watcher.Changed(), cfg.Debounce, cfg.MaxDelay, func() {
			state, at := watcher.Snapshot()
			docs := invalid.decode(log, state.Documents())
			if err := pub.Update(ctx, state.Catalog(), docs, at); err != nil {
				log.Error("snapshot update incomplete; affected proxies keep their previous config", "err", err)
			}
		})
		return nil
	}
	housekeeping := func(ctx context.Context) error {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
				tracker.Behind(time.Minute)
				for _, id := range tracker.Forget(10 * time.Minute) {
					pub.RemoveProxy(id)
				}
			}
		}
	}
	tasks = append(tasks, watcher.Run, publish, housekeeping, srv.Serve(ln, drain))
	return base.Run(ctx, tasks...)
}

// decodeDocs turns stored documents into typed ones, skipping (and
// reporting) any that no longer validate rather than dropping all config.
// Documents that conflict with each other (the registry validates each one
// alone) are reported too; the translator resolves the conflict the way
// meshconfig.OutboundPorts does — a port goes to the service whose name
// sorts first, the other gets no outbound listener.
func decodeDocs(log *slog.Logger, raw []*registryv1.ConfigDocument) (translate.Docs, int) {
	var docs translate.Docs
	bad := 0
	for _, r := range raw {
		d, err := meshconfig.Decode(r.GetKind(), r.GetName(), r.GetBody())
		if err != nil {
			bad++
			log.Error("stored document is invalid; ignoring it", "kind", r.GetKind(), "name", r.GetName(), "err", err)
			continue
		}
		docs = append(docs, d)
	}
	_, conflicts := meshconfig.OutboundPorts(docs)
	for _, err := range conflicts {
		bad++
		log.Error("stored documents conflict; this one's outbound_port is not served", "err", err)
	}
	return docs, bad
}
