package xds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	clusterv3 "github.com/switchyard-mesh/switchyard/proto/switchyard/xdssubset/envoy/config/cluster/v3"
	corev3 "github.com/switchyard-mesh/switchyard/proto/switchyard/xdssubset/envoy/config/core/v3"
	endpointv3 "github.com/switchyard-mesh/switchyard/proto/switchyard/xdssubset/envoy/config/endpoint/v3"
	listenerv3 "github.com/switchyard-mesh/switchyard/proto/switchyard/xdssubset/envoy/config/listener/v3"
	routev3 "github.com/switchyard-mesh/switchyard/proto/switchyard/xdssubset/envoy/config/route/v3"
	discoveryv3 "github.com/switchyard-mesh/switchyard/proto/switchyard/xdssubset/envoy/service/discovery/v3"
	statuspb "github.com/switchyard-mesh/switchyard/proto/switchyard/xdssubset/google/rpc"
)

// Node identifies this proxy to the control plane.
type Node struct {
	ID       string // e.g. sidecar~10.0.0.5~orders-1
	Cluster  string // the workload's service name
	Region   string
	Zone     string
	Metadata map[string]string // sent as string values; the control plane reads service, namespace, kind, app_port
}

// ClientConfig configures a Client.
type ClientConfig struct {
	Conn     grpc.ClientConnInterface
	Node     Node
	Log      *slog.Logger
	Metrics  prometheus.Registerer
	Backoff  time.Duration // first reconnect delay (default 500 ms), doubling to 30 s
	OnUpdate func(*Snapshot)
}

// Client is an ADS client. It subscribes to all listeners and clusters, then
// to the routes and endpoints they name, and hands each accepted snapshot to
// OnUpdate.
type Client struct {
	cfg ClientConfig
	log *slog.Logger

	mu    sync.Mutex
	snap  *Snapshot
	nacks map[string]string // type URL → last NACK error, for /config_dump

	updates   *prometheus.CounterVec
	connected prometheus.Gauge
}

// NewClient returns a client; call Run to connect.
func NewClient(cfg ClientConfig) *Client {
	if cfg.Backoff <= 0 {
		cfg.Backoff = 500 * time.Millisecond
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	c := &Client{cfg: cfg, log: cfg.Log.With("component", "xds"), snap: (&Snapshot{}).clone(), nacks: map[string]string{},
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_sidecar_xds_updates_total",
			Help: "xDS responses by type and result (ack, nack)."}, []string{"type", "result"}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "switchyard_sidecar_xds_connected",
			Help: "1 while the ADS stream to the control plane is up."}),
	}
	for _, typ := range []string{"LDS", "RDS", "CDS", "EDS"} {
		c.updates.WithLabelValues(typ, "ack")
		c.updates.WithLabelValues(typ, "nack")
	}
	if cfg.Metrics != nil {
		cfg.Metrics.MustRegister(c.updates, c.connected)
	}
	return c
}

// Snapshot returns the last accepted configuration.
func (c *Client) Snapshot() *Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.snap
}

// Nacks returns the last rejection error per type URL.
func (c *Client) Nacks() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]string, len(c.nacks))
	for k, v := range c.nacks {
		out[k] = v
	}
	return out
}

// Run keeps an ADS stream open until ctx ends, reconnecting with backoff.
// The last accepted snapshot stays in force while disconnected.
func (c *Client) Run(ctx context.Context) error {
	backoff := c.cfg.Backoff
	for {
		start := time.Now()
		err := c.stream(ctx)
		c.connected.Set(0)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(start) > 30*time.Second {
			backoff = c.cfg.Backoff
		}
		c.log.Warn("ADS stream ended; keeping last config", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// typeOrder is the order of first subscription (clusters before listeners,
// as Envoy does, so routes find their clusters).
var typeOrder = []string{ClusterType, ListenerType}

type subscription struct {
	names   []string // nil: wildcard
	version string
	nonce   string
}

// adsMethod and adsStream describe Envoy's ADS call
// (envoy.service.discovery.v3.AggregatedDiscoveryService), made with the
// subset's messages.
const adsMethod = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"

var adsStream = grpc.StreamDesc{StreamName: "StreamAggregatedResources", ClientStreams: true, ServerStreams: true}

func (c *Client) stream(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := c.cfg.Conn.NewStream(ctx, &adsStream, adsMethod)
	if err != nil {
		return fmt.Errorf("open ADS stream: %w", err)
	}
	node := c.node()
	subs := map[string]*subscription{}
	snap := c.Snapshot()
	send := func(typeURL string, sub *subscription, nackErr error) error {
		req := &discoveryv3.DiscoveryRequest{Node: node, TypeUrl: typeURL, ResourceNames: sub.names, VersionInfo: sub.version, ResponseNonce: sub.nonce}
		if nackErr != nil {
			req.ErrorDetail = &statuspb.Status{Code: int32(codes.InvalidArgument), Message: nackErr.Error()}
		}
		node = nil // only the first request carries the node
		return st.SendMsg(req)
	}
	for _, t := range typeOrder {
		// Resume from what we accepted before, so a restarted control plane
		// that serves the same version does not resend it needlessly.
		subs[t] = &subscription{version: snap.Versions[t]}
		if err := send(t, subs[t], nil); err != nil {
			return fmt.Errorf("subscribe %s: %w", t, err)
		}
	}
	// Names of dependent resources (routes, endpoints) follow the accepted snapshot.
	follow := func(s *Snapshot) error {
		for _, dep := range []struct {
			typeURL string
			names   []string
		}{{RouteType, s.routeNames()}, {EndpointType, s.edsNames()}} {
			names := slices.Compact(slices.Sorted(slices.Values(dep.names)))
			if names == nil {
				names = []string{}
			}
			sub, ok := subs[dep.typeURL]
			if ok && slices.Equal(sub.names, names) {
				continue
			}
			if !ok {
				sub = &subscription{version: s.Versions[dep.typeURL]}
				subs[dep.typeURL] = sub
				if len(names) == 0 {
					continue
				}
			}
			sub.names = names
			if err := send(dep.typeURL, sub, nil); err != nil {
				return fmt.Errorf("subscribe %s: %w", dep.typeURL, err)
			}
		}
		return nil
	}
	if err := follow(snap); err != nil {
		return err
	}
	c.connected.Set(1)
	c.log.Info("ADS stream up")
	for {
		resp := &discoveryv3.DiscoveryResponse{}
		if err := st.RecvMsg(resp); err != nil {
			return fmt.Errorf("receive: %w", err)
		}
		sub, ok := subs[resp.GetTypeUrl()]
		if !ok {
			c.log.Warn("response for a type never subscribed", "type", resp.GetTypeUrl())
			continue
		}
		sub.nonce = resp.GetNonce()
		next, err := c.apply(resp)
		short := shortType(resp.GetTypeUrl())
		if err != nil {
			c.updates.WithLabelValues(short, "nack").Inc()
			c.log.Error("rejecting xDS update (NACK)", "type", short, "version", resp.GetVersionInfo(), "err", err)
			c.mu.Lock()
			c.nacks[resp.GetTypeUrl()] = err.Error()
			c.mu.Unlock()
			if err := send(resp.GetTypeUrl(), sub, err); err != nil {
				return fmt.Errorf("NACK %s: %w", short, err)
			}
			continue
		}
		sub.version = resp.GetVersionInfo()
		c.updates.WithLabelValues(short, "ack").Inc()
		c.log.Info("accepted xDS update", "type", short, "version", sub.version, "resources", len(resp.GetResources()))
		c.mu.Lock()
		c.snap = next
		delete(c.nacks, resp.GetTypeUrl())
		c.mu.Unlock()
		if err := send(resp.GetTypeUrl(), sub, nil); err != nil {
			return fmt.Errorf("ACK %s: %w", short, err)
		}
		if c.cfg.OnUpdate != nil {
			c.cfg.OnUpdate(next)
		}
		if err := follow(next); err != nil {
			return err
		}
	}
}

func (c *Client) node() *corev3.Node {
	n := &corev3.Node{Id: c.cfg.Node.ID, Cluster: c.cfg.Node.Cluster, UserAgentName: "switchyard-sidecar"}
	if len(c.cfg.Node.Metadata) > 0 {
		fields := map[string]*structpb.Value{}
		for k, v := range c.cfg.Node.Metadata {
			fields[k] = structpb.NewStringValue(v)
		}
		n.Metadata = &structpb.Struct{Fields: fields}
	}
	if c.cfg.Node.Region != "" || c.cfg.Node.Zone != "" {
		n.Locality = &corev3.Locality{Region: c.cfg.Node.Region, Zone: c.cfg.Node.Zone}
	}
	return n
}

func shortType(t string) string {
	switch t {
	case ListenerType:
		return "LDS"
	case RouteType:
		return "RDS"
	case ClusterType:
		return "CDS"
	case EndpointType:
		return "EDS"
	}
	return t
}

// apply validates every resource of resp; all must pass (SotW responses are
// accepted or rejected whole). It returns the next snapshot.
func (c *Client) apply(resp *discoveryv3.DiscoveryResponse) (*Snapshot, error) {
	next := c.Snapshot().clone()
	raw := map[string]*anypb.Any{}
	var errs []error
	for i, a := range resp.GetResources() {
		if a.GetTypeUrl() != resp.GetTypeUrl() {
			errs = append(errs, fmt.Errorf("resources[%d]: type %s in a %s response", i, a.GetTypeUrl(), resp.GetTypeUrl()))
			continue
		}
		m, err := decodeResource(a)
		if err != nil {
			errs = append(errs, fmt.Errorf("resources[%d]: %w", i, err))
			continue
		}
		name, err := c.validateInto(next, m)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", shortType(resp.GetTypeUrl()), name, err))
			continue
		}
		if _, dup := raw[name]; dup {
			errs = append(errs, fmt.Errorf("%s %q: duplicate resource name", shortType(resp.GetTypeUrl()), name))
		}
		raw[name] = a
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	// State of the world: resources not in the response are gone. For RDS
	// and EDS, only names we still subscribe to are kept.
	switch resp.GetTypeUrl() {
	case ListenerType:
		prune(next.Listeners, raw)
	case ClusterType:
		prune(next.Clusters, raw)
	case RouteType:
		prune(next.Routes, raw)
	case EndpointType:
		prune(next.Endpoints, raw)
	}
	next.Raw[resp.GetTypeUrl()] = raw
	next.Versions[resp.GetTypeUrl()] = resp.GetVersionInfo()
	return next, nil
}

func prune[V any](m map[string]V, keep map[string]*anypb.Any) {
	for k := range m {
		if _, ok := keep[k]; !ok {
			delete(m, k)
		}
	}
}

func (c *Client) validateInto(s *Snapshot, m proto.Message) (string, error) {
	switch r := m.(type) {
	case *listenerv3.Listener:
		lc, err := ValidateListener(r)
		if err == nil {
			s.Listeners[lc.Name] = lc
		}
		return r.GetName(), err
	case *routev3.RouteConfiguration:
		t, err := ValidateRouteConfig(r)
		if err == nil {
			s.Routes[t.Name] = t
		}
		return r.GetName(), err
	case *clusterv3.Cluster:
		cc, err := ValidateCluster(r)
		if err == nil {
			s.Clusters[cc.Name] = cc
		}
		return r.GetName(), err
	case *endpointv3.ClusterLoadAssignment:
		e, err := ValidateEndpoints(r)
		if err == nil {
			s.Endpoints[e.ClusterName] = e
		}
		return r.GetClusterName(), err
	}
	return "", fmt.Errorf("unsupported resource type %T", m)
}

// SortedNames lists a map's keys in order, for stable admin output.
func SortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
