package translate

import (
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	ratelimitconfv3 "github.com/envoyproxy/go-control-plane/envoy/config/ratelimit/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	localrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	ratelimithttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	configv1 "github.com/switchyard-mesh/switchyard/proto/switchyard/config/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Resource names every sidecar sees.
const (
	ListenerInbound  = "inbound"
	ListenerOutbound = "outbound"
	RouteOutbound    = "outbound"
	ClusterLocalApp  = "inbound|local"
)

func httpFilter(name string, cfg proto.Message) *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: name, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(cfg)}}
}

func hcmFilter(m *hcmv3.HttpConnectionManager) *listenerv3.Filter {
	return &listenerv3.Filter{
		Name:       "envoy.filters.network.http_connection_manager",
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(m)},
	}
}

// outboundListener is the app-facing listener on localhost: plain HTTP,
// routed by authority through the "outbound" RouteConfiguration (RDS).
func outboundListener(opts Options) *listenerv3.Listener {
	m := &hcmv3.HttpConnectionManager{
		StatPrefix: "outbound",
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    adsConfig(),
			RouteConfigName: RouteOutbound,
		}},
		HttpFilters: []*hcmv3.HttpFilter{
			httpFilter(filterFault, &faultv3.HTTPFault{}),
			httpFilter(filterRouter, &routerv3.Router{}),
		},
	}
	return &listenerv3.Listener{
		Name:         ListenerOutbound,
		Address:      socketAddress("127.0.0.1", opts.OutboundPort),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{hcmFilter(m)}}},
	}
}

// OutboundTCPListener names the app-facing listener of a TCP service:
// "outbound|<service>" on 127.0.0.1:<outbound_port>.
func OutboundTCPListener(service string) string { return ListenerOutbound + "|" + service }

// outboundTCPListener is the app-facing L4 listener of one TCP service: the
// app connects to 127.0.0.1:port and tcp_proxy carries the bytes to the
// service's EDS cluster (its load balancing, breakers and upstream mTLS with
// the service's SPIFFE ID as the only accepted SAN).
func outboundTCPListener(service string, port uint32) *listenerv3.Listener {
	name := OutboundTCPListener(service)
	return &listenerv3.Listener{
		Name:             name,
		Address:          socketAddress("127.0.0.1", port),
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name: "envoy.filters.network.tcp_proxy",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(&tcpproxyv3.TcpProxy{
				StatPrefix:       name,
				ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: clusterName(service, "")},
			})},
		}}}},
	}
}

// inboundPolicy is what shapes one service's inbound listener.
type inboundPolicy struct {
	service   string
	protocol  string
	authz     []namedAuthz
	rateLimit *configv1.RateLimitPolicy
}

type namedAuthz struct {
	name   string
	policy *configv1.AuthorizationPolicy
}

// inboundListener accepts mTLS from the mesh (any SVID of the trust
// domain), applies RBAC and rate limits, and forwards to the local app.
func inboundListener(opts Options, in inboundPolicy) *listenerv3.Listener {
	chain := &listenerv3.FilterChain{TransportSocket: downstreamTLS(opts.TrustDomain)}
	if in.protocol == "tcp" {
		var filters []*listenerv3.Filter
		for _, r := range rbacPolicies(in.authz) {
			filters = append(filters, &listenerv3.Filter{
				Name:       "envoy.filters.network.rbac",
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(networkRBAC(r))},
			})
		}
		filters = append(filters, &listenerv3.Filter{
			Name: "envoy.filters.network.tcp_proxy",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(&tcpproxyv3.TcpProxy{
				StatPrefix:       "inbound",
				ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: ClusterLocalApp},
			})},
		})
		chain.Filters = filters
	} else {
		route := &routev3.Route{
			Name:   in.service + "/inbound",
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: ClusterLocalApp}, Timeout: durationpb.New(0)}},
		}
		var filters []*hcmv3.HttpFilter
		for _, r := range rbacPolicies(in.authz) {
			name := filterRBAC
			if r.GetAction() == rbacv3.RBAC_DENY {
				name = filterRBACDeny
			}
			filters = append(filters, httpFilter(name, &rbachttpv3.RBAC{Rules: r}))
		}
		if rl := in.rateLimit; rl != nil {
			if l := rl.GetLocal(); l != nil {
				filters = append(filters, httpFilter(filterLocalRateLimit, localRateLimit(in.service, l)))
			}
			if len(rl.GetDescriptors()) > 0 {
				filters = append(filters, httpFilter(filterRateLimit, globalRateLimit(opts, rl)))
				for _, d := range rl.GetDescriptors() {
					route.GetRoute().RateLimits = append(route.GetRoute().RateLimits, rateLimitActions(d))
				}
			}
		}
		filters = append(filters, httpFilter(filterRouter, &routerv3.Router{}))
		m := &hcmv3.HttpConnectionManager{
			StatPrefix: "inbound",
			CodecType:  hcmv3.HttpConnectionManager_AUTO,
			RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
				Name: "inbound",
				VirtualHosts: []*routev3.VirtualHost{{
					Name:    in.service,
					Domains: []string{"*"},
					Routes:  []*routev3.Route{route},
				}},
			}},
			ForwardClientCertDetails:    hcmv3.HttpConnectionManager_SANITIZE_SET,
			SetCurrentClientCertDetails: &hcmv3.HttpConnectionManager_SetCurrentClientCertDetails{Uri: true},
			HttpFilters:                 filters,
		}
		chain.Filters = []*listenerv3.Filter{hcmFilter(m)}
	}
	return &listenerv3.Listener{
		Name:         ListenerInbound,
		Address:      socketAddress("0.0.0.0", opts.InboundPort),
		FilterChains: []*listenerv3.FilterChain{chain},
	}
}

// downstreamTLS requires a client SVID chaining to the bundle and from the
// trust domain; which IDs may call is RBAC's job.
func downstreamTLS(trustDomain string) *corev3.TransportSocket {
	ctx := &tlsv3.DownstreamTlsContext{
		RequireClientCertificate: wrapperspb.Bool(true),
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: SecretSVID}},
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
				CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
					DefaultValidationContext: &tlsv3.CertificateValidationContext{
						MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
							SanType: tlsv3.SubjectAltNameMatcher_URI,
							Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "spiffe://" + trustDomain + "/"}},
						}},
					},
					ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: SecretBundle},
				},
			},
			AlpnProtocols: []string{"h2", "http/1.1"},
		},
	}
	return &corev3.TransportSocket{
		Name:       "envoy.transport_sockets.tls",
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(ctx)},
	}
}

func localRateLimit(service string, l *configv1.LocalRateLimit) *localrlv3.LocalRateLimit {
	perFill := l.GetTokensPerFill()
	if perFill == 0 {
		perFill = l.GetMaxTokens()
	}
	always := &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 100, Denominator: typev3.FractionalPercent_HUNDRED}}
	return &localrlv3.LocalRateLimit{
		StatPrefix: "local_rate_limit_" + service,
		TokenBucket: &typev3.TokenBucket{
			MaxTokens:     l.GetMaxTokens(),
			TokensPerFill: wrapperspb.UInt32(perFill),
			FillInterval:  l.GetFillInterval(),
		},
		FilterEnabled:  always,
		FilterEnforced: always,
	}
}

func globalRateLimit(opts Options, rl *configv1.RateLimitPolicy) *ratelimithttpv3.RateLimit {
	domain := rl.GetDomain()
	if domain == "" {
		domain = "switchyard"
	}
	timeout := rl.GetTimeout()
	if timeout == nil {
		timeout = durationpb.New(defaultRateLimitTimeout)
	}
	return &ratelimithttpv3.RateLimit{
		Domain:          domain,
		Timeout:         timeout,
		FailureModeDeny: rl.GetFailureMode() == "deny",
		RateLimitService: &ratelimitconfv3.RateLimitServiceConfig{
			TransportApiVersion: corev3.ApiVersion_V3,
			GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
				EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: opts.RateLimitService},
			}},
		},
		EnableXRatelimitHeaders: ratelimithttpv3.RateLimit_DRAFT_VERSION_03,
	}
}

func rateLimitActions(d *configv1.RateLimitDescriptor) *routev3.RateLimit {
	rl := &routev3.RateLimit{}
	for _, e := range d.GetEntries() {
		var a *routev3.RateLimit_Action
		switch {
		case e.GetValue() != "":
			a = &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_GenericKey_{
				GenericKey: &routev3.RateLimit_Action_GenericKey{DescriptorKey: e.GetKey(), DescriptorValue: e.GetValue()},
			}}
		case e.GetHeader() != "":
			a = &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_RequestHeaders_{
				RequestHeaders: &routev3.RateLimit_Action_RequestHeaders{HeaderName: strings.ToLower(e.GetHeader()), DescriptorKey: e.GetKey()},
			}}
		default:
			// Envoy names this descriptor entry "remote_address" itself.
			a = &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_RemoteAddress_{RemoteAddress: &routev3.RateLimit_Action_RemoteAddress{}}}
		}
		rl.Actions = append(rl.Actions, a)
	}
	return rl
}

const defaultRateLimitTimeout = 20 * time.Millisecond

// localAppCluster is the static cluster for the app behind a sidecar.
func localAppCluster(port uint32, protocol string) *clusterv3.Cluster {
	c := buildCluster(ClusterLocalApp, &configv1.ServiceDefaults{Protocol: protocol}, "", false)
	c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
	c.EdsClusterConfig = nil
	c.LoadAssignment = &endpointv3.ClusterLoadAssignment{
		ClusterName: ClusterLocalApp,
		Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddress("127.0.0.1", port)}},
		}}}},
	}
	return c
}

// apiListener is what a proxyless gRPC client asks for when dialing
// xds:///<service>: an API listener whose HttpConnectionManager carries the
// route table inline.
func apiListener(service string, vh *routev3.VirtualHost) *listenerv3.Listener {
	m := &hcmv3.HttpConnectionManager{
		StatPrefix: service,
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
			Name:         service,
			VirtualHosts: []*routev3.VirtualHost{vh},
		}},
		HttpFilters: []*hcmv3.HttpFilter{
			httpFilter(filterFault, &faultv3.HTTPFault{}),
			httpFilter(filterRouter, &routerv3.Router{}),
		},
	}
	return &listenerv3.Listener{
		Name:        service,
		ApiListener: &listenerv3.ApiListener{ApiListener: mustAny(m)},
	}
}
