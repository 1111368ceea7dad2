package xds

import (
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	commonfaultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/lb"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/rbac"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/retry"
)

func mustAny(t testing.TB, m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func edsCluster() *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 "users",
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}, ResourceApiVersion: corev3.ApiVersion_V3}},
		ConnectTimeout:       durationpb.New(time.Second),
		LbPolicy:             clusterv3.Cluster_LEAST_REQUEST,
		CircuitBreakers: &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			MaxRequests: wrapperspb.UInt32(10), MaxPendingRequests: wrapperspb.UInt32(0), MaxRetries: wrapperspb.UInt32(5),
			RetryBudget: &clusterv3.CircuitBreakers_Thresholds_RetryBudget{BudgetPercent: &typev3.Percent{Value: 25}, MinRetryConcurrency: wrapperspb.UInt32(0)},
		}}},
		OutlierDetection: &clusterv3.OutlierDetection{Consecutive_5Xx: wrapperspb.UInt32(3), Interval: durationpb.New(time.Second), BaseEjectionTime: durationpb.New(5 * time.Second), MaxEjectionPercent: wrapperspb.UInt32(50)},
	}
}

func TestValidateClusterGood(t *testing.T) {
	c := edsCluster()
	ctx := &tlsv3.UpstreamTlsContext{Sni: "users", CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: "default"}},
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
			DefaultValidationContext: &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
				SanType: tlsv3.SubjectAltNameMatcher_URI, Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "spiffe://switchyard.local/ns/shop/sa/users"}},
			}}},
			ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: "ROOTCA"},
		}},
	}}
	c.TransportSocket = &corev3.TransportSocket{Name: tlsSocketName, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(t, ctx)}}
	c.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpProtocolOptionsKey: mustAny(t, &httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}}}}})}
	cc, err := validateCluster(t, c)
	if err != nil {
		t.Fatal(err)
	}
	if cc.LBPolicy != lb.LeastRequest || cc.EDSServiceName != "users" || cc.Limits.MaxRequests != 10 || cc.Limits.MaxPending != 0 ||
		cc.Limits.MaxConnections != 1024 || cc.RetryBudget != 0.25 || cc.RetryBudgetMin != 0 || cc.Outlier.Consecutive5xx != 3 ||
		cc.Protocol != UpstreamHTTP2 || cc.TLS == nil || cc.TLS.PeerIDs[0] != "spiffe://switchyard.local/ns/shop/sa/users" || cc.ConnectTimeout != time.Second {
		t.Fatalf("unexpected %+v", cc)
	}
}

func TestValidateClusterRejects(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*clusterv3.Cluster)
		wantErr string
	}{
		{"unimplemented field", func(c *clusterv3.Cluster) { c.PerConnectionBufferLimitBytes = wrapperspb.UInt32(1) }, "field per_connection_buffer_limit_bytes is not supported"},
		{"nested unimplemented field", func(c *clusterv3.Cluster) {
			c.CircuitBreakers.Thresholds[0].TrackRemaining = true
		}, "field circuit_breakers.thresholds[0].track_remaining is not supported"},
		{"unsupported lb policy", func(c *clusterv3.Cluster) { c.LbPolicy = clusterv3.Cluster_CLUSTER_PROVIDED }, "field lb_policy"},
		{"unsupported type", func(c *clusterv3.Cluster) {
			c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}
		}, "field type"},
		{"partial enforcement", func(c *clusterv3.Cluster) {
			c.OutlierDetection.EnforcingConsecutive_5Xx = wrapperspb.UInt32(50)
		}, "field outlier_detection.enforcing_consecutive_5xx"},
		{"priority HIGH", func(c *clusterv3.Cluster) {
			c.CircuitBreakers.Thresholds[0].Priority = corev3.RoutingPriority_HIGH
		}, "circuit_breakers.thresholds[0].priority"},
		{"no name", func(c *clusterv3.Cluster) { c.Name = "" }, "field name"},
		{"non-ads eds", func(c *clusterv3.Cluster) {
			c.EdsClusterConfig.EdsConfig = &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_PathConfigSource{PathConfigSource: &corev3.PathConfigSource{Path: "/x"}}}
		}, "eds_cluster_config.eds_config.path_config_source is not supported"},
		{"unknown transport socket", func(c *clusterv3.Cluster) {
			c.TransportSocket = &corev3.TransportSocket{Name: "raw", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(t, &routerv3.Router{})}}
		}, "transport_socket"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := edsCluster()
			tt.mutate(c)
			_, err := validateCluster(t, c)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
			}
		})
	}
}

func cla() *endpointv3.ClusterLoadAssignment {
	ep := func(ip string, port uint32, w uint32, hs corev3.HealthStatus) *endpointv3.LbEndpoint {
		return &endpointv3.LbEndpoint{HealthStatus: hs, LoadBalancingWeight: wrapperspb.UInt32(w), HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}}}}
	}
	return &endpointv3.ClusterLoadAssignment{ClusterName: "users", Endpoints: []*endpointv3.LocalityLbEndpoints{
		{Locality: &corev3.Locality{Region: "eu", Zone: "a"}, LbEndpoints: []*endpointv3.LbEndpoint{ep("10.0.0.1", 15006, 2, corev3.HealthStatus_HEALTHY), ep("10.0.0.2", 15006, 1, corev3.HealthStatus_UNHEALTHY)}},
		{Locality: &corev3.Locality{Region: "us"}, Priority: 1, LbEndpoints: []*endpointv3.LbEndpoint{ep("10.1.0.1", 15006, 1, corev3.HealthStatus_UNKNOWN)}},
	}}
}

func TestValidateEndpoints(t *testing.T) {
	e, err := validateEndpoints(t, cla())
	if err != nil {
		t.Fatal(err)
	}
	want := []Endpoint{
		{Addr: "10.0.0.1:15006", Weight: 2, Locality: "eu/a/", Healthy: true},
		{Addr: "10.0.0.2:15006", Weight: 1, Locality: "eu/a/", Healthy: false},
		{Addr: "10.1.0.1:15006", Weight: 1, Priority: 1, Locality: "us//", Healthy: true},
	}
	if len(e.Hosts) != len(want) {
		t.Fatalf("hosts %+v", e.Hosts)
	}
	for i := range want {
		if e.Hosts[i] != want[i] {
			t.Errorf("host %d = %+v, want %+v", i, e.Hosts[i], want[i])
		}
	}
	bad := cla()
	bad.Endpoints[0].LbEndpoints[0].GetEndpoint().Address.GetSocketAddress().PortSpecifier = &corev3.SocketAddress_PortValue{PortValue: 0}
	if _, err := validateEndpoints(t, bad); err == nil || !strings.Contains(err.Error(), "endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value") {
		t.Fatalf("err = %v", err)
	}
	bad = cla()
	bad.Endpoints[0].Proximity = wrapperspb.UInt32(3)
	if _, err := validateEndpoints(t, bad); err == nil || !strings.Contains(err.Error(), "endpoints[0].proximity is not supported") {
		t.Fatalf("err = %v", err)
	}
}

func routeConfig(t testing.TB) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{Name: "outbound", VirtualHosts: []*routev3.VirtualHost{{
		Name: "users", Domains: []string{"users", "users:80"},
		Routes: []*routev3.Route{
			{Name: "canary",
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{{Name: "X-Canary", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "1"}}}}}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "users-v2"}}}},
			{Name: "split",
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier:      &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{Clusters: []*routev3.WeightedCluster_ClusterWeight{{Name: "users-v1", Weight: wrapperspb.UInt32(90)}, {Name: "users-v2", Weight: wrapperspb.UInt32(10)}}}},
					Timeout:               durationpb.New(2 * time.Second),
					RetryPolicy:           &routev3.RetryPolicy{RetryOn: "5xx,connect-failure,unavailable,cancelled", NumRetries: wrapperspb.UInt32(2), PerTryTimeout: durationpb.New(500 * time.Millisecond)},
					HashPolicy:            []*routev3.RouteAction_HashPolicy{{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: "x-user"}}}},
					RequestMirrorPolicies: []*routev3.RouteAction_RequestMirrorPolicy{{Cluster: "users-shadow", RuntimeFraction: &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 50, Denominator: typev3.FractionalPercent_HUNDRED}}}},
				}},
				TypedPerFilterConfig: map[string]*anypb.Any{FaultFilterName: mustAny(t, &faultv3.HTTPFault{Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: 503}, Percentage: &typev3.FractionalPercent{Numerator: 10}}})},
			},
		},
	}}}
}

func TestValidateRouteConfig(t *testing.T) {
	tb, err := validateRouteConfig(t, routeConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	r := &tb.VirtualHosts[0].Routes[1]
	if len(r.Action.Clusters) != 2 || r.Action.Clusters[1].Weight != 10 || r.Action.Timeout != 2*time.Second ||
		r.Action.Retry.NumRetries != 2 || len(r.Action.Retry.On) != 4 || r.Action.Retry.On[2] != retry.OnUnavailable || r.Action.HashPolicies[0].Header != "x-user" ||
		r.Action.Mirrors[0].PerMillion != 500_000 || r.Fault.AbortPerMillion != 100_000 || r.Fault.AbortStatus != 503 {
		t.Fatalf("unexpected route %+v", r)
	}
	if tb.VirtualHosts[0].Routes[0].Match.Headers[0].Name != "x-canary" {
		t.Fatal("header names are lower-cased")
	}
	tests := []struct {
		name    string
		mutate  func(*routev3.RouteConfiguration)
		wantErr string
	}{
		{"unknown retry_on", func(rc *routev3.RouteConfiguration) {
			rc.VirtualHosts[0].Routes[1].GetRoute().RetryPolicy.RetryOn = "5xx,reset-before-request"
		}, `virtual_hosts[0].routes[1].route.retry_policy.retry_on: condition "reset-before-request"`},
		{"redirect action", func(rc *routev3.RouteConfiguration) {
			rc.VirtualHosts[0].Routes[0].Action = &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{}}
		}, "virtual_hosts[0].routes[0].redirect is not supported"},
		{"bad regex", func(rc *routev3.RouteConfiguration) {
			rc.VirtualHosts[0].Routes[0].Match.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "("}}
		}, "virtual_hosts[0].routes[0].match.safe_regex.regex"},
		{"unsupported per-filter override", func(rc *routev3.RouteConfiguration) {
			rc.VirtualHosts[0].Routes[0].TypedPerFilterConfig = map[string]*anypb.Any{"envoy.filters.http.rbac": mustAny(t, &rbacfilterv3.RBACPerRoute{})}
		}, "envoy.extensions.filters.http.rbac.v3.RBACPerRoute is not supported"},
		{"vhost cors", func(rc *routev3.RouteConfiguration) { rc.VirtualHosts[0].RequireTls = routev3.VirtualHost_ALL }, "virtual_hosts[0].require_tls is not supported"},
		{"fault without status", func(rc *routev3.RouteConfiguration) {
			rc.VirtualHosts[0].Routes[1].TypedPerFilterConfig[FaultFilterName] = mustAny(t, &faultv3.HTTPFault{Abort: &faultv3.FaultAbort{Percentage: &typev3.FractionalPercent{Numerator: 1}}})
		}, "abort.http_status"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := routeConfig(t)
			tt.mutate(rc)
			_, err := validateRouteConfig(t, rc)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
			}
		})
	}
}

func hcmListener(t testing.TB, filters ...*hcmv3.HttpFilter) *listenerv3.Listener {
	filters = append(filters, &hcmv3.HttpFilter{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &routerv3.Router{})}})
	hcm := &hcmv3.HttpConnectionManager{StatPrefix: "inbound",
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: "inbound", ConfigSource: &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}}},
		HttpFilters:    filters}
	tls := &tlsv3.DownstreamTlsContext{RequireClientCertificate: wrapperspb.Bool(true), CommonTlsContext: &tlsv3.CommonTlsContext{TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: "default"}}}}
	return &listenerv3.Listener{Name: "inbound", TrafficDirection: corev3.TrafficDirection_INBOUND,
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: "0.0.0.0", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 15006}}}},
		FilterChains: []*listenerv3.FilterChain{{
			TransportSocket: &corev3.TransportSocket{Name: tlsSocketName, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(t, tls)}},
			Filters:         []*listenerv3.Filter{{Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, hcm)}}},
		}}}
}

func rbacFilter(t testing.TB) *hcmv3.HttpFilter {
	r := &rbacfilterv3.RBAC{Rules: &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{
		"frontend": {Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_Any{Any: true}}},
			Principals: []*rbacv3.Principal{{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{
				PrincipalName: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "spiffe://switchyard.local/ns/shop/sa/frontend"}}}}}}},
	}}}
	return &hcmv3.HttpFilter{Name: "envoy.filters.http.rbac", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, r)}}
}

func TestValidateListener(t *testing.T) {
	delay := &faultv3.HTTPFault{Delay: &commonfaultv3.FaultDelay{FaultDelaySecifier: &commonfaultv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(time.Millisecond)}}}
	l := hcmListener(t, rbacFilter(t), &hcmv3.HttpFilter{Name: "envoy.filters.http.fault", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, delay)}})
	lc, err := validateListener(t, l)
	if err != nil {
		t.Fatal(err)
	}
	if lc.Direction != Inbound || lc.Addr != "0.0.0.0:15006" || !lc.TLS.RequireClientCert || lc.HTTP.RouteConfigName != "inbound" ||
		lc.HTTP.RBAC[0].Action != rbac.Allow || lc.HTTP.RBAC[0].Policies[0].Name != "frontend" || lc.HTTP.Fault.Delay != time.Millisecond {
		t.Fatalf("unexpected %+v %+v", lc, lc.HTTP)
	}

	tcp := &listenerv3.Listener{Name: "tcp", Address: l.Address, FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{Name: "envoy.filters.network.tcp_proxy",
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, &tcpv3.TcpProxy{StatPrefix: "tcp", ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: "redis"}})}}}}}}
	if lc, err := validateListener(t, tcp); err != nil || lc.TCPCluster != "redis" {
		t.Fatalf("tcp listener: %+v %v", lc, err)
	}

	tests := []struct {
		name    string
		l       *listenerv3.Listener
		wantErr string
	}{
		{"router not last", func() *listenerv3.Listener {
			l := hcmListener(t)
			var hcm hcmv3.HttpConnectionManager
			_ = l.FilterChains[0].Filters[0].GetTypedConfig().UnmarshalTo(&hcm)
			hcm.HttpFilters = append(hcm.HttpFilters, rbacFilter(t))
			l.FilterChains[0].Filters[0].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, &hcm)}
			return l
		}(), "the last filter must be envoy.filters.http.router"},
		{"hcm field not implemented", func() *listenerv3.Listener {
			l := hcmListener(t)
			var hcm hcmv3.HttpConnectionManager
			_ = l.FilterChains[0].Filters[0].GetTypedConfig().UnmarshalTo(&hcm)
			hcm.UseRemoteAddress = wrapperspb.Bool(true)
			l.FilterChains[0].Filters[0].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, &hcm)}
			return l
		}(), "field filter_chains[0].filters[0].typed_config.use_remote_address is not supported"},
		{"two filter chains", func() *listenerv3.Listener {
			l := hcmListener(t)
			l.FilterChains = append(l.FilterChains, l.FilterChains[0])
			return l
		}(), "exactly one filter chain"},
		{"listener filters", func() *listenerv3.Listener {
			l := hcmListener(t)
			l.ListenerFilters = []*listenerv3.ListenerFilter{{Name: "tls_inspector"}}
			return l
		}(), "field listener_filters is not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := validateListener(t, tt.l)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
			}
		})
	}
}

func TestConnectionLifetimes(t *testing.T) {
	tests := []struct {
		name           string
		common         *corev3.HttpProtocolOptions
		idle, lifetime time.Duration
		nack           string // a part of the error; "" accepts
	}{
		{"unset", nil, 0, 0, ""},
		{"both", &corev3.HttpProtocolOptions{IdleTimeout: durationpb.New(30 * time.Second), MaxConnectionDuration: durationpb.New(10 * time.Minute)}, 30 * time.Second, 10 * time.Minute, ""},
		{"lifetime only", &corev3.HttpProtocolOptions{MaxConnectionDuration: durationpb.New(time.Second)}, 0, time.Second, ""},
		{"no idle timeout", &corev3.HttpProtocolOptions{IdleTimeout: durationpb.New(0)}, 0, 0, "common_http_protocol_options.idle_timeout: must be positive"},
		{"negative lifetime", &corev3.HttpProtocolOptions{MaxConnectionDuration: durationpb.New(-time.Second)}, 0, 0, "common_http_protocol_options.max_connection_duration: must be positive"},
		{"requests per connection", &corev3.HttpProtocolOptions{MaxRequestsPerConnection: wrapperspb.UInt32(100)}, 0, 0, "max_requests_per_connection"},
		{"headers count", &corev3.HttpProtocolOptions{MaxHeadersCount: wrapperspb.UInt32(50)}, 0, 0, "max_headers_count"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := &httpv3.HttpProtocolOptions{
				UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig{UseDownstreamProtocolConfig: &httpv3.HttpProtocolOptions_UseDownstreamHttpConfig{
					HttpProtocolOptions: &corev3.Http1ProtocolOptions{}, Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}}},
				CommonHttpProtocolOptions: tc.common,
			}
			c := &clusterv3.Cluster{Name: "c", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
				EdsClusterConfig:              &clusterv3.Cluster_EdsClusterConfig{EdsConfig: &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}},
				TypedExtensionProtocolOptions: map[string]*anypb.Any{httpProtocolOptionsKey: mustAny(t, opts)}}
			cc, err := validateCluster(t, c)
			if tc.nack != "" {
				if err == nil || !strings.Contains(err.Error(), tc.nack) {
					t.Fatalf("err %v, want a NACK containing %q", err, tc.nack)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cc.IdleTimeout != tc.idle || cc.MaxConnectionDuration != tc.lifetime {
				t.Fatalf("idle %v, lifetime %v; want %v, %v", cc.IdleTimeout, cc.MaxConnectionDuration, tc.idle, tc.lifetime)
			}
		})
	}
}

func TestUpstreamProtocol(t *testing.T) {
	h1, h2 := &corev3.Http1ProtocolOptions{}, &corev3.Http2ProtocolOptions{}
	explicit := func(e *httpv3.HttpProtocolOptions_ExplicitHttpConfig) *httpv3.HttpProtocolOptions {
		return &httpv3.HttpProtocolOptions{UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: e}}
	}
	downstream := func(d *httpv3.HttpProtocolOptions_UseDownstreamHttpConfig) *httpv3.HttpProtocolOptions {
		return &httpv3.HttpProtocolOptions{UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig{UseDownstreamProtocolConfig: d}}
	}
	tests := []struct {
		name string
		opts *httpv3.HttpProtocolOptions
		want UpstreamProtocol
	}{
		{"none", nil, UpstreamHTTP1},
		{"explicit http1", explicit(&httpv3.HttpProtocolOptions_ExplicitHttpConfig{ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{HttpProtocolOptions: h1}}), UpstreamHTTP1},
		{"explicit http2", explicit(&httpv3.HttpProtocolOptions_ExplicitHttpConfig{ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: h2}}), UpstreamHTTP2},
		{"downstream, both", downstream(&httpv3.HttpProtocolOptions_UseDownstreamHttpConfig{HttpProtocolOptions: h1, Http2ProtocolOptions: h2}), UpstreamAsDownstream},
		{"downstream, neither", downstream(&httpv3.HttpProtocolOptions_UseDownstreamHttpConfig{}), UpstreamAsDownstream},
		{"downstream, http1 only", downstream(&httpv3.HttpProtocolOptions_UseDownstreamHttpConfig{HttpProtocolOptions: h1}), UpstreamHTTP1},
		{"downstream, http2 only", downstream(&httpv3.HttpProtocolOptions_UseDownstreamHttpConfig{Http2ProtocolOptions: h2}), UpstreamHTTP2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &clusterv3.Cluster{Name: "c", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
				EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{EdsConfig: &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}}}
			if tc.opts != nil {
				c.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpProtocolOptionsKey: mustAny(t, tc.opts)}
			}
			cc, err := validateCluster(t, c)
			if err != nil {
				t.Fatal(err)
			}
			if cc.Protocol != tc.want {
				t.Fatalf("protocol %v, want %v", cc.Protocol, tc.want)
			}
		})
	}
	c := &clusterv3.Cluster{Name: "c", TypedExtensionProtocolOptions: map[string]*anypb.Any{httpProtocolOptionsKey: mustAny(t, &httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_AutoConfig{AutoConfig: &httpv3.HttpProtocolOptions_AutoHttpConfig{}}})}}
	if _, err := validateCluster(t, c); err == nil || !strings.Contains(err.Error(), "auto_config") {
		t.Fatalf("auto_config: %v, want a NACK naming the field", err)
	}
}
