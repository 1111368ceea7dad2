package rbac

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/fuzzbytes"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/route"
)

// Caller IDs: none, two listed ones, and near misses an exact match must
// tell apart. The fuzzer adds one more of its own.
var fuzzPeers = []string{
	"", frontend, billing,
	frontend + "-canary", frontend + "/",
	"SPIFFE://switchyard.local/ns/shop/sa/frontend",
	"spiffe://other.example/ns/shop/sa/frontend",
}

var (
	fuzzPrefixes = []string{"spiffe://switchyard.local/", "spiffe://switchyard.local/ns/shop/sa/front"}
	fuzzPorts    = []uint32{8080, 9090, 15006}
	fuzzPaths    = []string{"/users", "/users/1", "/orders", "/"} // plus TCP (no HTTP)
	fuzzPathMs   = []route.StringMatcher{{Prefix: "/users"}, {Exact: "/orders"}, {Exact: "/users"}, {Suffix: "/1"}}
)

// A request shape is a port and a path, the last "path" meaning TCP.
const fuzzShapes = 3 * 5

func shapePort(s int) uint32 { return fuzzPorts[s/5] }
func shapePath(s int) (string, bool) {
	if s%5 == 4 {
		return "", false
	}
	return fuzzPaths[s%5], true
}

// FuzzDecideMatchesSetModel builds an engine of up to four policies whose
// permissions (ports, paths, and/or/not) and principals (any, authenticated,
// exact or prefix SPIFFE IDs, and/or/not) come from the fuzz input, and
// evaluates each rule tree as the set of callers (or request shapes) it
// admits. For every caller and request shape it checks that:
//   - Decide names the first policy whose permissions and principals both
//     contain the request, and allows iff the action is Allow; with none, it
//     allows iff the action is Deny and names no policy;
//   - a caller without a certificate never matches Authenticated, and path
//     rules never match TCP;
//   - an Allow engine built only from exact IDs admits only those IDs;
//   - Decide is deterministic, and flipping the action flips only the verdict.
func FuzzDecideMatchesSetModel(f *testing.F) {
	// Bytes: action, policy count, then per policy a permission count and
	// trees, a principal count and trees (kinds as in ruleGen).
	f.Add([]byte{0, 1, 1, 0, 1, 2, 1}, "")                                                         // allow frontend
	f.Add([]byte{1, 1, 1, 0, 1, 2, 2}, frontend)                                                   // deny billing
	f.Add([]byte{1, 2, 1, 0, 1, 3, 1, 1, 1, 0, 1, 1}, frontend+"-v2")                              // deny: prefix first, then any authenticated on 8080
	f.Add([]byte{0, 1, 1, 4, 1, 2, 0, 3, 1, 2, 1, 6, 1, 2, 1, 5, 1, 3, 0, 4, 2, 7}, billing+"-v2") // and/or/not
	f.Add([]byte{0, 2, 1, 0, 0, 2, 2, 1, 1, 2, 1, 4, 1}, "")                                       // no principals; not authenticated
	f.Add([]byte{0, 0}, frontend)                                                                  // no policies

	reqs := make([]*http.Request, len(fuzzPaths))
	for i, p := range fuzzPaths {
		reqs[i] = httptest.NewRequest("GET", "http://users"+p, nil)
	}
	f.Fuzz(func(t *testing.T, data []byte, peer string) {
		in := fuzzbytes.Reader(data)
		g := &ruleGen{in: &in, peers: append(slices.Clip(fuzzPeers), peer), exactOnly: true}
		e := Engine{Action: Action(in.Next() % 2)}
		var perms []uint32 // shapes each policy's permissions admit
		var prins []uint16 // callers each policy's principals admit
		for i := range int(in.Next() % 5) {
			p := Policy{Name: "policy-" + string(rune('a'+i))}
			var pm uint32
			var cm uint16
			for range in.Next() % 3 {
				perm, m := g.permission(0)
				p.Permissions = append(p.Permissions, perm)
				pm |= m
			}
			for range in.Next() % 3 {
				prin, m := g.principal(0)
				p.Principals = append(p.Principals, prin)
				cm |= m
			}
			e.Policies = append(e.Policies, p)
			perms, prins = append(perms, pm), append(prins, cm)
		}
		flipped := Engine{Action: 1 - e.Action, Policies: e.Policies}

		for c, id := range g.peers {
			for s := range fuzzShapes {
				req := Request{PeerID: id, DestPort: shapePort(s)}
				if _, isHTTP := shapePath(s); isHTTP {
					req.HTTP = reqs[s%5]
				}
				wantPolicy := ""
				for i := range e.Policies {
					if perms[i]&(1<<s) != 0 && prins[i]&(1<<c) != 0 {
						wantPolicy = e.Policies[i].Name
						break
					}
				}
				want := (wantPolicy != "") == (e.Action == Allow)
				got, policy := e.Decide(req)
				if got != want || policy != wantPolicy {
					t.Fatalf("Decide(peer %q, port %d, http %v, path %q) = %v, %q; want %v, %q",
						id, req.DestPort, req.HTTP != nil, pathOf(req), got, policy, want, wantPolicy)
				}
				if got2, policy2 := e.Decide(req); got2 != got || policy2 != policy {
					t.Fatalf("Decide(peer %q) not deterministic: %v,%q then %v,%q", id, got, policy, got2, policy2)
				}
				if fg, fp := flipped.Decide(req); fg == got || fp != policy {
					t.Fatalf("Decide(peer %q) = %v,%q; with the action flipped %v,%q", id, got, policy, fg, fp)
				}
				if e.Action == Allow && got && g.exactOnly && !slices.Contains(g.exact, id) {
					t.Fatalf("allow engine of exact IDs %q admitted %q", g.exact, id)
				}
			}
		}
	})
}

func pathOf(r Request) string {
	if r.HTTP == nil {
		return ""
	}
	return r.HTTP.URL.Path
}

// ruleGen decodes rule trees and, independently of the engine, the set each
// one admits: a bitmask over request shapes or over peers.
type ruleGen struct {
	in        *fuzzbytes.Reader
	peers     []string
	exact     []string // IDs named by exact principals
	exactOnly bool     // every principal is built from exact IDs, And and Or
}

const maxDepth = 3

func (g *ruleGen) permission(depth int) (Permission, uint32) {
	const all = 1<<fuzzShapes - 1
	kind := g.in.Next() % 6
	if depth >= maxDepth {
		kind %= 3
	}
	switch kind {
	case 0:
		return Permission{Any: true}, all
	case 1:
		port := fuzzPorts[int(g.in.Next())%len(fuzzPorts)]
		var m uint32
		for s := range fuzzShapes {
			if shapePort(s) == port {
				m |= 1 << s
			}
		}
		return Permission{DestinationPort: port}, m
	case 2:
		pm := fuzzPathMs[int(g.in.Next())%len(fuzzPathMs)]
		var m uint32
		for s := range fuzzShapes {
			if p, isHTTP := shapePath(s); isHTTP && matchesPath(pm, p) {
				m |= 1 << s
			}
		}
		return Permission{Path: &pm}, m
	case 3:
		sub, m := g.permission(depth + 1)
		return Permission{Not: &sub}, all &^ m
	}
	var list []Permission
	m := uint32(0)
	if kind == 4 {
		m = all
	}
	for range 1 + g.in.Next()%3 {
		sub, sm := g.permission(depth + 1)
		list = append(list, sub)
		if kind == 4 {
			m &= sm
		} else {
			m |= sm
		}
	}
	if kind == 4 {
		return Permission{And: list}, m
	}
	return Permission{Or: list}, m
}

func (g *ruleGen) principal(depth int) (Principal, uint16) {
	all := uint16(1)<<len(g.peers) - 1
	authenticated := func(ok func(id string) bool) uint16 {
		var m uint16
		for i, id := range g.peers {
			if id != "" && ok(id) {
				m |= 1 << i
			}
		}
		return m
	}
	kind := g.in.Next() % 7
	if depth >= maxDepth {
		kind %= 4
	}
	switch kind {
	case 0:
		g.exactOnly = false
		return Principal{Any: true}, all
	case 1:
		g.exactOnly = false
		return Principal{Authenticated: true}, authenticated(func(string) bool { return true })
	case 2:
		want := g.peers[int(g.in.Next())%len(g.peers)]
		g.exact = append(g.exact, want)
		return Principal{Authenticated: true, PrincipalName: &route.StringMatcher{Exact: want}},
			authenticated(func(id string) bool { return id == want })
	case 3:
		g.exactOnly = false
		prefix := fuzzPrefixes[int(g.in.Next())%len(fuzzPrefixes)]
		return Principal{Authenticated: true, PrincipalName: &route.StringMatcher{Prefix: prefix}},
			authenticated(func(id string) bool { return strings.HasPrefix(id, prefix) })
	case 4:
		g.exactOnly = false
		sub, m := g.principal(depth + 1)
		return Principal{Not: &sub}, all &^ m
	}
	var list []Principal
	m := uint16(0)
	if kind == 5 {
		m = all
	}
	for range 1 + g.in.Next()%3 {
		sub, sm := g.principal(depth + 1)
		list = append(list, sub)
		if kind == 5 {
			m &= sm
		} else {
			m |= sm
		}
	}
	if kind == 5 {
		return Principal{And: list}, m
	}
	return Principal{Or: list}, m
}

// matchesPath is the documented meaning of the few path matchers used here.
func matchesPath(m route.StringMatcher, p string) bool {
	switch {
	case m.Exact != "":
		return p == m.Exact
	case m.Prefix != "":
		return strings.HasPrefix(p, m.Prefix)
	default:
		return strings.HasSuffix(p, m.Suffix)
	}
}
