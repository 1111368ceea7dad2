package xds

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	corev3 "github.com/switchyard-mesh/switchyard/proto/switchyard/xdssubset/envoy/config/core/v3"
	routev3 "github.com/switchyard-mesh/switchyard/proto/switchyard/xdssubset/envoy/config/route/v3"
	faultv3 "github.com/switchyard-mesh/switchyard/proto/switchyard/xdssubset/envoy/extensions/filters/http/fault/v3"
	matcherv3 "github.com/switchyard-mesh/switchyard/proto/switchyard/xdssubset/envoy/type/matcher/v3"
	typev3 "github.com/switchyard-mesh/switchyard/proto/switchyard/xdssubset/envoy/type/v3"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/fault"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/lb"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/retry"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/route"
)

// FaultFilterName is the HTTP fault filter's name, the key of its per-route override.
const FaultFilterName = "envoy.filters.http.fault"

// ValidateRouteConfig turns a RouteConfiguration into a route table.
func ValidateRouteConfig(rc *routev3.RouteConfiguration) (*route.Table, error) {
	if err := checkFields(rc); err != nil {
		return nil, err
	}
	t := &route.Table{Name: rc.GetName()}
	if t.Name == "" {
		return nil, errors.New("field name: must be set")
	}
	for i, vh := range rc.GetVirtualHosts() {
		f := fmt.Sprintf("virtual_hosts[%d]", i)
		if len(vh.GetDomains()) == 0 {
			return nil, fmt.Errorf("field %s.domains: must not be empty", f)
		}
		v := route.VirtualHost{Name: vh.GetName(), Domains: vh.GetDomains()}
		for j, r := range vh.GetRoutes() {
			rt, err := validateRoute(r)
			if err != nil {
				return nil, fmt.Errorf("field %s.routes[%d].%w", f, j, err)
			}
			v.Routes = append(v.Routes, rt)
		}
		t.VirtualHosts = append(t.VirtualHosts, v)
	}
	return t, nil
}

// validateRoute's errors start with the field path relative to the route.
func validateRoute(r *routev3.Route) (route.Route, error) {
	rt := route.Route{Name: r.GetName()}
	m, err := validateMatch(r.GetMatch())
	if err != nil {
		return rt, fmt.Errorf("match%w", err)
	}
	rt.Match = m
	ra := r.GetRoute()
	if ra == nil {
		return rt, errors.New("route: must be set (only route actions are supported)")
	}
	a := &rt.Action
	switch {
	case ra.GetCluster() != "":
		a.Clusters = []route.WeightedCluster{{Name: ra.GetCluster(), Weight: 1}}
	case ra.GetWeightedClusters() != nil:
		var sum uint32
		for k, c := range ra.GetWeightedClusters().GetClusters() {
			if c.GetName() == "" {
				return rt, fmt.Errorf("route.weighted_clusters.clusters[%d].name: must be set", k)
			}
			a.Clusters = append(a.Clusters, route.WeightedCluster{Name: c.GetName(), Weight: c.GetWeight().GetValue()})
			sum += c.GetWeight().GetValue()
		}
		if sum == 0 {
			return rt, errors.New("route.weighted_clusters: weights must add up to more than 0")
		}
		// total_weight is deprecated upstream but still sent by older control
		// planes; honour it as a consistency check rather than ignore it.
		if tw := ra.GetWeightedClusters().GetTotalWeight(); tw != nil && tw.GetValue() != sum {
			return rt, fmt.Errorf("route.weighted_clusters.total_weight: %d, but the weights add up to %d", tw.GetValue(), sum)
		}
	default:
		return rt, errors.New("route: cluster or weighted_clusters must be set")
	}
	if d := ra.GetTimeout(); d != nil {
		a.Timeout = d.AsDuration()
	} else {
		a.Timeout = defaultRouteTimeout
	}
	a.PrefixRewrite = ra.GetPrefixRewrite()
	if rp := ra.GetRetryPolicy(); rp != nil {
		p, err := validateRetry(rp)
		if err != nil {
			return rt, fmt.Errorf("route.retry_policy.%w", err)
		}
		a.Retry = p
	}
	for k, hp := range ra.GetHashPolicy() {
		switch {
		case hp.GetHeader() != nil:
			a.HashPolicies = append(a.HashPolicies, lb.HashPolicy{Header: hp.GetHeader().GetHeaderName()})
		case hp.GetCookie() != nil:
			a.HashPolicies = append(a.HashPolicies, lb.HashPolicy{Cookie: hp.GetCookie().GetName()})
		case hp.GetConnectionProperties().GetSourceIp():
			a.HashPolicies = append(a.HashPolicies, lb.HashPolicy{SourceIP: true})
		default:
			return rt, fmt.Errorf("route.hash_policy[%d]: header, cookie or connection_properties.source_ip must be set", k)
		}
	}
	for k, mp := range ra.GetRequestMirrorPolicies() {
		if mp.GetCluster() == "" {
			return rt, fmt.Errorf("route.request_mirror_policies[%d].cluster: must be set", k)
		}
		share := uint32(1_000_000)
		if rf := mp.GetRuntimeFraction(); rf != nil {
			share = perMillion(rf.GetDefaultValue())
		}
		a.Mirrors = append(a.Mirrors, route.Mirror{Cluster: mp.GetCluster(), PerMillion: share})
	}
	for k, rl := range ra.GetRateLimits() {
		var out route.RateLimit
		for l, act := range rl.GetActions() {
			f := fmt.Sprintf("route.rate_limits[%d].actions[%d]", k, l)
			switch {
			case act.GetRequestHeaders() != nil:
				h := act.GetRequestHeaders()
				if h.GetHeaderName() == "" || h.GetDescriptorKey() == "" {
					return rt, fmt.Errorf("%s.request_headers: header_name and descriptor_key must be set", f)
				}
				out.Actions = append(out.Actions, route.RateLimitAction{Header: h.GetHeaderName(), HeaderKey: h.GetDescriptorKey()})
			case act.GetRemoteAddress() != nil:
				out.Actions = append(out.Actions, route.RateLimitAction{RemoteAddress: true})
			case act.GetGenericKey() != nil:
				g := act.GetGenericKey()
				if g.GetDescriptorValue() == "" {
					return rt, fmt.Errorf("%s.generic_key.descriptor_value: must be set", f)
				}
				out.Actions = append(out.Actions, route.RateLimitAction{GenericKey: g.GetDescriptorKey(), GenericValue: g.GetDescriptorValue()})
			case act.GetDestinationCluster() != nil:
				out.Actions = append(out.Actions, route.RateLimitAction{DestinationCluster: true})
			default:
				return rt, fmt.Errorf("%s: no action set", f)
			}
		}
		a.RateLimits = append(a.RateLimits, out)
	}
	var err2 error
	if rt.RequestHeaders, err2 = validateHeaderEdits(r.GetRequestHeadersToAdd(), r.GetRequestHeadersToRemove(), "request"); err2 != nil {
		return rt, err2
	}
	if rt.ResponseHeaders, err2 = validateHeaderEdits(r.GetResponseHeadersToAdd(), r.GetResponseHeadersToRemove(), "response"); err2 != nil {
		return rt, err2
	}
	for name, cfg := range r.GetTypedPerFilterConfig() {
		if name != FaultFilterName {
			return rt, fmt.Errorf("typed_per_filter_config[%q]: only %s may be overridden per route", name, FaultFilterName)
		}
		var hf faultv3.HTTPFault
		if err := unpack(cfg, &hf); err != nil {
			return rt, fmt.Errorf("typed_per_filter_config[%q]: %w", name, err)
		}
		fc, err := validateFault(&hf)
		if err != nil {
			return rt, fmt.Errorf("typed_per_filter_config[%q].%w", name, err)
		}
		rt.Fault = &fc
	}
	return rt, nil
}

// defaultRouteTimeout is Envoy's default route timeout.
const defaultRouteTimeout = 15 * time.Second

func validateHeaderEdits(add []*corev3.HeaderValueOption, remove []string, which string) (*route.HeaderEdits, error) {
	if len(add) == 0 && len(remove) == 0 {
		return nil, nil
	}
	e := &route.HeaderEdits{}
	for i, o := range add {
		f := fmt.Sprintf("%s_headers_to_add[%d]", which, i)
		k := strings.ToLower(o.GetHeader().GetKey())
		if k == "" || strings.HasPrefix(k, ":") || k == "host" {
			return nil, fmt.Errorf("%s.header.key: %q cannot be set", f, k)
		}
		switch o.GetAppendAction() {
		case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
			e.Add = append(e.Add, route.HeaderValue{Key: k, Value: o.GetHeader().GetValue()})
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
			e.Set = append(e.Set, route.HeaderValue{Key: k, Value: o.GetHeader().GetValue()})
		default:
			return nil, fmt.Errorf("%s.append_action: %s is not supported", f, o.GetAppendAction())
		}
	}
	for _, k := range remove {
		e.Remove = append(e.Remove, strings.ToLower(k))
	}
	return e, nil
}

func validateMatch(m *routev3.RouteMatch) (route.Match, error) {
	out := route.Match{CaseSensitive: true}
	if cs := m.GetCaseSensitive(); cs != nil {
		out.CaseSensitive = cs.GetValue()
	}
	switch {
	case m.GetSafeRegex() != nil:
		re, err := regexp.Compile(m.GetSafeRegex().GetRegex())
		if err != nil {
			return out, fmt.Errorf(".safe_regex.regex: %w", err)
		}
		// Envoy's safe_regex matches the whole path.
		out.Regex = regexp.MustCompile("^(?:" + re.String() + ")$")
	case m.GetPath() != "":
		out.Path = m.GetPath()
	case m.GetPathSpecifier() == nil:
		return out, errors.New(": one of prefix, path or safe_regex must be set")
	default:
		out.Prefix = m.GetPrefix()
	}
	for i, h := range m.GetHeaders() {
		hm, err := validateHeaderMatcher(h)
		if err != nil {
			return out, fmt.Errorf(".headers[%d]%w", i, err)
		}
		out.Headers = append(out.Headers, hm)
	}
	for i, q := range m.GetQueryParameters() {
		qm := route.QueryMatcher{Name: q.GetName(), Present: q.GetPresentMatch()}
		if sm := q.GetStringMatch(); sm != nil {
			s, err := validateStringMatcher(sm)
			if err != nil {
				return out, fmt.Errorf(".query_parameters[%d].string_match%w", i, err)
			}
			qm.Value = s
		} else if !qm.Present {
			return out, fmt.Errorf(".query_parameters[%d]: string_match or present_match must be set", i)
		}
		out.Query = append(out.Query, qm)
	}
	return out, nil
}

func validateHeaderMatcher(h *routev3.HeaderMatcher) (route.HeaderMatcher, error) {
	hm := route.HeaderMatcher{Name: strings.ToLower(h.GetName()), Invert: h.GetInvertMatch()}
	if hm.Name == "" {
		return hm, errors.New(".name: must be set")
	}
	switch {
	case h.GetStringMatch() != nil:
		s, err := validateStringMatcher(h.GetStringMatch())
		if err != nil {
			return hm, fmt.Errorf(".string_match%w", err)
		}
		hm.Value = s
	case h.GetHeaderMatchSpecifier() != nil:
		present := h.GetPresentMatch()
		hm.Present = &present
	default:
		return hm, errors.New(": string_match or present_match must be set")
	}
	return hm, nil
}

func validateStringMatcher(m *matcherv3.StringMatcher) (*route.StringMatcher, error) {
	s := &route.StringMatcher{IgnoreCase: m.GetIgnoreCase()}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		s.Exact = p.Exact
	case *matcherv3.StringMatcher_Prefix:
		s.Prefix = p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		s.Suffix = p.Suffix
	case *matcherv3.StringMatcher_Contains:
		s.Contains = p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		re, err := regexp.Compile("^(?:" + p.SafeRegex.GetRegex() + ")$")
		if err != nil {
			return nil, fmt.Errorf(".safe_regex.regex: %w", err)
		}
		s.Regex = re
	default:
		return nil, errors.New(": a match pattern must be set")
	}
	return s, nil
}

func validateRetry(rp *routev3.RetryPolicy) (*retry.Policy, error) {
	p := &retry.Policy{NumRetries: 1}
	for _, c := range strings.Split(rp.GetRetryOn(), ",") {
		c = strings.TrimSpace(c)
		if c == "" {
			continue
		}
		if !retry.Known(retry.Condition(c)) {
			return nil, fmt.Errorf("retry_on: condition %q is not supported", c)
		}
		p.On = append(p.On, retry.Condition(c))
	}
	if n := rp.GetNumRetries(); n != nil {
		p.NumRetries = int(n.GetValue())
	}
	if d := rp.GetPerTryTimeout(); d != nil {
		p.PerTryTimeout = d.AsDuration()
	}
	for _, c := range rp.GetRetriableStatusCodes() {
		p.StatusCodes = append(p.StatusCodes, int(c))
	}
	if b := rp.GetRetryBackOff(); b != nil {
		p.BaseInterval = b.GetBaseInterval().AsDuration()
		if p.BaseInterval <= 0 {
			return nil, errors.New("retry_back_off.base_interval: must be positive")
		}
		if b.GetMaxInterval() != nil {
			p.MaxInterval = b.GetMaxInterval().AsDuration()
			if p.MaxInterval < p.BaseInterval {
				return nil, errors.New("retry_back_off.max_interval: must be at least base_interval")
			}
		}
	}
	return p, nil
}

func perMillion(f *typev3.FractionalPercent) uint32 {
	n := uint64(f.GetNumerator())
	switch f.GetDenominator() {
	case typev3.FractionalPercent_HUNDRED:
		n *= 10_000
	case typev3.FractionalPercent_TEN_THOUSAND:
		n *= 100
	}
	return uint32(min(n, 1_000_000))
}

func validateFault(hf *faultv3.HTTPFault) (fault.Config, error) {
	var c fault.Config
	if d := hf.GetDelay(); d != nil {
		c.DelayPerMillion = 1_000_000
		if d.GetPercentage() != nil {
			c.DelayPerMillion = perMillion(d.GetPercentage())
		}
		c.Delay = d.GetFixedDelay().AsDuration()
		c.DelayFromHeader = d.GetHeaderDelay() != nil
		if !c.DelayFromHeader && c.Delay <= 0 {
			return c, errors.New("delay.fixed_delay: must be positive (or use header_delay)")
		}
	}
	if a := hf.GetAbort(); a != nil {
		c.AbortPerMillion = 1_000_000
		if a.GetPercentage() != nil {
			c.AbortPerMillion = perMillion(a.GetPercentage())
		}
		c.AbortStatus = int(a.GetHttpStatus())
		c.AbortFromHeader = a.GetHeaderAbort() != nil
		switch a.GetErrorType().(type) {
		case *faultv3.FaultAbort_GrpcStatus:
			c.AbortGRPCStatus = int(a.GetGrpcStatus())
			if c.AbortGRPCStatus <= 0 || c.AbortGRPCStatus > 16 {
				return c, errors.New("abort.grpc_status: must be in [1, 16]")
			}
		case *faultv3.FaultAbort_HeaderAbort_:
		default:
			if c.AbortStatus < 200 || c.AbortStatus >= 600 {
				return c, errors.New("abort.http_status: must be in [200, 600) (or use grpc_status or header_abort)")
			}
		}
	}
	return c, nil
}
