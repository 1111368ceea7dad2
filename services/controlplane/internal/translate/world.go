package translate

import (
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"strings"
	"sync"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	configv1 "github.com/switchyard-mesh/switchyard/proto/switchyard/config/v1"
	"github.com/switchyard-mesh/switchyard/services/kit/meshconfig"
	"google.golang.org/protobuf/proto"
)

// Built is one resource with its content hash (its xDS resource version).
type Built struct {
	Name     string
	Resource types.Resource
	Hash     string
}

func built(name string, r types.Resource) Built {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
	if err != nil {
		panic(fmt.Sprintf("marshal %s: %v", name, err)) // only for invalid messages we built
	}
	h := fnv.New64a()
	h.Write(b)
	return Built{Name: name, Resource: r, Hash: fmt.Sprintf("%016x", h.Sum64())}
}

// service is everything built once per service.
type service struct {
	name     string
	spiffeID string
	protocol string
	// meshClusters are mTLS EDS clusters (the service and its subsets);
	// plainClusters the same without TLS, shaped for proxyless gRPC.
	meshClusters  []Built
	plainClusters []Built
	// instances and the subset tags in use; endpoints are built per proxy
	// locality (priorities differ) and memoised in byLocality.
	instances   []Instance
	tags        []string
	byLocality  map[[2]string][]Built
	vhost       *routev3.VirtualHost
	vhostHash   string
	apiListener Built
	inbound     Built
	// outboundTCP is the app-facing listener of a TCP service with an
	// outbound_port (port 0: none).
	outboundTCP     Built
	outboundTCPPort uint32
	// deps are services its routes send traffic to (backends, canaries,
	// mirrors), which a caller of this service must also see.
	deps []string
	// allowFrom are the caller patterns of ALLOW rules; nil with
	// restricted=false means anyone may call.
	allowFrom  []string
	restricted bool
	needsRLS   bool
}

// World is the proxy-independent translation of one catalog + documents.
// It is immutable once built and safe for concurrent ForProxy calls.
type World struct {
	opts     Options
	services map[string]*service
	names    []string
	outbound Built
	generic  Built // inbound listener for a sidecar of an unknown service

	mu        sync.Mutex
	views     map[string]*view           // memo: visible-service set → assembled resources
	locals    map[string]Built           // memo: app port + protocol → local app cluster
	snapshots map[string]*cache.Snapshot // memo: proxy class → snapshot
}

// view is the outbound part of a snapshot shared by proxies that see the
// same services.
type view struct {
	clusters, endpoints []Built
	route               Built
	tcp                 []tcpListener // outbound listeners of visible TCP services
}

type tcpListener struct {
	service string
	port    uint32
	Built
}

// Build translates the catalog and documents. Documents are assumed valid
// (meshconfig.Decode produced them).
func Build(cat Catalog, docs Docs, opts Options) *World {
	opts = opts.withDefaults()
	w := &World{opts: opts, services: map[string]*service{}, views: map[string]*view{},
		locals: map[string]Built{}, snapshots: map[string]*cache.Snapshot{}}

	defaults := map[string]*configv1.ServiceDefaults{}
	routes := map[string][]namedRoute{}
	authz := map[string][]namedAuthz{}
	rls := map[string]*configv1.RateLimitPolicy{}
	sorted := slices.Clone(docs)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Key() < sorted[j].Key() })
	for _, d := range sorted {
		switch s := d.Spec.(type) {
		case *configv1.ServiceDefaults:
			defaults[d.Name] = s
		case *configv1.HTTPRoute:
			routes[s.GetService()] = append(routes[s.GetService()], namedRoute{d.Name, s})
		case *configv1.AuthorizationPolicy:
			authz[s.GetService()] = append(authz[s.GetService()], namedAuthz{d.Name, s})
		case *configv1.RateLimitPolicy:
			if prev, ok := rls[s.GetService()]; ok {
				// Several documents for one service: descriptors add up, the
				// first (by name) local bucket and settings win.
				merged := proto.Clone(prev).(*configv1.RateLimitPolicy)
				merged.Descriptors = append(merged.Descriptors, s.GetDescriptors()...)
				if merged.Local == nil {
					merged.Local = s.GetLocal()
				}
				s = merged
			}
			rls[s.GetService()] = s
		}
	}

	instances := map[string]Service{}
	for _, s := range cat.Services {
		instances[s.Name] = s
	}
	// Every service named anywhere gets resources, so routes never point at
	// a missing cluster (an unregistered backend simply has no endpoints).
	subsets := map[string][]string{}
	deps := map[string][]string{}
	names := map[string]bool{}
	for n := range instances {
		names[n] = true
	}
	for svc, nrs := range routes {
		names[svc] = true
		for _, nr := range nrs {
			for _, rule := range nr.route.GetRules() {
				bs := slices.Clone(rule.GetBackends())
				if c := rule.GetCanary(); c != nil {
					bs = append(bs, c.GetBackend())
				}
				if m := rule.GetMirror(); m != nil {
					bs = append(bs, m.GetBackend())
				}
				for _, b := range bs {
					names[b.GetService()] = true
					if b.GetService() != svc {
						deps[svc] = append(deps[svc], b.GetService())
					}
					if b.GetTag() != "" && !slices.Contains(subsets[b.GetService()], b.GetTag()) {
						subsets[b.GetService()] = append(subsets[b.GetService()], b.GetTag())
					}
				}
			}
		}
	}
	for svc := range defaults {
		names[svc] = true
	}
	// Stored documents may conflict on a port (the registry validates each
	// alone); OutboundPorts resolves that the same way the control plane
	// reports it.
	outboundPorts, _ := meshconfig.OutboundPorts(docs)

	for n := range names {
		w.names = append(w.names, n)
	}
	slices.Sort(w.names)
	for _, n := range w.names {
		src := instances[n]
		sd := defaults[n]
		id := src.SPIFFEID
		if id == "" && n == opts.RateLimitService {
			id = opts.RateLimitSPIFFEID
		}
		if id == "" {
			ns := src.Namespace
			if ns == "" {
				ns = opts.DefaultNamespace
			}
			id = fmt.Sprintf("spiffe://%s/ns/%s/sa/%s", opts.TrustDomain, ns, n)
		}
		s := &service{name: n, spiffeID: id, protocol: sd.GetProtocol(), deps: dedupe(deps[n])}
		if s.protocol == "" {
			s.protocol = "http"
		}
		http2 := n == opts.RateLimitService
		tags := append([]string{""}, sortedCopy(subsets[n])...)
		s.instances, s.tags, s.byLocality = src.Instances, tags, map[[2]string][]Built{}
		for _, tag := range tags {
			cn := clusterName(n, tag)
			s.meshClusters = append(s.meshClusters, built(cn, buildCluster(cn, sd, id, http2)))
			s.plainClusters = append(s.plainClusters, built(cn, proxylessCluster(buildCluster(cn, sd, "", http2))))
		}
		s.vhost = buildVirtualHost(n, []string{n, n + ":*"}, sd, routes[n])
		s.vhostHash = built(n, s.vhost).Hash
		s.apiListener = built(n, apiListener(n, s.vhost))
		for _, a := range authz[n] {
			if a.policy.GetAction() == "deny" {
				continue
			}
			s.restricted = true
			for _, r := range a.policy.GetRules() {
				if len(r.GetFrom()) == 0 {
					s.allowFrom = append(s.allowFrom, "*")
				}
				s.allowFrom = append(s.allowFrom, r.GetFrom()...)
			}
		}
		s.needsRLS = len(rls[n].GetDescriptors()) > 0
		s.inbound = built(ListenerInbound, inboundListener(opts, inboundPolicy{
			service: n, protocol: s.protocol, authz: authz[n], rateLimit: rls[n],
		}))
		if port := outboundPorts[n]; port != 0 && port != opts.InboundPort && port != opts.OutboundPort {
			s.outboundTCPPort = port
			s.outboundTCP = built(OutboundTCPListener(n), outboundTCPListener(n, port))
		}
		w.services[n] = s
	}
	w.outbound = built(ListenerOutbound, outboundListener(opts))
	w.generic = built(ListenerInbound, inboundListener(opts, inboundPolicy{service: "unknown", protocol: "http"}))
	return w
}

// proxylessCluster reshapes a cluster for grpc-go, which supports
// round_robin, ring_hash and least_request only.
func proxylessCluster(c *clusterv3.Cluster) *clusterv3.Cluster {
	switch c.GetLbPolicy() {
	case clusterv3.Cluster_MAGLEV:
		c.LbPolicy = clusterv3.Cluster_RING_HASH
	case clusterv3.Cluster_RANDOM:
		c.LbPolicy = clusterv3.Cluster_ROUND_ROBIN
	}
	c.TypedExtensionProtocolOptions = nil
	return c
}

// Services lists the service names the world knows, sorted.
func (w *World) Services() []string { return slices.Clone(w.names) }

// SPIFFEID of a service (or the default form for an unknown one).
func (w *World) SPIFFEID(service, namespace string) string {
	if s, ok := w.services[service]; ok {
		return s.spiffeID
	}
	if namespace == "" {
		namespace = w.opts.DefaultNamespace
	}
	return fmt.Sprintf("spiffe://%s/ns/%s/sa/%s", w.opts.TrustDomain, namespace, service)
}

// Visible lists the services proxy p may call: those without an ALLOW
// policy or whose policy admits p's SPIFFE ID, plus what their routes send
// traffic to, plus the rate limit service when p's own policies need it.
// A proxy whose service is unknown sees everything.
func (w *World) Visible(p Proxy) []string {
	if p.Service == "" {
		return w.Services()
	}
	id := w.SPIFFEID(p.Service, p.Namespace)
	seen := map[string]bool{}
	var add func(n string)
	add = func(n string) {
		if seen[n] {
			return
		}
		if _, ok := w.services[n]; !ok {
			return
		}
		seen[n] = true
		for _, d := range w.services[n].deps {
			add(d)
		}
	}
	for _, n := range w.names {
		if s := w.services[n]; !s.restricted || matchesAny(s.allowFrom, id) {
			add(n)
		}
	}
	if s, ok := w.services[p.Service]; ok && s.needsRLS {
		add(w.opts.RateLimitService)
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func matchesAny(patterns []string, id string) bool {
	for _, p := range patterns {
		switch {
		case p == "*":
			return true
		case strings.HasSuffix(p, "*") && strings.HasPrefix(id, strings.TrimSuffix(p, "*")):
			return true
		case p == id:
			return true
		}
	}
	return false
}

// Resources is one proxy's translated configuration.
type Resources struct {
	Listeners, Routes, Clusters, Endpoints []Built
}

// ForProxy assembles the resources for one proxy.
func (w *World) ForProxy(p Proxy) Resources {
	visible := w.Visible(p)
	loc := [2]string{p.Region, p.Zone}
	if p.Kind == Proxyless {
		var r Resources
		for _, n := range visible {
			s := w.services[n]
			r.Listeners = append(r.Listeners, s.apiListener)
			r.Clusters = append(r.Clusters, s.plainClusters...)
			r.Endpoints = append(r.Endpoints, w.endpoints(s, loc)...)
		}
		return r
	}
	v := w.view(visible, loc)
	r := Resources{
		Listeners: []Built{w.outbound},
		Routes:    []Built{v.route},
		Clusters:  slices.Clone(v.clusters),
		Endpoints: v.endpoints,
	}
	if p.Kind == Sidecar {
		inbound, protocol := w.generic, "http"
		if s, ok := w.services[p.Service]; ok {
			inbound, protocol = s.inbound, s.protocol
		}
		r.Listeners = append(r.Listeners, inbound)
		port := p.AppPort
		if port == 0 {
			port = 8080
		}
		r.Clusters = append(r.Clusters, w.localCluster(port, protocol))
		// A sidecar listens for the TCP services it may call, except its
		// own service and any port its app uses: the app shares the
		// sidecar's network namespace and typically listens on its own
		// service's port, which the sidecar must not take from it.
		for _, l := range v.tcp {
			if l.service != p.Service && l.port != port {
				r.Listeners = append(r.Listeners, l.Built)
			}
		}
	}
	return r
}

func (w *World) localCluster(port uint32, protocol string) Built {
	key := fmt.Sprintf("%d/%s", port, protocol)
	w.mu.Lock()
	defer w.mu.Unlock()
	b, ok := w.locals[key]
	if !ok {
		b = built(ClusterLocalApp, localAppCluster(port, protocol))
		w.locals[key] = b
	}
	return b
}

// SnapshotFor is ForProxy(p).Snapshot(), shared between proxies of the same
// class (kind, service, namespace, app port, locality): their resources are identical,
// and a snapshot is immutable once built, so 1,000 proxies of 100 services
// cost 100 snapshots.
func (w *World) SnapshotFor(p Proxy) (*cache.Snapshot, error) {
	key := fmt.Sprintf("%d|%s|%s|%d|%s|%s", p.Kind, p.Service, p.Namespace, p.AppPort, p.Region, p.Zone)
	w.mu.Lock()
	s, ok := w.snapshots[key]
	w.mu.Unlock()
	if ok {
		return s, nil
	}
	s, err := w.ForProxy(p).Snapshot()
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	w.snapshots[key] = s
	w.mu.Unlock()
	return s, nil
}

// endpoints returns a service's load assignments as seen from a proxy
// locality. Caller must not hold mu.
func (w *World) endpoints(s *service, loc [2]string) []Built {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.endpointsLocked(s, loc)
}

func (w *World) endpointsLocked(s *service, loc [2]string) []Built {
	if b, ok := s.byLocality[loc]; ok {
		return b
	}
	var out []Built
	for _, tag := range s.tags {
		cn := clusterName(s.name, tag)
		out = append(out, built(cn, buildLoadAssignment(cn, s.instances, tag, loc[0], loc[1])))
	}
	s.byLocality[loc] = out
	return out
}

func (w *World) view(visible []string, loc [2]string) *view {
	key := strings.Join(visible, ",") + "@" + loc[0] + "/" + loc[1]
	w.mu.Lock()
	defer w.mu.Unlock()
	if v, ok := w.views[key]; ok {
		return v
	}
	v := &view{}
	rc := &routev3.RouteConfiguration{Name: RouteOutbound}
	for _, n := range visible {
		s := w.services[n]
		v.clusters = append(v.clusters, s.meshClusters...)
		v.endpoints = append(v.endpoints, w.endpointsLocked(s, loc)...)
		if s.protocol != "tcp" {
			rc.VirtualHosts = append(rc.VirtualHosts, s.vhost)
		}
		if s.outboundTCPPort != 0 {
			v.tcp = append(v.tcp, tcpListener{service: n, port: s.outboundTCPPort, Built: s.outboundTCP})
		}
	}
	v.route = built(RouteOutbound, rc)
	w.views[key] = v
	return v
}

// Snapshot turns resources into a go-control-plane snapshot with one
// version per type (a hash of that type's resources, so a type whose
// content did not change is not pushed again) and a precomputed delta
// version map, and checks it is consistent.
func (r Resources) Snapshot() (*cache.Snapshot, error) {
	s := &cache.Snapshot{VersionMap: map[string]map[string]string{}}
	for _, t := range []struct {
		url   string
		items []Built
	}{
		{resource.ListenerType, r.Listeners},
		{resource.RouteType, r.Routes},
		{resource.ClusterType, r.Clusters},
		{resource.EndpointType, r.Endpoints},
	} {
		h := fnv.New64a()
		items := make([]types.Resource, 0, len(t.items))
		versions := make(map[string]string, len(t.items))
		for _, b := range t.items {
			h.Write([]byte(b.Name))
			h.Write([]byte{'='})
			h.Write([]byte(b.Hash))
			h.Write([]byte{';'})
			items = append(items, b.Resource)
			versions[b.Name] = b.Hash
		}
		s.Resources[cache.GetResponseType(t.url)] = cache.NewResources(fmt.Sprintf("%016x", h.Sum64()), items)
		s.VersionMap[t.url] = versions
	}
	if err := s.Consistent(); err != nil {
		return nil, fmt.Errorf("inconsistent snapshot: %w", err)
	}
	return s, nil
}

func dedupe(in []string) []string {
	out := sortedCopy(in)
	return slices.Compact(out)
}

func sortedCopy(in []string) []string {
	out := slices.Clone(in)
	slices.Sort(out)
	return out
}
