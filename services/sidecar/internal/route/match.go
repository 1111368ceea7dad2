// Package route selects the route for a request: virtual host by authority
// (exact, *.suffix, prefix.*, then *), then the first route whose match
// (path prefix/exact/regex, headers incl. :method, query parameters) fits,
// and finally a cluster out of the route's weighted clusters.
package route

import (
	"net"
	"net/http"
	"regexp"
	"strings"
)

// StringMatcher matches a string one way; exactly one of the fields is set.
type StringMatcher struct {
	Exact, Prefix, Suffix, Contains string
	Regex                           *regexp.Regexp
	IgnoreCase                      bool
}

// Match reports whether s matches.
func (m *StringMatcher) Match(s string) bool {
	if m.Regex != nil {
		return m.Regex.MatchString(s)
	}
	want := [4]string{m.Exact, m.Prefix, m.Suffix, m.Contains}
	if m.IgnoreCase {
		s = strings.ToLower(s)
		for i := range want {
			want[i] = strings.ToLower(want[i])
		}
	}
	switch {
	case m.Exact != "":
		return s == want[0]
	case m.Prefix != "":
		return strings.HasPrefix(s, want[1])
	case m.Suffix != "":
		return strings.HasSuffix(s, want[2])
	case m.Contains != "":
		return strings.Contains(s, want[3])
	}
	return s == "" // an empty exact matcher matches the empty string
}

// HeaderMatcher matches one request header (Matches); pseudo-headers :method,
// :authority, :path and :scheme read the request line.
type HeaderMatcher struct {
	Name    string
	Present *bool // match presence (or absence) only
	Value   *StringMatcher
	Invert  bool
}

func (h *HeaderMatcher) Matches(r *http.Request) bool {
	v, ok := headerValue(r, h.Name)
	var got bool
	switch {
	case h.Present != nil:
		got = ok == *h.Present
	case !ok:
		got = false
	default:
		got = h.Value.Match(v)
	}
	return got != h.Invert
}

func headerValue(r *http.Request, name string) (string, bool) {
	switch name {
	case ":method":
		return r.Method, true
	case ":authority":
		return r.Host, true
	case ":path":
		return r.URL.RequestURI(), true
	case ":scheme":
		if r.TLS != nil {
			return "https", true
		}
		return "http", true
	}
	vs := r.Header.Values(name)
	if len(vs) == 0 {
		return "", false
	}
	return strings.Join(vs, ","), true
}

// QueryMatcher matches one query parameter.
type QueryMatcher struct {
	Name    string
	Present bool // only presence is required
	Value   *StringMatcher
}

// Match is a route's match criteria; exactly one of Prefix, Path, Regex is used.
type Match struct {
	Prefix        string
	Path          string
	Regex         *regexp.Regexp
	CaseSensitive bool
	Headers       []HeaderMatcher
	Query         []QueryMatcher
}

// Matches reports whether r fits m.
func (m *Match) Matches(r *http.Request) bool {
	path := r.URL.Path
	switch {
	case m.Regex != nil:
		if !m.Regex.MatchString(path) {
			return false
		}
	case m.Path != "":
		if m.CaseSensitive && path != m.Path || !m.CaseSensitive && !strings.EqualFold(path, m.Path) {
			return false
		}
	default:
		if m.CaseSensitive && !strings.HasPrefix(path, m.Prefix) ||
			!m.CaseSensitive && !strings.HasPrefix(strings.ToLower(path), strings.ToLower(m.Prefix)) {
			return false
		}
	}
	for i := range m.Headers {
		if !m.Headers[i].Matches(r) {
			return false
		}
	}
	if len(m.Query) > 0 {
		q := r.URL.Query()
		for _, qm := range m.Query {
			vs, ok := q[qm.Name]
			if !ok {
				return false
			}
			if !qm.Present && qm.Value != nil && !qm.Value.Match(vs[0]) {
				return false
			}
		}
	}
	return true
}

// VirtualHost groups routes under a set of domains.
type VirtualHost struct {
	Name    string
	Domains []string
	Routes  []Route
}

// Table is a compiled RouteConfiguration.
type Table struct {
	Name         string
	VirtualHosts []VirtualHost
}

// Find returns the route for r, or nil when no virtual host or route matches.
func (t *Table) Find(r *http.Request) (*VirtualHost, *Route) {
	host := strings.ToLower(r.Host)
	// Only a host with a colon can have a port: SplitHostPort's error for
	// one without (the usual "users") is an allocation per request.
	if strings.IndexByte(host, ':') >= 0 {
		if h, _, err := net.SplitHostPort(host); err == nil {
			// Try "users:8080" first, then "users", before the catch-all.
			if vh := t.virtualHost(host, false); vh != nil {
				return vh, vh.find(r)
			}
			host = h
		}
	}
	vh := t.virtualHost(host, true)
	if vh == nil {
		return nil, nil
	}
	return vh, vh.find(r)
}

func (vh *VirtualHost) find(r *http.Request) *Route {
	for i := range vh.Routes {
		if vh.Routes[i].Match.Matches(r) {
			return &vh.Routes[i]
		}
	}
	return nil
}

// virtualHost applies Envoy's precedence: exact, longest suffix wildcard,
// longest prefix wildcard, then "*".
func (t *Table) virtualHost(host string, allowAny bool) *VirtualHost {
	var suffix, prefix, any *VirtualHost
	suffixLen, prefixLen := -1, -1
	for i := range t.VirtualHosts {
		vh := &t.VirtualHosts[i]
		for _, d := range vh.Domains {
			d = strings.ToLower(d)
			switch {
			case d == "*":
				if any == nil {
					any = vh
				}
			case d == host:
				return vh
			case strings.HasPrefix(d, "*") && strings.HasSuffix(host, d[1:]) && len(d) > suffixLen:
				suffix, suffixLen = vh, len(d)
			case strings.HasSuffix(d, "*") && strings.HasPrefix(host, d[:len(d)-1]) && len(d) > prefixLen:
				prefix, prefixLen = vh, len(d)
			}
		}
	}
	switch {
	case suffix != nil:
		return suffix
	case prefix != nil:
		return prefix
	case allowAny:
		return any
	}
	return nil
}
