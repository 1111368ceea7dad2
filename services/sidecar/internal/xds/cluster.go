package xds

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	clusterv3 "github.com/switchyard-mesh/switchyard/proto/switchyard/xdssubset/envoy/config/cluster/v3"
	corev3 "github.com/switchyard-mesh/switchyard/proto/switchyard/xdssubset/envoy/config/core/v3"
	tlsv3 "github.com/switchyard-mesh/switchyard/proto/switchyard/xdssubset/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/switchyard-mesh/switchyard/proto/switchyard/xdssubset/envoy/extensions/upstreams/http/v3"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/breaker"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/lb"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/outlier"
)

// ClusterConfig is a validated Cluster.
type ClusterConfig struct {
	Name           string
	EDSServiceName string     // for EDS clusters; Endpoints is nil
	Endpoints      *Endpoints // for STATIC clusters
	ConnectTimeout time.Duration
	LBPolicy       lb.Policy
	MinRingSize    int
	ChoiceCount    int
	Limits         breaker.Limits
	// RetryBudget is the share of requests that may be retried (0.2 = 20 %),
	// 0 when the cluster has no budget; RetryBudgetMin is the floor of
	// retries per budget window.
	RetryBudget    float64
	RetryBudgetMin int
	Outlier        *outlier.Config // nil: disabled
	TLS            *UpstreamTLS    // nil: plaintext
	Protocol       UpstreamProtocol
	// IdleTimeout closes pooled connections unused for this long (0: the
	// proxy's default); MaxConnectionDuration retires connections this old
	// (0: never). From common_http_protocol_options.
	IdleTimeout           time.Duration
	MaxConnectionDuration time.Duration
}

// UpstreamProtocol is the HTTP version a cluster speaks to its endpoints,
// from the cluster's HttpProtocolOptions.
type UpstreamProtocol int

const (
	// UpstreamHTTP1 is Envoy's default: HTTP/1.1 for every request.
	UpstreamHTTP1 UpstreamProtocol = iota
	// UpstreamHTTP2 is explicit_http_config.http2_protocol_options: h2 (h2c
	// without TLS) for every request.
	UpstreamHTTP2
	// UpstreamAsDownstream is use_downstream_protocol_config with both
	// versions: each request goes upstream in the version it arrived in.
	UpstreamAsDownstream
)

func (p UpstreamProtocol) String() string {
	switch p {
	case UpstreamHTTP2:
		return "http2"
	case UpstreamAsDownstream:
		return "downstream"
	}
	return "http1"
}

// UpstreamTLS is mTLS towards the upstream with the local SVID.
type UpstreamTLS struct {
	SNI string
	// PeerIDs are the SPIFFE IDs the upstream may present (from
	// match_typed_subject_alt_names, URI type, exact); empty means any ID in
	// the trust domain.
	PeerIDs []string
	ALPN    []string
}

const tlsSocketName = "envoy.transport_sockets.tls"

const httpProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// ValidateCluster turns c into a ClusterConfig, rejecting fields and values
// this proxy does not implement.
func ValidateCluster(c *clusterv3.Cluster) (ClusterConfig, error) {
	if err := checkFields(c); err != nil {
		return ClusterConfig{}, err
	}
	cc := ClusterConfig{Name: c.GetName(), ConnectTimeout: 5 * time.Second, Limits: breaker.DefaultLimits()}
	if cc.Name == "" {
		return cc, errors.New("field name: must be set")
	}
	if d := c.GetConnectTimeout(); d != nil {
		cc.ConnectTimeout = d.AsDuration()
		if cc.ConnectTimeout <= 0 {
			return cc, errors.New("field connect_timeout: must be positive")
		}
	}
	switch c.GetType() {
	case clusterv3.Cluster_EDS:
		if err := checkConfigSource(c.GetEdsClusterConfig().GetEdsConfig(), "eds_cluster_config.eds_config"); err != nil {
			return cc, err
		}
		cc.EDSServiceName = c.GetEdsClusterConfig().GetServiceName()
		if cc.EDSServiceName == "" {
			cc.EDSServiceName = cc.Name
		}
		if c.GetLoadAssignment() != nil {
			return cc, errors.New("field load_assignment: not allowed with type EDS")
		}
	case clusterv3.Cluster_STATIC:
		if c.GetLoadAssignment() == nil {
			return cc, errors.New("field load_assignment: required for type STATIC")
		}
		eps, err := ValidateEndpoints(c.GetLoadAssignment())
		if err != nil {
			return cc, fmt.Errorf("field load_assignment: %w", err)
		}
		cc.Endpoints = &eps
	default:
		return cc, fmt.Errorf("field type: %s is not supported (EDS or STATIC)", c.GetType())
	}
	switch c.GetLbPolicy() {
	case clusterv3.Cluster_ROUND_ROBIN:
		cc.LBPolicy = lb.RoundRobin
	case clusterv3.Cluster_LEAST_REQUEST:
		cc.LBPolicy = lb.LeastRequest
		if n := c.GetLeastRequestLbConfig().GetChoiceCount(); n != nil {
			if n.GetValue() < 2 {
				return cc, errors.New("field least_request_lb_config.choice_count: must be at least 2")
			}
			cc.ChoiceCount = int(n.GetValue())
		}
	case clusterv3.Cluster_RING_HASH:
		cc.LBPolicy = lb.RingHash
		if n := c.GetRingHashLbConfig().GetMinimumRingSize(); n != nil {
			if n.GetValue() == 0 || n.GetValue() > 1<<23 {
				return cc, errors.New("field ring_hash_lb_config.minimum_ring_size: must be in [1, 8388608]")
			}
			cc.MinRingSize = int(n.GetValue())
		}
	case clusterv3.Cluster_MAGLEV:
		cc.LBPolicy = lb.Maglev
	case clusterv3.Cluster_RANDOM:
		cc.LBPolicy = lb.Random
	default:
		return cc, fmt.Errorf("field lb_policy: %s is not supported", c.GetLbPolicy())
	}
	if c.GetLeastRequestLbConfig() != nil && cc.LBPolicy != lb.LeastRequest {
		return cc, errors.New("field least_request_lb_config: set but lb_policy is not LEAST_REQUEST")
	}
	if c.GetRingHashLbConfig() != nil && cc.LBPolicy != lb.RingHash {
		return cc, errors.New("field ring_hash_lb_config: set but lb_policy is not RING_HASH")
	}
	if err := cc.breakers(c.GetCircuitBreakers()); err != nil {
		return cc, err
	}
	if od := c.GetOutlierDetection(); od != nil {
		o, err := validateOutlier(od)
		if err != nil {
			return cc, err
		}
		cc.Outlier = &o
	}
	if ts := c.GetTransportSocket(); ts != nil {
		t, err := validateUpstreamTLS(ts)
		if err != nil {
			return cc, fmt.Errorf("field transport_socket: %w", err)
		}
		cc.TLS = t
	}
	for k, v := range c.GetTypedExtensionProtocolOptions() {
		if k != httpProtocolOptionsKey {
			return cc, fmt.Errorf("field typed_extension_protocol_options[%q]: not supported", k)
		}
		var opts httpv3.HttpProtocolOptions
		if err := unpack(v, &opts); err != nil {
			return cc, fmt.Errorf("field typed_extension_protocol_options[%q]: %w", k, err)
		}
		cc.Protocol = upstreamProtocol(&opts)
		if err := cc.pool(opts.GetCommonHttpProtocolOptions()); err != nil {
			return cc, fmt.Errorf("field typed_extension_protocol_options[%q].common_http_protocol_options.%w", k, err)
		}
	}
	return cc, nil
}

// pool takes the connection lifetimes of common_http_protocol_options;
// an error names the field.
func (cc *ClusterConfig) pool(o *corev3.HttpProtocolOptions) error {
	if d := o.GetIdleTimeout(); d != nil {
		if cc.IdleTimeout = d.AsDuration(); cc.IdleTimeout <= 0 {
			return errors.New("idle_timeout: must be positive (Envoy's 0, no timeout, is not supported)")
		}
	}
	if d := o.GetMaxConnectionDuration(); d != nil {
		if cc.MaxConnectionDuration = d.AsDuration(); cc.MaxConnectionDuration <= 0 {
			return errors.New("max_connection_duration: must be positive")
		}
	}
	return nil
}

func upstreamProtocol(opts *httpv3.HttpProtocolOptions) UpstreamProtocol {
	if e := opts.GetExplicitHttpConfig(); e != nil {
		if e.GetHttp2ProtocolOptions() != nil {
			return UpstreamHTTP2
		}
		return UpstreamHTTP1
	}
	if d := opts.GetUseDownstreamProtocolConfig(); d != nil {
		h1, h2 := d.GetHttpProtocolOptions() != nil, d.GetHttp2ProtocolOptions() != nil
		switch {
		case h1 && !h2:
			return UpstreamHTTP1 // only HTTP/1 is configured
		case h2 && !h1:
			return UpstreamHTTP2
		}
		return UpstreamAsDownstream
	}
	return UpstreamHTTP1
}

func checkConfigSource(cs *corev3.ConfigSource, field string) error {
	if cs.GetAds() == nil {
		return fmt.Errorf("field %s: only ads config sources are supported", field)
	}
	if v := cs.GetResourceApiVersion(); v != corev3.ApiVersion_AUTO && v != corev3.ApiVersion_V3 {
		return fmt.Errorf("field %s.resource_api_version: only V3", field)
	}
	return nil
}

func (cc *ClusterConfig) breakers(cb *clusterv3.CircuitBreakers) error {
	for i, th := range cb.GetThresholds() {
		f := fmt.Sprintf("circuit_breakers.thresholds[%d]", i)
		if th.GetPriority() != corev3.RoutingPriority_DEFAULT {
			return fmt.Errorf("field %s.priority: only DEFAULT is supported", f)
		}
		set := func(dst *int64, v interface{ GetValue() uint32 }, wrapped bool) {
			if wrapped {
				*dst = int64(v.GetValue())
			}
		}
		set(&cc.Limits.MaxConnections, th.GetMaxConnections(), th.GetMaxConnections() != nil)
		set(&cc.Limits.MaxPending, th.GetMaxPendingRequests(), th.GetMaxPendingRequests() != nil)
		set(&cc.Limits.MaxRequests, th.GetMaxRequests(), th.GetMaxRequests() != nil)
		set(&cc.Limits.MaxRetries, th.GetMaxRetries(), th.GetMaxRetries() != nil)
		if rb := th.GetRetryBudget(); rb != nil {
			cc.RetryBudget = 0.2
			if p := rb.GetBudgetPercent(); p != nil {
				if p.GetValue() < 0 || p.GetValue() > 100 {
					return fmt.Errorf("field %s.retry_budget.budget_percent: must be in [0, 100]", f)
				}
				cc.RetryBudget = p.GetValue() / 100
			}
			cc.RetryBudgetMin = 3
			if m := rb.GetMinRetryConcurrency(); m != nil {
				cc.RetryBudgetMin = int(m.GetValue())
			}
		}
	}
	return nil
}

func validateOutlier(od *clusterv3.OutlierDetection) (outlier.Config, error) {
	o := outlier.DefaultConfig()
	u32 := func(dst *uint32, v interface{ GetValue() uint32 }, set bool) {
		if set {
			*dst = v.GetValue()
		}
	}
	u32(&o.Consecutive5xx, od.GetConsecutive_5Xx(), od.GetConsecutive_5Xx() != nil)
	u32(&o.ConsecutiveGatewayFailure, od.GetConsecutiveGatewayFailure(), od.GetConsecutiveGatewayFailure() != nil)
	u32(&o.MaxEjectionPercent, od.GetMaxEjectionPercent(), od.GetMaxEjectionPercent() != nil)
	u32(&o.SuccessRateMinimumHosts, od.GetSuccessRateMinimumHosts(), od.GetSuccessRateMinimumHosts() != nil)
	u32(&o.SuccessRateRequestVolume, od.GetSuccessRateRequestVolume(), od.GetSuccessRateRequestVolume() != nil)
	if d := od.GetInterval(); d != nil {
		o.Interval = d.AsDuration()
	}
	if d := od.GetBaseEjectionTime(); d != nil {
		o.BaseEjectionTime = d.AsDuration()
	}
	if d := od.GetMaxEjectionTime(); d != nil {
		o.MaxEjectionTime = d.AsDuration()
	}
	if o.Interval <= 0 {
		return o, errors.New("field outlier_detection.interval: must be positive")
	}
	if o.MaxEjectionPercent > 100 {
		return o, errors.New("field outlier_detection.max_ejection_percent: must be at most 100")
	}
	// Enforcement percentages: Envoy's defaults are 100 for consecutive 5xx
	// and success rate and 0 for gateway failures; partial enforcement is
	// not implemented.
	c5, err := enforcing(od.GetEnforcingConsecutive_5Xx(), true, "enforcing_consecutive_5xx")
	if err != nil {
		return o, err
	}
	gw, err := enforcing(od.GetEnforcingConsecutiveGatewayFailure(), false, "enforcing_consecutive_gateway_failure")
	if err != nil {
		return o, err
	}
	sr, err := enforcing(od.GetEnforcingSuccessRate(), true, "enforcing_success_rate")
	if err != nil {
		return o, err
	}
	if lo := od.GetEnforcingConsecutiveLocalOriginFailure(); lo != nil && lo.GetValue() != 0 {
		return o, errors.New("field outlier_detection.enforcing_consecutive_local_origin_failure: only 0 is supported (local-origin errors are not split out)")
	}
	if !c5 {
		o.Consecutive5xx = 0
	}
	if !gw {
		o.ConsecutiveGatewayFailure = 0
	}
	if sr {
		o.SuccessRateStdevFactor = 1.9
		if f := od.GetSuccessRateStdevFactor(); f != nil {
			o.SuccessRateStdevFactor = float64(f.GetValue()) / 1000
		}
	}
	return o, nil
}

func enforcing(v *wrapperspb.UInt32Value, def bool, field string) (bool, error) {
	if v == nil {
		return def, nil
	}
	switch v.GetValue() {
	case 0:
		return false, nil
	case 100:
		return true, nil
	}
	return false, fmt.Errorf("field outlier_detection.%s: only 0 or 100 is supported", field)
}

func validateUpstreamTLS(ts *corev3.TransportSocket) (*UpstreamTLS, error) {
	if ts.GetName() != tlsSocketName {
		return nil, fmt.Errorf("name %q: only %s is supported", ts.GetName(), tlsSocketName)
	}
	var ctx tlsv3.UpstreamTlsContext
	if err := unpack(ts.GetTypedConfig(), &ctx); err != nil {
		return nil, fmt.Errorf("typed_config: want UpstreamTlsContext: %w", err)
	}
	ids, err := peerIDs(ctx.GetCommonTlsContext())
	if err != nil {
		return nil, err
	}
	return &UpstreamTLS{SNI: ctx.GetSni(), PeerIDs: ids, ALPN: ctx.GetCommonTlsContext().GetAlpnProtocols()}, nil
}

func peerIDs(c *tlsv3.CommonTlsContext) ([]string, error) {
	var ids []string
	for i, m := range c.GetCombinedValidationContext().GetDefaultValidationContext().GetMatchTypedSubjectAltNames() {
		f := fmt.Sprintf("common_tls_context.combined_validation_context.default_validation_context.match_typed_subject_alt_names[%d]", i)
		if m.GetSanType() != tlsv3.SubjectAltNameMatcher_URI {
			return nil, fmt.Errorf("field %s.san_type: only URI (SPIFFE ID) is supported", f)
		}
		if m.GetMatcher().GetExact() == "" {
			return nil, fmt.Errorf("field %s.matcher: only exact SPIFFE IDs are supported", f)
		}
		ids = append(ids, m.GetMatcher().GetExact())
	}
	return ids, nil
}
