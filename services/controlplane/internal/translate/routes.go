package translate

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	configv1 "github.com/switchyard-mesh/switchyard/proto/switchyard/config/v1"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// HTTP filter names; per-route config is keyed by them.
const (
	filterFault          = "envoy.filters.http.fault"
	filterRouter         = "envoy.filters.http.router"
	filterRBAC           = "envoy.filters.http.rbac"
	filterRBACDeny       = "envoy.filters.http.rbac.deny"
	filterRateLimit      = "envoy.filters.http.ratelimit"
	filterLocalRateLimit = "envoy.filters.http.local_ratelimit"
)

const defaultRequestTimeout = 15 * time.Second

// namedRoute is one HTTPRoute document for a service.
type namedRoute struct {
	name  string
	route *configv1.HTTPRoute
}

// buildVirtualHost makes the outbound virtual host for a service: its
// HTTPRoute rules in document-name order, then a catch-all to the service.
// domains lists the authorities it answers to.
func buildVirtualHost(service string, domains []string, sd *configv1.ServiceDefaults, routes []namedRoute) *routev3.VirtualHost {
	vh := &routev3.VirtualHost{Name: service, Domains: domains}
	for _, nr := range routes {
		for i, rule := range nr.route.GetRules() {
			label := rule.GetName()
			if label == "" {
				label = fmt.Sprint(i)
			}
			base := nr.name + "/" + label
			matches := rule.GetMatches()
			if len(matches) == 0 {
				matches = []*configv1.RouteMatch{{}}
			}
			if c := rule.GetCanary(); c != nil {
				for j, m := range matches {
					r := &routev3.Route{
						Name:  fmt.Sprintf("%s/canary/%d", base, j),
						Match: routeMatch(m, c.GetHeader()),
						Action: &routev3.Route_Route{Route: routeAction(service, sd, rule,
							[]*configv1.Backend{c.GetBackend()})},
					}
					decorate(r, rule)
					vh.Routes = append(vh.Routes, r)
				}
			}
			for j, m := range matches {
				r := &routev3.Route{
					Name:   fmt.Sprintf("%s/%d", base, j),
					Match:  routeMatch(m, nil),
					Action: &routev3.Route_Route{Route: routeAction(service, sd, rule, rule.GetBackends())},
				}
				decorate(r, rule)
				vh.Routes = append(vh.Routes, r)
			}
		}
	}
	vh.Routes = append(vh.Routes, &routev3.Route{
		Name:   service + "/default",
		Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_Route{Route: routeAction(service, sd, nil, nil)},
	})
	return vh
}

func routeMatch(m *configv1.RouteMatch, extra *configv1.HeaderMatch) *routev3.RouteMatch {
	rm := &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}
	switch p := m.GetPath(); {
	case p.GetExact() != "":
		rm.PathSpecifier = &routev3.RouteMatch_Path{Path: p.GetExact()}
	case p.GetPrefix() != "":
		rm.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: p.GetPrefix()}
	case p.GetRegex() != "":
		rm.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: p.GetRegex()}}
	}
	if m.GetMethod() != "" {
		rm.Headers = append(rm.Headers, &routev3.HeaderMatcher{
			Name:                 ":method",
			HeaderMatchSpecifier: stringMatch(m.GetMethod(), "", ""),
		})
	}
	for _, h := range m.GetHeaders() {
		rm.Headers = append(rm.Headers, headerMatcher(h))
	}
	if extra != nil {
		rm.Headers = append(rm.Headers, headerMatcher(extra))
	}
	for _, q := range m.GetQuery() {
		qm := &routev3.QueryParameterMatcher{Name: q.GetName()}
		if q.GetPresent() {
			qm.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}
		} else {
			qm.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_StringMatch{StringMatch: stringMatcher(q.GetExact(), "", q.GetRegex())}
		}
		rm.QueryParameters = append(rm.QueryParameters, qm)
	}
	return rm
}

func headerMatcher(h *configv1.HeaderMatch) *routev3.HeaderMatcher {
	hm := &routev3.HeaderMatcher{Name: strings.ToLower(h.GetName()), InvertMatch: h.GetInvert()}
	if h.GetPresent() {
		hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}
	} else {
		hm.HeaderMatchSpecifier = stringMatch(h.GetExact(), h.GetPrefix(), h.GetRegex())
	}
	return hm
}

func stringMatch(exact, prefix, regex string) *routev3.HeaderMatcher_StringMatch {
	return &routev3.HeaderMatcher_StringMatch{StringMatch: stringMatcher(exact, prefix, regex)}
}

func stringMatcher(exact, prefix, regex string) *matcherv3.StringMatcher {
	switch {
	case prefix != "":
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: prefix}}
	case regex != "":
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: regex}}}
	}
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: exact}}
}

// routeAction builds the forwarding part of a route. rule may be nil (the
// default route); backends empty means the service itself.
func routeAction(service string, sd *configv1.ServiceDefaults, rule *configv1.RouteRule, backends []*configv1.Backend) *routev3.RouteAction {
	ra := &routev3.RouteAction{}
	switch {
	case len(backends) == 0:
		ra.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: service}
	case len(backends) == 1:
		ra.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: clusterName(backends[0].GetService(), backends[0].GetTag())}
	default:
		wc := &routev3.WeightedCluster{}
		for _, b := range backends {
			wc.Clusters = append(wc.Clusters, &routev3.WeightedCluster_ClusterWeight{
				Name:   clusterName(b.GetService(), b.GetTag()),
				Weight: wrapperspb.UInt32(b.GetWeight()),
			})
		}
		ra.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: wc}
	}
	timeout := sd.GetRequestTimeout()
	if rule.GetTimeout() != nil {
		timeout = rule.GetTimeout()
	}
	if timeout == nil {
		timeout = durationpb.New(defaultRequestTimeout)
	}
	ra.Timeout = timeout
	ra.RetryPolicy = retryPolicy(sd.GetRetries(), rule.GetRetries())
	if rule.GetPrefixRewrite() != "" {
		ra.PrefixRewrite = rule.GetPrefixRewrite()
	}
	if m := rule.GetMirror(); m != nil {
		pct := m.GetPercent()
		if pct == 0 {
			pct = 100
		}
		ra.RequestMirrorPolicies = []*routev3.RouteAction_RequestMirrorPolicy{{
			Cluster:         clusterName(m.GetBackend().GetService(), m.GetBackend().GetTag()),
			RuntimeFraction: runtimePercent(pct),
		}}
	}
	if h := sd.GetHashPolicy(); h != nil {
		hp := &routev3.RouteAction_HashPolicy{}
		switch {
		case h.GetHeader() != "":
			hp.PolicySpecifier = &routev3.RouteAction_HashPolicy_Header_{Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: strings.ToLower(h.GetHeader())}}
		case h.GetCookie() != "":
			hp.PolicySpecifier = &routev3.RouteAction_HashPolicy_Cookie_{Cookie: &routev3.RouteAction_HashPolicy_Cookie{Name: h.GetCookie()}}
		default:
			hp.PolicySpecifier = &routev3.RouteAction_HashPolicy_ConnectionProperties_{ConnectionProperties: &routev3.RouteAction_HashPolicy_ConnectionProperties{SourceIp: true}}
		}
		ra.HashPolicy = []*routev3.RouteAction_HashPolicy{hp}
	}
	return ra
}

// retryPolicy merges a route override over the service defaults. Without
// any retry config, two retries on connect failures and refused streams.
func retryPolicy(def, override *configv1.RetryPolicy) *routev3.RetryPolicy {
	rp := &routev3.RetryPolicy{RetryOn: "connect-failure,refused-stream", NumRetries: wrapperspb.UInt32(2)}
	for _, p := range []*configv1.RetryPolicy{def, override} {
		if p == nil {
			continue
		}
		if p.Attempts != nil {
			rp.NumRetries = wrapperspb.UInt32(p.GetAttempts())
		}
		if len(p.GetRetryOn()) > 0 {
			rp.RetryOn = strings.Join(p.GetRetryOn(), ",")
		}
		if len(p.GetRetriableStatusCodes()) > 0 {
			rp.RetriableStatusCodes = p.GetRetriableStatusCodes()
		}
		if p.GetPerTryTimeout() != nil {
			rp.PerTryTimeout = p.GetPerTryTimeout()
		}
		if b := p.GetBackoff(); b != nil {
			rp.RetryBackOff = &routev3.RetryPolicy_RetryBackOff{BaseInterval: b.GetBaseInterval(), MaxInterval: b.GetMaxInterval()}
			if rp.RetryBackOff.BaseInterval == nil {
				rp.RetryBackOff.BaseInterval = durationpb.New(25 * time.Millisecond)
			}
		}
	}
	return rp
}

// decorate adds a rule's per-route fault and header edits.
func decorate(r *routev3.Route, rule *configv1.RouteRule) {
	if f := rule.GetFault(); f != nil {
		r.TypedPerFilterConfig = map[string]*anypb.Any{filterFault: mustAny(faultConfig(f))}
	}
	if h := rule.GetRequestHeaders(); h != nil {
		r.RequestHeadersToAdd = headerOptions(h)
		r.RequestHeadersToRemove = h.GetRemove()
	}
	if h := rule.GetResponseHeaders(); h != nil {
		r.ResponseHeadersToAdd = headerOptions(h)
		r.ResponseHeadersToRemove = h.GetRemove()
	}
}

func faultConfig(f *configv1.Fault) *faultv3.HTTPFault {
	out := &faultv3.HTTPFault{}
	if d := f.GetDelay(); d != nil {
		out.Delay = &faultcommonv3.FaultDelay{
			FaultDelaySecifier: &faultcommonv3.FaultDelay_FixedDelay{FixedDelay: d.GetFixed()},
			Percentage:         fractionalPercent(d.GetPercent()),
		}
	}
	if a := f.GetAbort(); a != nil {
		out.Abort = &faultv3.FaultAbort{Percentage: fractionalPercent(a.GetPercent())}
		if a.GetHttpStatus() != 0 {
			out.Abort.ErrorType = &faultv3.FaultAbort_HttpStatus{HttpStatus: a.GetHttpStatus()}
		} else {
			out.Abort.ErrorType = &faultv3.FaultAbort_GrpcStatus{GrpcStatus: a.GetGrpcStatus()}
		}
	}
	return out
}

func headerOptions(h *configv1.HeaderModifier) []*corev3.HeaderValueOption {
	var out []*corev3.HeaderValueOption
	for _, k := range slices.Sorted(maps.Keys(h.GetSet())) {
		out = append(out, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: strings.ToLower(k), Value: h.GetSet()[k]},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	for _, k := range slices.Sorted(maps.Keys(h.GetAdd())) {
		out = append(out, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: strings.ToLower(k), Value: h.GetAdd()[k]},
			AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD,
		})
	}
	return out
}

// fractionalPercent expresses a 0..100 percentage in millionths, so
// fractions such as 0.5 % survive.
func fractionalPercent(pct float64) *typev3.FractionalPercent {
	return &typev3.FractionalPercent{
		Numerator:   uint32(pct*10000 + 0.5),
		Denominator: typev3.FractionalPercent_MILLION,
	}
}

func runtimePercent(pct float64) *corev3.RuntimeFractionalPercent {
	return &corev3.RuntimeFractionalPercent{DefaultValue: fractionalPercent(pct)}
}
