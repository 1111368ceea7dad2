package xds

import (
	"errors"
	"fmt"
	"net"
	"strconv"

	corev3 "github.com/switchyard-mesh/switchyard/proto/switchyard/xdssubset/envoy/config/core/v3"
	endpointv3 "github.com/switchyard-mesh/switchyard/proto/switchyard/xdssubset/envoy/config/endpoint/v3"
)

// Endpoints is a validated ClusterLoadAssignment.
type Endpoints struct {
	ClusterName      string
	Overprovisioning float64 // 0: the default 1.4
	Hosts            []Endpoint
}

// Endpoint is one upstream address.
type Endpoint struct {
	Addr     string // host:port
	Hostname string // informational (endpoint.hostname), shown on /clusters
	Weight   uint32
	Priority uint32
	Locality string // region/zone/sub_zone
	Healthy  bool   // HEALTHY or UNKNOWN; others are kept but not picked
}

// ValidateEndpoints turns a ClusterLoadAssignment into Endpoints.
func ValidateEndpoints(cla *endpointv3.ClusterLoadAssignment) (Endpoints, error) {
	if err := checkFields(cla); err != nil {
		return Endpoints{}, err
	}
	e := Endpoints{ClusterName: cla.GetClusterName()}
	if e.ClusterName == "" {
		return e, errors.New("field cluster_name: must be set")
	}
	if f := cla.GetPolicy().GetOverprovisioningFactor(); f != nil {
		if f.GetValue() < 100 {
			return e, errors.New("field policy.overprovisioning_factor: must be at least 100")
		}
		e.Overprovisioning = float64(f.GetValue()) / 100
	}
	for i, le := range cla.GetEndpoints() {
		loc := le.GetLocality()
		locality := loc.GetRegion() + "/" + loc.GetZone() + "/" + loc.GetSubZone()
		for j, ep := range le.GetLbEndpoints() {
			f := fmt.Sprintf("endpoints[%d].lb_endpoints[%d]", i, j)
			addr, err := socketAddr(ep.GetEndpoint().GetAddress(), f+".endpoint.address")
			if err != nil {
				return e, err
			}
			w := uint32(1)
			if lw := ep.GetLoadBalancingWeight(); lw != nil {
				if lw.GetValue() == 0 {
					return e, fmt.Errorf("field %s.load_balancing_weight: must be at least 1", f)
				}
				w = lw.GetValue()
			}
			hs := ep.GetHealthStatus()
			e.Hosts = append(e.Hosts, Endpoint{
				Addr: addr, Hostname: ep.GetEndpoint().GetHostname(), Weight: w, Priority: le.GetPriority(), Locality: locality,
				Healthy: hs == corev3.HealthStatus_UNKNOWN || hs == corev3.HealthStatus_HEALTHY,
			})
		}
	}
	return e, nil
}

func socketAddr(a *corev3.Address, field string) (string, error) {
	sa := a.GetSocketAddress()
	if sa == nil {
		return "", fmt.Errorf("field %s.socket_address: must be set", field)
	}
	if sa.GetProtocol() != corev3.SocketAddress_TCP {
		return "", fmt.Errorf("field %s.socket_address.protocol: only TCP", field)
	}
	if sa.GetAddress() == "" {
		return "", fmt.Errorf("field %s.socket_address.address: must be set", field)
	}
	if sa.GetPortValue() == 0 || sa.GetPortValue() > 65535 {
		return "", fmt.Errorf("field %s.socket_address.port_value: must be in [1, 65535]", field)
	}
	return net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue()))), nil
}
