// Package translate compiles the service catalog and the operators' config
// documents into the Envoy v3 resources one proxy receives: listeners,
// routes, clusters and endpoints. It is pure: no sockets, no clocks, the same
// input always gives the same output, so it is tested with golden files.
//
// The work is split in two. Build does everything that does not depend on
// the proxy once per catalog change (per-service clusters, endpoints and
// virtual hosts, each with a content hash); World.ForProxy then selects and
// assembles what one proxy may see, sharing the built resources between
// proxies instead of rebuilding them.
package translate

import (
	"fmt"

	"github.com/switchyard-mesh/switchyard/services/kit/meshconfig"
)

// Catalog is the translator's view of the registry: services and their
// instances.
type Catalog struct {
	Services []Service
}

// Service is one named service.
type Service struct {
	Name string
	// Namespace for the default SPIFFE ID (default "default").
	Namespace string
	// SPIFFEID overrides spiffe://<trust domain>/ns/<namespace>/sa/<name>,
	// e.g. for system components.
	SPIFFEID  string
	Instances []Instance
}

// Health of an instance as the registry reports it.
type Health int

// Health values.
const (
	HealthUnknown Health = iota
	HealthPassing
	HealthWarning
	HealthCritical
)

// Instance is one endpoint of a service.
type Instance struct {
	ID      string
	Address string
	Port    uint32
	Health  Health
	// Weight for load balancing (default 1).
	Weight uint32
	Region string
	Zone   string
	Tags   []string
}

// ProxyKind is what sits at the other end of the xDS stream.
type ProxyKind int

// Proxy kinds.
const (
	// Sidecar gets an inbound listener for its own service and an outbound
	// listener for the services it may call.
	Sidecar ProxyKind = iota
	// Gateway gets the outbound listener only.
	Gateway
	// Proxyless is a gRPC client library: one API listener per service,
	// named after the service, with an inline route table, and no TLS.
	Proxyless
)

func (k ProxyKind) String() string {
	switch k {
	case Sidecar:
		return "sidecar"
	case Gateway:
		return "gateway"
	case Proxyless:
		return "proxyless"
	}
	return fmt.Sprintf("ProxyKind(%d)", int(k))
}

// Proxy identifies the proxy a snapshot is for.
type Proxy struct {
	ID   string
	Kind ProxyKind
	// Service the proxy fronts; empty means unknown, and the proxy sees every
	// service.
	Service   string
	Namespace string
	// AppPort is the local application's port behind the inbound listener
	// (sidecars only; default 8080).
	AppPort uint32
	// Region and Zone locate the proxy: endpoints in its zone get priority
	// 0, the rest of its region next, other regions last, so traffic stays
	// local and spills over as local endpoints become unhealthy. Empty: one
	// priority for all.
	Region, Zone string
}

// Options are mesh-wide translation settings.
type Options struct {
	TrustDomain string // default "switchyard.local"
	// DefaultNamespace is the namespace of services and proxies that do not
	// name one (default "default").
	DefaultNamespace string
	InboundPort      uint32 // default 15006
	OutboundPort     uint32 // default 15001
	// RateLimitService is the catalog service implementing the Envoy RLS API
	// (default "ratelimit"); its cluster is added for proxies that need it.
	RateLimitService string
	// RateLimitSPIFFEID is its identity (default spiffe://<td>/system/ratelimit).
	RateLimitSPIFFEID string
}

func (o Options) withDefaults() Options {
	if o.TrustDomain == "" {
		o.TrustDomain = "switchyard.local"
	}
	if o.DefaultNamespace == "" {
		o.DefaultNamespace = "default"
	}
	if o.InboundPort == 0 {
		o.InboundPort = 15006
	}
	if o.OutboundPort == 0 {
		o.OutboundPort = 15001
	}
	if o.RateLimitService == "" {
		o.RateLimitService = "ratelimit"
	}
	if o.RateLimitSPIFFEID == "" {
		o.RateLimitSPIFFEID = "spiffe://" + o.TrustDomain + "/system/ratelimit"
	}
	return o
}

// Docs holds the validated config documents.
type Docs []meshconfig.Document
