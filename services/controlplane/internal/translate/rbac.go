package translate

import (
	"fmt"
	"strings"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	networkrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// rbacPolicies compiles a service's AuthorizationPolicies into at most two
// RBAC rule sets, DENY first, then ALLOW. No policies → no RBAC (open);
// once any allow policy exists, what it does not allow is denied.
func rbacPolicies(authz []namedAuthz) []*rbacv3.RBAC {
	deny := &rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: map[string]*rbacv3.Policy{}}
	allow := &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{}}
	for _, a := range authz {
		target := allow
		if a.policy.GetAction() == "deny" {
			target = deny
		}
		for i, r := range a.policy.GetRules() {
			target.Policies[fmt.Sprintf("%s/%d", a.name, i)] = &rbacv3.Policy{
				Permissions: []*rbacv3.Permission{permission(r)},
				Principals:  principals(r.GetFrom()),
			}
		}
	}
	var out []*rbacv3.RBAC
	if len(deny.Policies) > 0 {
		out = append(out, deny)
	}
	if len(allow.Policies) > 0 {
		out = append(out, allow)
	}
	return out
}

func networkRBAC(r *rbacv3.RBAC) *networkrbacv3.RBAC {
	prefix := "inbound_rbac_allow"
	if r.GetAction() == rbacv3.RBAC_DENY {
		prefix = "inbound_rbac_deny"
	}
	return &networkrbacv3.RBAC{Rules: r, StatPrefix: prefix}
}

func principals(from []string) []*rbacv3.Principal {
	if len(from) == 0 {
		return []*rbacv3.Principal{{Identifier: &rbacv3.Principal_Any{Any: true}}}
	}
	var out []*rbacv3.Principal
	for _, id := range from {
		m := &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: id}}
		switch {
		case id == "*":
			m = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "spiffe://"}}
		case strings.HasSuffix(id, "*"):
			m = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: strings.TrimSuffix(id, "*")}}
		}
		out = append(out, &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{
			Authenticated: &rbacv3.Principal_Authenticated{PrincipalName: m},
		}})
	}
	return out
}

// permission is the AND of the rule's method set and path set.
func permission(r interface {
	GetMethods() []string
	GetPaths() []string
}) *rbacv3.Permission {
	var and []*rbacv3.Permission
	if ms := r.GetMethods(); len(ms) > 0 {
		var or []*rbacv3.Permission
		for _, m := range ms {
			or = append(or, &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: &routev3.HeaderMatcher{
				Name:                 ":method",
				HeaderMatchSpecifier: stringMatch(m, "", ""),
			}}})
		}
		and = append(and, orPermission(or))
	}
	if ps := r.GetPaths(); len(ps) > 0 {
		var or []*rbacv3.Permission
		for _, p := range ps {
			sm := &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: p}}
			switch {
			case p == "*":
				sm = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "/"}}
			case strings.HasSuffix(p, "*"):
				sm = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: strings.TrimSuffix(p, "*")}}
			}
			or = append(or, &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{
				UrlPath: &matcherv3.PathMatcher{Rule: &matcherv3.PathMatcher_Path{Path: sm}},
			}})
		}
		and = append(and, orPermission(or))
	}
	switch len(and) {
	case 0:
		return &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}}
	case 1:
		return and[0]
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: and}}}
}

func orPermission(or []*rbacv3.Permission) *rbacv3.Permission {
	if len(or) == 1 {
		return or[0]
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: or}}}
}
