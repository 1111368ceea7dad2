// Package xds configures the proxy from a control plane over ADS (Envoy v3,
// state of the world). Each resource type has a pure translator
// (ValidateListener, ValidateRouteConfig, ValidateCluster,
// ValidateEndpoints) from the Envoy proto to an internal config struct; any
// field this proxy does not implement makes the response a NACK whose
// error_detail names the field. The Client keeps the last accepted config
// when the control plane goes away.
package xds

import (
	"maps"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/route"
)

// Snapshot is one complete, accepted configuration. Snapshots are immutable.
type Snapshot struct {
	Listeners map[string]ListenerConfig
	Routes    map[string]*route.Table
	Clusters  map[string]ClusterConfig
	Endpoints map[string]Endpoints // by EDS service name
	// Versions are the accepted version_info per type URL.
	Versions map[string]string
	// Raw holds the accepted resources per type URL, for /config_dump.
	Raw map[string]map[string]*anypb.Any
}

func (s *Snapshot) clone() *Snapshot {
	n := &Snapshot{
		Listeners: maps.Clone(s.Listeners), Routes: maps.Clone(s.Routes),
		Clusters: maps.Clone(s.Clusters), Endpoints: maps.Clone(s.Endpoints),
		Versions: maps.Clone(s.Versions), Raw: maps.Clone(s.Raw),
	}
	if n.Listeners == nil {
		n.Listeners, n.Routes, n.Clusters, n.Endpoints = map[string]ListenerConfig{}, map[string]*route.Table{}, map[string]ClusterConfig{}, map[string]Endpoints{}
		n.Versions, n.Raw = map[string]string{}, map[string]map[string]*anypb.Any{}
	}
	return n
}

// routeNames are the RDS names the snapshot's listeners refer to.
func (s *Snapshot) routeNames() []string {
	var names []string
	for _, l := range s.Listeners {
		if l.HTTP != nil && l.HTTP.RouteConfigName != "" {
			names = append(names, l.HTTP.RouteConfigName)
		}
	}
	return names
}

// edsNames are the EDS service names the snapshot's clusters refer to.
func (s *Snapshot) edsNames() []string {
	var names []string
	for _, c := range s.Clusters {
		if c.EDSServiceName != "" {
			names = append(names, c.EDSServiceName)
		}
	}
	return names
}

// Warm reports whether everything the listeners and clusters refer to has
// arrived: only then may the proxy report ready.
func (s *Snapshot) Warm() bool {
	if _, ok := s.Versions[ListenerType]; !ok {
		return false
	}
	if _, ok := s.Versions[ClusterType]; !ok {
		return false
	}
	for _, n := range s.routeNames() {
		if _, ok := s.Routes[n]; !ok {
			return false
		}
	}
	for _, n := range s.edsNames() {
		if _, ok := s.Endpoints[n]; !ok {
			return false
		}
	}
	return true
}
