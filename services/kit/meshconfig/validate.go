package meshconfig

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	configv1 "github.com/switchyard-mesh/switchyard/proto/switchyard/config/v1"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Value sets, also used by the control plane's translation.
var (
	Protocols  = []string{"http", "grpc", "tcp"}
	LBPolicies = []string{"round_robin", "least_request", "ring_hash", "maglev", "random"}
	// RetryOnHTTP and RetryOnGRPC are the accepted retry_on conditions.
	RetryOnHTTP = []string{"5xx", "gateway-error", "reset", "connect-failure", "retriable-4xx", "refused-stream", "retriable-status-codes"}
	RetryOnGRPC = []string{"cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable"}
	httpMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)

// MaxRetries caps RetryPolicy.attempts.
const MaxRetries = 10

// MinOutboundPort is the lowest ServiceDefaults.outbound_port: a sidecar
// binds it without privileges.
const MinOutboundPort = 1024

// SidecarPorts are a sidecar's own ports (admin, outbound, inbound), which
// no outbound_port may take.
var SidecarPorts = []uint32{15000, 15001, 15006}

var (
	nameRE       = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	tagRE        = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$`)
	headerNameRE = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
	spiffeRE     = regexp.MustCompile(`^spiffe://[a-z0-9.-]+(/[A-Za-z0-9._~!$&'()+,;=:@-]+)*/?$`)
)

func validateName(f *fieldErrors, field, name string) {
	if !nameRE.MatchString(name) {
		f.add(field, "must be 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit, got %q", name)
	}
}

func oneOf(f *fieldErrors, field, v string, allowed []string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	f.add(field, "must be one of %s, got %q", strings.Join(allowed, ", "), v)
}

func positiveDuration(f *fieldErrors, field string, d *durationpb.Duration, maxD time.Duration) {
	if d == nil {
		return
	}
	switch v := d.AsDuration(); {
	case v <= 0:
		f.add(field, "must be greater than 0")
	case v > maxD:
		f.add(field, "must be at most %s", maxD)
	}
}

func percent(f *fieldErrors, field string, p float64) {
	if p < 0 || p > 100 {
		f.add(field, "must be 0..100, got %v", p)
	}
}

func validateServiceDefaults(f *fieldErrors, s *configv1.ServiceDefaults) {
	if s.Protocol != "" {
		oneOf(f, "spec.protocol", s.Protocol, Protocols)
	}
	if s.LbPolicy != "" {
		oneOf(f, "spec.lb_policy", s.LbPolicy, LBPolicies)
	}
	hashing := s.LbPolicy == "ring_hash" || s.LbPolicy == "maglev"
	switch {
	case hashing && s.HashPolicy == nil:
		f.add("spec.hash_policy", "required when lb_policy is %s", s.LbPolicy)
	case !hashing && s.HashPolicy != nil:
		f.add("spec.hash_policy", "only valid with lb_policy ring_hash or maglev")
	case s.HashPolicy != nil:
		h := s.HashPolicy
		set := count(h.Header != "", h.Cookie != "", h.SourceIp)
		if set != 1 {
			f.add("spec.hash_policy", "set exactly one of header, cookie, source_ip")
		}
		if h.Header != "" {
			headerName(f, "spec.hash_policy.header", h.Header)
		}
		if s.Protocol == "tcp" && (h.Header != "" || h.Cookie != "") {
			f.add("spec.hash_policy", "a tcp service can only hash on source_ip")
		}
	}
	positiveDuration(f, "spec.connect_timeout", s.ConnectTimeout, time.Hour)
	if s.RequestTimeout != nil && s.RequestTimeout.AsDuration() > 24*time.Hour {
		f.add("spec.request_timeout", "must be at most 24h")
	}
	if s.Protocol == "tcp" {
		if s.RequestTimeout != nil {
			f.add("spec.request_timeout", "not valid for a tcp service")
		}
		if s.Retries != nil {
			f.add("spec.retries", "not valid for a tcp service")
		}
	}
	if s.Retries != nil {
		validateRetries(f, "spec.retries", s.Retries, true)
	}
	if p := s.OutboundPort; p != 0 {
		switch {
		case s.Protocol != "tcp":
			f.add("spec.outbound_port", "only valid with protocol tcp (HTTP and gRPC services are reached through the outbound listener on 15001)")
		case p < MinOutboundPort || p > 65535:
			f.add("spec.outbound_port", "must be %d..65535, got %d", MinOutboundPort, p)
		case slices.Contains(SidecarPorts, p):
			f.add("spec.outbound_port", "%d is a sidecar's own port (%v are reserved)", p, SidecarPorts)
		}
	}
	if cp := s.ConnectionPool; cp != nil {
		switch {
		case s.Protocol == "tcp":
			f.add("spec.connection_pool", "not valid for a tcp service (its connections are the app's own)")
		case cp.IdleTimeout == nil && cp.MaxConnectionDuration == nil:
			f.add("spec.connection_pool", "set idle_timeout or max_connection_duration")
		}
		positiveDuration(f, "spec.connection_pool.idle_timeout", cp.IdleTimeout, 24*time.Hour)
		positiveDuration(f, "spec.connection_pool.max_connection_duration", cp.MaxConnectionDuration, 30*24*time.Hour)
		if d := cp.MaxConnectionDuration; d != nil && d.AsDuration() > 0 && d.AsDuration() < 100*time.Millisecond {
			f.add("spec.connection_pool.max_connection_duration", "must be at least 100ms (every connection a new mTLS handshake)")
		}
	}
	if cb := s.CircuitBreaker; cb != nil {
		if count(cb.MaxConnections > 0, cb.MaxPendingRequests > 0, cb.MaxRequests > 0, cb.MaxRetries > 0) == 0 {
			f.add("spec.circuit_breaker", "set at least one threshold")
		}
	}
	if od := s.OutlierDetection; od != nil {
		positiveDuration(f, "spec.outlier_detection.interval", od.Interval, time.Hour)
		positiveDuration(f, "spec.outlier_detection.base_ejection_time", od.BaseEjectionTime, time.Hour)
		if od.MaxEjectionPercent > 100 {
			f.add("spec.outlier_detection.max_ejection_percent", "must be 0..100, got %d", od.MaxEjectionPercent)
		}
		if od.Consecutive_5Xx == 0 && od.ConsecutiveGatewayFailure == 0 && od.SuccessRate == nil {
			f.add("spec.outlier_detection", "set consecutive_5xx, consecutive_gateway_failure or success_rate")
		}
		if sr := od.SuccessRate; sr != nil && sr.StdevFactor < 0 {
			f.add("spec.outlier_detection.success_rate.stdev_factor", "must not be negative")
		}
	}
}

func validateRetries(f *fieldErrors, path string, r *configv1.RetryPolicy, allowBudget bool) {
	if r.Attempts != nil && *r.Attempts > MaxRetries {
		f.add(path+".attempts", "must be 0..%d, got %d", MaxRetries, *r.Attempts)
	}
	allowed := append(append([]string{}, RetryOnHTTP...), RetryOnGRPC...)
	statusCodes := false
	for i, c := range r.RetryOn {
		oneOf(f, fmt.Sprintf("%s.retry_on[%d]", path, i), c, allowed)
		statusCodes = statusCodes || c == "retriable-status-codes"
	}
	for i, c := range r.RetriableStatusCodes {
		if c < 100 || c > 599 {
			f.add(fmt.Sprintf("%s.retriable_status_codes[%d]", path, i), "must be an HTTP status 100..599, got %d", c)
		}
	}
	if len(r.RetriableStatusCodes) > 0 && !statusCodes {
		f.add(path+".retriable_status_codes", `needs "retriable-status-codes" in retry_on`)
	}
	positiveDuration(f, path+".per_try_timeout", r.PerTryTimeout, time.Hour)
	if b := r.Backoff; b != nil {
		positiveDuration(f, path+".backoff.base_interval", b.BaseInterval, time.Minute)
		positiveDuration(f, path+".backoff.max_interval", b.MaxInterval, 10*time.Minute)
		if b.BaseInterval != nil && b.MaxInterval != nil && b.MaxInterval.AsDuration() < b.BaseInterval.AsDuration() {
			f.add(path+".backoff.max_interval", "must not be less than base_interval")
		}
	}
	if r.Budget != nil {
		if !allowBudget {
			f.add(path+".budget", "only valid in ServiceDefaults (a retry budget is per service)")
		} else {
			percent(f, path+".budget.percent", r.Budget.Percent)
		}
	}
}

func validateHTTPRoute(f *fieldErrors, r *configv1.HTTPRoute) {
	validateName(f, "spec.service", r.Service)
	if len(r.Rules) == 0 {
		f.add("spec.rules", "at least one rule is required")
	}
	for i, rule := range r.Rules {
		p := fmt.Sprintf("spec.rules[%d]", i)
		if rule.Name != "" {
			validateName(f, p+".name", rule.Name)
		}
		allPrefix := len(rule.Matches) > 0
		for j, m := range rule.Matches {
			mp := fmt.Sprintf("%s.matches[%d]", p, j)
			if m.Path != nil {
				validatePath(f, mp+".path", m.Path)
			}
			allPrefix = allPrefix && m.Path != nil && m.Path.Prefix != ""
			if m.Method != "" {
				oneOf(f, mp+".method", m.Method, httpMethods)
			}
			for k, h := range m.Headers {
				validateHeaderMatch(f, fmt.Sprintf("%s.headers[%d]", mp, k), h)
			}
			for k, q := range m.Query {
				qp := fmt.Sprintf("%s.query[%d]", mp, k)
				if q.Name == "" {
					f.add(qp+".name", "required")
				}
				if count(q.Exact != "", q.Regex != "", q.Present) != 1 {
					f.add(qp, "set exactly one of exact, regex, present")
				}
				validRegex(f, qp+".regex", q.Regex)
			}
		}
		validateBackends(f, p+".backends", rule.Backends)
		if c := rule.Canary; c != nil {
			if c.Header == nil {
				f.add(p+".canary.header", "required")
			} else {
				validateHeaderMatch(f, p+".canary.header", c.Header)
			}
			if c.Backend == nil {
				f.add(p+".canary.backend", "required")
			} else {
				validateBackend(f, p+".canary.backend", c.Backend)
				if c.Backend.Weight != 0 {
					f.add(p+".canary.backend.weight", "not valid on a canary backend (it takes all matching requests)")
				}
			}
		}
		if m := rule.Mirror; m != nil {
			if m.Backend == nil {
				f.add(p+".mirror.backend", "required")
			} else {
				validateBackend(f, p+".mirror.backend", m.Backend)
			}
			percent(f, p+".mirror.percent", m.Percent)
		}
		if ft := rule.Fault; ft != nil {
			if ft.Delay == nil && ft.Abort == nil {
				f.add(p+".fault", "set delay, abort or both")
			}
			if d := ft.Delay; d != nil {
				if d.Fixed == nil {
					f.add(p+".fault.delay.fixed", "required")
				}
				positiveDuration(f, p+".fault.delay.fixed", d.Fixed, time.Hour)
				percent(f, p+".fault.delay.percent", d.Percent)
			}
			if a := ft.Abort; a != nil {
				switch {
				case (a.HttpStatus != 0) == (a.GrpcStatus != 0):
					f.add(p+".fault.abort", "set exactly one of http_status, grpc_status")
				case a.HttpStatus != 0 && (a.HttpStatus < 200 || a.HttpStatus > 599):
					f.add(p+".fault.abort.http_status", "must be 200..599, got %d", a.HttpStatus)
				case a.GrpcStatus > 16:
					f.add(p+".fault.abort.grpc_status", "must be a gRPC code 1..16, got %d", a.GrpcStatus)
				}
				percent(f, p+".fault.abort.percent", a.Percent)
			}
		}
		validateHeaderModifier(f, p+".request_headers", rule.RequestHeaders)
		validateHeaderModifier(f, p+".response_headers", rule.ResponseHeaders)
		if rule.PrefixRewrite != "" {
			if !allPrefix {
				f.add(p+".prefix_rewrite", "needs every match to have a path prefix")
			}
			if !strings.HasPrefix(rule.PrefixRewrite, "/") {
				f.add(p+".prefix_rewrite", "must start with '/'")
			}
		}
		if rule.Timeout != nil && rule.Timeout.AsDuration() > 24*time.Hour {
			f.add(p+".timeout", "must be at most 24h")
		}
		if rule.Retries != nil {
			validateRetries(f, p+".retries", rule.Retries, false)
		}
	}
}

func validateBackends(f *fieldErrors, path string, bs []*configv1.Backend) {
	var sum uint32
	for i, b := range bs {
		bp := fmt.Sprintf("%s[%d]", path, i)
		validateBackend(f, bp, b)
		if b.Weight > 100 {
			f.add(bp+".weight", "must be 0..100, got %d", b.Weight)
		}
		sum += b.Weight
	}
	switch {
	case len(bs) == 1 && bs[0].Weight != 0 && bs[0].Weight != 100:
		f.add(path+"[0].weight", "a single backend takes all traffic: omit weight or set 100")
	case len(bs) > 1 && sum != 100:
		f.add(path, "weights must sum to 100, got %d", sum)
	}
}

func validateBackend(f *fieldErrors, path string, b *configv1.Backend) {
	validateName(f, path+".service", b.Service)
	if b.Tag != "" && !tagRE.MatchString(b.Tag) {
		f.add(path+".tag", "must be 1-63 letters, digits, '.', '_' or '-', got %q", b.Tag)
	}
}

func validatePath(f *fieldErrors, path string, m *configv1.StringMatch) {
	if count(m.Exact != "", m.Prefix != "", m.Regex != "") != 1 {
		f.add(path, "set exactly one of exact, prefix, regex")
		return
	}
	if m.Exact != "" && !strings.HasPrefix(m.Exact, "/") {
		f.add(path+".exact", "must start with '/', got %q", m.Exact)
	}
	if m.Prefix != "" && !strings.HasPrefix(m.Prefix, "/") {
		f.add(path+".prefix", "must start with '/', got %q", m.Prefix)
	}
	validRegex(f, path+".regex", m.Regex)
}

func validateHeaderMatch(f *fieldErrors, path string, h *configv1.HeaderMatch) {
	headerName(f, path+".name", h.Name)
	if count(h.Exact != "", h.Prefix != "", h.Regex != "", h.Present) != 1 {
		f.add(path, "set exactly one of exact, prefix, regex, present")
	}
	validRegex(f, path+".regex", h.Regex)
}

func validateHeaderModifier(f *fieldErrors, path string, h *configv1.HeaderModifier) {
	if h == nil {
		return
	}
	for _, group := range []struct {
		field string
		m     map[string]string
	}{{"set", h.Set}, {"add", h.Add}} {
		for _, name := range slices.Sorted(maps.Keys(group.m)) {
			headerName(f, path+"."+group.field+"."+name, name)
			if strings.EqualFold(name, "host") {
				f.add(path+"."+group.field+"."+name, "the host header cannot be modified")
			}
		}
	}
	for i, name := range h.Remove {
		headerName(f, fmt.Sprintf("%s.remove[%d]", path, i), name)
	}
}

func headerName(f *fieldErrors, path, name string) {
	switch {
	case name == "":
		f.add(path, "required")
	case strings.HasPrefix(name, ":"):
		f.add(path, "pseudo-header %q cannot be used", name)
	case !headerNameRE.MatchString(name):
		f.add(path, "%q is not a valid header name", name)
	}
}

func validRegex(f *fieldErrors, path, re string) {
	if re == "" {
		return
	}
	if _, err := regexp.Compile(re); err != nil {
		f.add(path, "invalid RE2 regular expression: %v", err)
	}
}

func validateAuthorizationPolicy(f *fieldErrors, p *configv1.AuthorizationPolicy) {
	validateName(f, "spec.service", p.Service)
	if p.Action != "" {
		oneOf(f, "spec.action", p.Action, []string{"allow", "deny"})
	}
	if len(p.Rules) == 0 {
		f.add("spec.rules", "at least one rule is required")
	}
	for i, r := range p.Rules {
		rp := fmt.Sprintf("spec.rules[%d]", i)
		if len(r.From) == 0 && len(r.Methods) == 0 && len(r.Paths) == 0 {
			f.add(rp, "set at least one of from, methods, paths")
		}
		for j, id := range r.From {
			fp := fmt.Sprintf("%s.from[%d]", rp, j)
			switch {
			case id == "*":
			case strings.Count(id, "*") > 1 || (strings.Contains(id, "*") && !strings.HasSuffix(id, "*")):
				f.add(fp, "'*' may only end the ID, got %q", id)
			case !spiffeRE.MatchString(strings.TrimSuffix(id, "*")):
				f.add(fp, "must be a SPIFFE ID like spiffe://switchyard.local/ns/default/sa/frontend, got %q", id)
			}
		}
		for j, m := range r.Methods {
			oneOf(f, fmt.Sprintf("%s.methods[%d]", rp, j), m, httpMethods)
		}
		for j, path := range r.Paths {
			pp := fmt.Sprintf("%s.paths[%d]", rp, j)
			switch {
			case path == "*":
			case !strings.HasPrefix(path, "/"):
				f.add(pp, "must start with '/', got %q", path)
			case strings.Contains(strings.TrimSuffix(path, "*"), "*"):
				f.add(pp, "'*' may only end the path, got %q", path)
			}
		}
	}
}

func validateRateLimitPolicy(f *fieldErrors, p *configv1.RateLimitPolicy) {
	validateName(f, "spec.service", p.Service)
	if p.Domain != "" && !tagRE.MatchString(p.Domain) {
		f.add("spec.domain", "must be 1-63 letters, digits, '.', '_' or '-', got %q", p.Domain)
	}
	if len(p.Descriptors) == 0 && p.Local == nil {
		f.add("spec", "set descriptors, local or both")
	}
	for i, d := range p.Descriptors {
		dp := fmt.Sprintf("spec.descriptors[%d]", i)
		if len(d.Entries) == 0 {
			f.add(dp+".entries", "at least one entry is required")
		}
		keys := map[string]bool{}
		for j, e := range d.Entries {
			ep := fmt.Sprintf("%s.entries[%d]", dp, j)
			if e.Key == "" {
				f.add(ep+".key", "required")
			} else if keys[e.Key] {
				f.add(ep+".key", "duplicate key %q in one descriptor", e.Key)
			}
			keys[e.Key] = true
			if count(e.Value != "", e.Header != "", e.RemoteAddress) != 1 {
				f.add(ep, "set exactly one of value, header, remote_address")
			}
			if e.Header != "" {
				headerName(f, ep+".header", e.Header)
			}
		}
	}
	if p.FailureMode != "" {
		oneOf(f, "spec.failure_mode", p.FailureMode, []string{"allow", "deny"})
	}
	positiveDuration(f, "spec.timeout", p.Timeout, 10*time.Second)
	if l := p.Local; l != nil {
		if l.MaxTokens == 0 {
			f.add("spec.local.max_tokens", "must be at least 1")
		}
		if l.TokensPerFill > l.MaxTokens {
			f.add("spec.local.tokens_per_fill", "must not exceed max_tokens (%d)", l.MaxTokens)
		}
		switch {
		case l.FillInterval == nil:
			f.add("spec.local.fill_interval", "required")
		case l.FillInterval.AsDuration() < 50*time.Millisecond:
			f.add("spec.local.fill_interval", "must be at least 50ms")
		}
	}
}

func count(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}
