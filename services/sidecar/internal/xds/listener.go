package xds

import (
	"errors"
	"fmt"
	"slices"
	"time"

	corev3 "github.com/switchyard-mesh/switchyard/proto/switchyard/xdssubset/envoy/config/core/v3"
	listenerv3 "github.com/switchyard-mesh/switchyard/proto/switchyard/xdssubset/envoy/config/listener/v3"
	rbacv3 "github.com/switchyard-mesh/switchyard/proto/switchyard/xdssubset/envoy/config/rbac/v3"
	faultv3 "github.com/switchyard-mesh/switchyard/proto/switchyard/xdssubset/envoy/extensions/filters/http/fault/v3"
	localrlv3 "github.com/switchyard-mesh/switchyard/proto/switchyard/xdssubset/envoy/extensions/filters/http/local_ratelimit/v3"
	rlv3 "github.com/switchyard-mesh/switchyard/proto/switchyard/xdssubset/envoy/extensions/filters/http/ratelimit/v3"
	rbacfilterv3 "github.com/switchyard-mesh/switchyard/proto/switchyard/xdssubset/envoy/extensions/filters/http/rbac/v3"
	routerv3 "github.com/switchyard-mesh/switchyard/proto/switchyard/xdssubset/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/switchyard-mesh/switchyard/proto/switchyard/xdssubset/envoy/extensions/filters/network/http_connection_manager/v3"
	netrbacv3 "github.com/switchyard-mesh/switchyard/proto/switchyard/xdssubset/envoy/extensions/filters/network/rbac/v3"
	tcpv3 "github.com/switchyard-mesh/switchyard/proto/switchyard/xdssubset/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/switchyard-mesh/switchyard/proto/switchyard/xdssubset/envoy/extensions/transport_sockets/tls/v3"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/fault"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/rbac"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/route"
)

// Direction says which side of the workload a listener serves.
type Direction int

// Listener directions (Envoy traffic_direction).
const (
	Outbound Direction = iota // app → mesh, plaintext on localhost
	Inbound                   // mesh → app, mTLS
)

// ListenerConfig is a validated Listener: exactly one of HTTP and TCPCluster is set.
type ListenerConfig struct {
	Name       string
	Addr       string
	Direction  Direction
	TLS        *DownstreamTLS
	HTTP       *HTTPConfig
	TCPCluster string
	TCPRBAC    []*rbac.Engine // network RBAC before tcp_proxy; all must allow
}

// DownstreamTLS is the listener's mTLS with the local SVID.
type DownstreamTLS struct {
	RequireClientCert bool
	ALPN              []string
	// PeerIDs restrict client SPIFFE IDs (any matcher passes); empty means
	// any ID the trust bundle verifies.
	PeerIDs []*route.StringMatcher
}

// HTTPConfig is a validated HttpConnectionManager with its filter chain,
// applied in this order: RBAC, local rate limit, global rate limit, fault, router.
type HTTPConfig struct {
	RouteConfigName string         // RDS; Routes is nil until the route arrives
	Routes          *route.Table   // inline route_config
	RBAC            []*rbac.Engine // all must allow
	LocalRateLimit  *LocalRateLimit
	RateLimit       *GlobalRateLimit
	Fault           *fault.Config
	WebSocket       bool
	// XFCC sets x-forwarded-client-cert to the verified peer's URI (Envoy
	// SANITIZE_SET with set_current_client_cert_details.uri); otherwise an
	// incoming header is removed (SANITIZE).
	XFCC bool
}

// LocalRateLimit is a token bucket per listener.
type LocalRateLimit struct {
	MaxTokens, TokensPerFill int64
	FillInterval             time.Duration
	Status                   int
	EnabledPerMillion        uint32 // share of requests the filter looks at
	EnforcedPerMillion       uint32 // share of those it refuses when over the limit
}

// GlobalRateLimit asks the rate limit service (Envoy RLS v3) about each
// request's route descriptors.
type GlobalRateLimit struct {
	Domain           string
	Cluster          string // cluster of the rate limit service
	Timeout          time.Duration
	FailureModeDeny  bool // refuse requests when the service can't be reached
	RateLimitHeaders bool // add x-ratelimit-* response headers (draft 03)
}

// Type URLs of the network and HTTP filters this proxy implements.
var (
	hcmType         = typeURL(&hcmv3.HttpConnectionManager{})
	tcpProxyType    = typeURL(&tcpv3.TcpProxy{})
	routerType      = typeURL(&routerv3.Router{})
	faultType       = typeURL(&faultv3.HTTPFault{})
	rbacType        = typeURL(&rbacfilterv3.RBAC{})
	localRLType     = typeURL(&localrlv3.LocalRateLimit{})
	globalRLType    = typeURL(&rlv3.RateLimit{})
	downstreamType  = typeURL(&tlsv3.DownstreamTlsContext{})
	networkRBACType = typeURL(&netrbacv3.RBAC{})
)

// ValidateListener turns l into a ListenerConfig.
func ValidateListener(l *listenerv3.Listener) (ListenerConfig, error) {
	if err := checkFields(l); err != nil {
		return ListenerConfig{}, err
	}
	lc := ListenerConfig{Name: l.GetName()}
	if lc.Name == "" {
		return lc, errors.New("field name: must be set")
	}
	addr, err := socketAddr(l.GetAddress(), "address")
	if err != nil {
		return lc, err
	}
	lc.Addr = addr
	switch l.GetTrafficDirection() {
	case corev3.TrafficDirection_INBOUND:
		lc.Direction = Inbound
	case corev3.TrafficDirection_OUTBOUND, corev3.TrafficDirection_UNSPECIFIED:
		lc.Direction = Outbound
	}
	if len(l.GetFilterChains()) != 1 {
		return lc, fmt.Errorf("field filter_chains: exactly one filter chain is supported, got %d", len(l.GetFilterChains()))
	}
	fc := l.GetFilterChains()[0]
	if ts := fc.GetTransportSocket(); ts != nil {
		if ts.GetName() != tlsSocketName || ts.GetTypedConfig().GetTypeUrl() != downstreamType {
			return lc, fmt.Errorf("field filter_chains[0].transport_socket: only %s with DownstreamTlsContext is supported", tlsSocketName)
		}
		var ctx tlsv3.DownstreamTlsContext
		if err := unpack(ts.GetTypedConfig(), &ctx); err != nil {
			return lc, fmt.Errorf("field filter_chains[0].transport_socket.typed_config: %w", err)
		}
		lc.TLS = &DownstreamTLS{RequireClientCert: ctx.GetRequireClientCertificate().GetValue(), ALPN: ctx.GetCommonTlsContext().GetAlpnProtocols()}
		for i, m := range ctx.GetCommonTlsContext().GetCombinedValidationContext().GetDefaultValidationContext().GetMatchTypedSubjectAltNames() {
			f := fmt.Sprintf("field filter_chains[0].transport_socket.typed_config.common_tls_context.combined_validation_context.default_validation_context.match_typed_subject_alt_names[%d]", i)
			if m.GetSanType() != tlsv3.SubjectAltNameMatcher_URI {
				return lc, fmt.Errorf("%s.san_type: only URI (SPIFFE ID) is supported", f)
			}
			s, err := validateStringMatcher(m.GetMatcher())
			if err != nil {
				return lc, fmt.Errorf("%s.matcher%w", f, err)
			}
			lc.TLS.PeerIDs = append(lc.TLS.PeerIDs, s)
		}
	}
	filters := fc.GetFilters()
	if len(filters) == 0 {
		return lc, errors.New("field filter_chains[0].filters: must not be empty")
	}
	last := len(filters) - 1
	for i, nf := range filters[:last] {
		field := fmt.Sprintf("field filter_chains[0].filters[%d].typed_config", i)
		if nf.GetTypedConfig().GetTypeUrl() != networkRBACType || filters[last].GetTypedConfig().GetTypeUrl() != tcpProxyType {
			return lc, fmt.Errorf("%s: only network RBAC filters may precede tcp_proxy; one HTTP connection manager stands alone", field)
		}
		var m netrbacv3.RBAC
		if err := unpack(nf.GetTypedConfig(), &m); err != nil {
			return lc, fmt.Errorf("%s: %w", field, err)
		}
		e, err := validateRBAC(m.GetRules())
		if err != nil {
			return lc, fmt.Errorf("%s.rules.%w", field, err)
		}
		lc.TCPRBAC = append(lc.TCPRBAC, e)
	}
	nf := filters[last]
	fieldLast := fmt.Sprintf("field filter_chains[0].filters[%d].typed_config", last)
	switch nf.GetTypedConfig().GetTypeUrl() {
	case hcmType:
		var hcm hcmv3.HttpConnectionManager
		if err := unpack(nf.GetTypedConfig(), &hcm); err != nil {
			return lc, fmt.Errorf("%s: %w", fieldLast, err)
		}
		h, err := validateHCM(&hcm)
		if err != nil {
			return lc, fmt.Errorf("%s.%w", fieldLast, err)
		}
		lc.HTTP = h
	case tcpProxyType:
		var tp tcpv3.TcpProxy
		if err := unpack(nf.GetTypedConfig(), &tp); err != nil {
			return lc, fmt.Errorf("%s: %w", fieldLast, err)
		}
		if tp.GetCluster() == "" {
			return lc, fmt.Errorf("%s.cluster: must be set", fieldLast)
		}
		lc.TCPCluster = tp.GetCluster()
	default:
		return lc, fmt.Errorf("%s: type %s is not supported", fieldLast, nf.GetTypedConfig().GetTypeUrl())
	}
	return lc, nil
}

// validateHCM's errors start with the field path relative to the HCM.
func validateHCM(hcm *hcmv3.HttpConnectionManager) (*HTTPConfig, error) {
	h := &HTTPConfig{}
	if hcm.GetCodecType() != hcmv3.HttpConnectionManager_AUTO {
		return nil, fmt.Errorf("codec_type: only AUTO is supported, got %s", hcm.GetCodecType())
	}
	switch {
	case hcm.GetRds() != nil:
		if err := checkConfigSource(hcm.GetRds().GetConfigSource(), "rds.config_source"); err != nil {
			return nil, err
		}
		h.RouteConfigName = hcm.GetRds().GetRouteConfigName()
		if h.RouteConfigName == "" {
			return nil, errors.New("rds.route_config_name: must be set")
		}
	case hcm.GetRouteConfig() != nil:
		t, err := ValidateRouteConfig(hcm.GetRouteConfig())
		if err != nil {
			return nil, fmt.Errorf("route_config: %w", err)
		}
		h.Routes = t
	default:
		return nil, errors.New("rds or route_config must be set")
	}
	switch hcm.GetForwardClientCertDetails() {
	case hcmv3.HttpConnectionManager_SANITIZE:
		if hcm.GetSetCurrentClientCertDetails() != nil {
			return nil, errors.New("set_current_client_cert_details: only with forward_client_cert_details SANITIZE_SET")
		}
	case hcmv3.HttpConnectionManager_SANITIZE_SET:
		if !hcm.GetSetCurrentClientCertDetails().GetUri() {
			return nil, errors.New("set_current_client_cert_details.uri: must be true with SANITIZE_SET (only the URI is forwarded)")
		}
		h.XFCC = true
	default:
		return nil, fmt.Errorf("forward_client_cert_details: %s is not supported (SANITIZE or SANITIZE_SET)", hcm.GetForwardClientCertDetails())
	}
	for i, u := range hcm.GetUpgradeConfigs() {
		if u.GetUpgradeType() != "websocket" {
			return nil, fmt.Errorf("upgrade_configs[%d].upgrade_type: only websocket is supported", i)
		}
		h.WebSocket = true
	}
	filters := hcm.GetHttpFilters()
	if len(filters) == 0 || filters[len(filters)-1].GetTypedConfig().GetTypeUrl() != routerType {
		return nil, errors.New("http_filters: the last filter must be envoy.filters.http.router")
	}
	for i, f := range filters[:len(filters)-1] {
		field := fmt.Sprintf("http_filters[%d].typed_config", i)
		tc := f.GetTypedConfig()
		switch tc.GetTypeUrl() {
		case faultType:
			var m faultv3.HTTPFault
			if err := unpack(tc, &m); err != nil {
				return nil, fmt.Errorf("%s: %w", field, err)
			}
			fc, err := validateFault(&m)
			if err != nil {
				return nil, fmt.Errorf("%s.%w", field, err)
			}
			h.Fault = &fc
		case rbacType:
			var m rbacfilterv3.RBAC
			if err := unpack(tc, &m); err != nil {
				return nil, fmt.Errorf("%s: %w", field, err)
			}
			e, err := validateRBAC(m.GetRules())
			if err != nil {
				return nil, fmt.Errorf("%s.rules.%w", field, err)
			}
			h.RBAC = append(h.RBAC, e)
		case localRLType:
			var m localrlv3.LocalRateLimit
			if err := unpack(tc, &m); err != nil {
				return nil, fmt.Errorf("%s: %w", field, err)
			}
			lr, err := validateLocalRL(&m)
			if err != nil {
				return nil, fmt.Errorf("%s.%w", field, err)
			}
			h.LocalRateLimit = lr
		case globalRLType:
			var m rlv3.RateLimit
			if err := unpack(tc, &m); err != nil {
				return nil, fmt.Errorf("%s: %w", field, err)
			}
			g := &GlobalRateLimit{Domain: m.GetDomain(), FailureModeDeny: m.GetFailureModeDeny(), Timeout: 20 * time.Millisecond,
				Cluster: m.GetRateLimitService().GetGrpcService().GetEnvoyGrpc().GetClusterName()}
			if g.Domain == "" {
				return nil, fmt.Errorf("%s.domain: must be set", field)
			}
			if g.Cluster == "" {
				return nil, fmt.Errorf("%s.rate_limit_service.grpc_service.envoy_grpc.cluster_name: must be set", field)
			}
			if d := m.GetTimeout(); d != nil {
				g.Timeout = d.AsDuration()
			}
			switch m.GetEnableXRatelimitHeaders() {
			case rlv3.RateLimit_OFF:
			case rlv3.RateLimit_DRAFT_VERSION_03:
				g.RateLimitHeaders = true
			default:
				return nil, fmt.Errorf("%s.enable_x_ratelimit_headers: %s is not supported", field, m.GetEnableXRatelimitHeaders())
			}
			h.RateLimit = g
		case routerType:
			return nil, fmt.Errorf("%s: the router must be the last filter", field)
		default:
			return nil, fmt.Errorf("%s: filter type %s is not supported", field, tc.GetTypeUrl())
		}
	}
	return h, nil
}

func validateLocalRL(m *localrlv3.LocalRateLimit) (*LocalRateLimit, error) {
	tb := m.GetTokenBucket()
	if tb == nil {
		return nil, errors.New("token_bucket: must be set")
	}
	lr := &LocalRateLimit{MaxTokens: int64(tb.GetMaxTokens()), TokensPerFill: int64(tb.GetMaxTokens()), FillInterval: tb.GetFillInterval().AsDuration(), Status: 429}
	if tb.GetTokensPerFill() != nil {
		lr.TokensPerFill = int64(tb.GetTokensPerFill().GetValue())
	}
	if lr.MaxTokens <= 0 {
		return nil, errors.New("token_bucket.max_tokens: must be positive")
	}
	if lr.FillInterval <= 0 {
		return nil, errors.New("token_bucket.fill_interval: must be positive")
	}
	if s := m.GetStatus(); s != nil {
		lr.Status = int(s.GetCode())
	}
	// As in Envoy, a missing filter_enabled / filter_enforced means 0 %.
	lr.EnabledPerMillion = perMillion(m.GetFilterEnabled().GetDefaultValue())
	lr.EnforcedPerMillion = perMillion(m.GetFilterEnforced().GetDefaultValue())
	if m.GetFilterEnabled() == nil {
		lr.EnabledPerMillion = 0
	}
	if m.GetFilterEnforced() == nil {
		lr.EnforcedPerMillion = 0
	}
	return lr, nil
}

// validateRBAC's errors start with the field path relative to the rules.
func validateRBAC(r *rbacv3.RBAC) (*rbac.Engine, error) {
	e := &rbac.Engine{}
	switch r.GetAction() {
	case rbacv3.RBAC_ALLOW:
		e.Action = rbac.Allow
	case rbacv3.RBAC_DENY:
		e.Action = rbac.Deny
	default:
		return nil, fmt.Errorf("action: %s is not supported", r.GetAction())
	}
	names := make([]string, 0, len(r.GetPolicies()))
	for n := range r.GetPolicies() {
		names = append(names, n)
	}
	// Deterministic evaluation order (Envoy evaluates the map in key order).
	slices.Sort(names)
	for _, n := range names {
		p := r.GetPolicies()[n]
		pol := rbac.Policy{Name: n}
		for i, perm := range p.GetPermissions() {
			pp, err := validatePermission(perm)
			if err != nil {
				return nil, fmt.Errorf("policies[%q].permissions[%d]%w", n, i, err)
			}
			pol.Permissions = append(pol.Permissions, pp)
		}
		for i, pr := range p.GetPrincipals() {
			pp, err := validatePrincipal(pr)
			if err != nil {
				return nil, fmt.Errorf("policies[%q].principals[%d]%w", n, i, err)
			}
			pol.Principals = append(pol.Principals, pp)
		}
		e.Policies = append(e.Policies, pol)
	}
	return e, nil
}

func validatePermission(p *rbacv3.Permission) (rbac.Permission, error) {
	switch {
	case p.GetAny():
		return rbac.Permission{Any: true}, nil
	case p.GetAndRules() != nil || p.GetOrRules() != nil:
		set, field := p.GetAndRules(), ".and_rules"
		if set == nil {
			set, field = p.GetOrRules(), ".or_rules"
		}
		list := []rbac.Permission{}
		for i, r := range set.GetRules() {
			x, err := validatePermission(r)
			if err != nil {
				return rbac.Permission{}, fmt.Errorf("%s.rules[%d]%w", field, i, err)
			}
			list = append(list, x)
		}
		if field == ".and_rules" {
			return rbac.Permission{And: list}, nil
		}
		return rbac.Permission{Or: list}, nil
	case p.GetNotRule() != nil:
		x, err := validatePermission(p.GetNotRule())
		if err != nil {
			return rbac.Permission{}, fmt.Errorf(".not_rule%w", err)
		}
		return rbac.Permission{Not: &x}, nil
	case p.GetHeader() != nil:
		h, err := validateHeaderMatcher(p.GetHeader())
		if err != nil {
			return rbac.Permission{}, fmt.Errorf(".header%w", err)
		}
		return rbac.Permission{Header: &h}, nil
	case p.GetUrlPath() != nil:
		s, err := validateStringMatcher(p.GetUrlPath().GetPath())
		if err != nil {
			return rbac.Permission{}, fmt.Errorf(".url_path.path%w", err)
		}
		return rbac.Permission{Path: s}, nil
	case p.GetDestinationPort() != 0:
		return rbac.Permission{DestinationPort: p.GetDestinationPort()}, nil
	}
	return rbac.Permission{}, errors.New(": no rule set")
}

func validatePrincipal(p *rbacv3.Principal) (rbac.Principal, error) {
	switch {
	case p.GetAny():
		return rbac.Principal{Any: true}, nil
	case p.GetAndIds() != nil || p.GetOrIds() != nil:
		set, field := p.GetAndIds(), ".and_ids"
		if set == nil {
			set, field = p.GetOrIds(), ".or_ids"
		}
		list := []rbac.Principal{}
		for i, r := range set.GetIds() {
			x, err := validatePrincipal(r)
			if err != nil {
				return rbac.Principal{}, fmt.Errorf("%s.ids[%d]%w", field, i, err)
			}
			list = append(list, x)
		}
		if field == ".and_ids" {
			return rbac.Principal{And: list}, nil
		}
		return rbac.Principal{Or: list}, nil
	case p.GetNotId() != nil:
		x, err := validatePrincipal(p.GetNotId())
		if err != nil {
			return rbac.Principal{}, fmt.Errorf(".not_id%w", err)
		}
		return rbac.Principal{Not: &x}, nil
	case p.GetAuthenticated() != nil:
		out := rbac.Principal{Authenticated: true}
		if pn := p.GetAuthenticated().GetPrincipalName(); pn != nil {
			s, err := validateStringMatcher(pn)
			if err != nil {
				return rbac.Principal{}, fmt.Errorf(".authenticated.principal_name%w", err)
			}
			out.PrincipalName = s
		}
		return out, nil
	case p.GetHeader() != nil:
		h, err := validateHeaderMatcher(p.GetHeader())
		if err != nil {
			return rbac.Principal{}, fmt.Errorf(".header%w", err)
		}
		return rbac.Principal{Header: &h}, nil
	}
	return rbac.Principal{}, errors.New(": no identifier set")
}
