package rbac

import (
	"net/http/httptest"
	"testing"

	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/route"
)

const (
	frontend = "spiffe://switchyard.local/ns/shop/sa/frontend"
	billing  = "spiffe://switchyard.local/ns/shop/sa/billing"
)

func id(s string) Principal {
	return Principal{Authenticated: true, PrincipalName: &route.StringMatcher{Exact: s}}
}

func TestDecide(t *testing.T) {
	allowFrontend := Engine{Action: Allow, Policies: []Policy{{Name: "frontend-to-users", Permissions: []Permission{{Any: true}}, Principals: []Principal{id(frontend)}}}}
	denyBilling := Engine{Action: Deny, Policies: []Policy{{Name: "no-billing", Permissions: []Permission{{Any: true}}, Principals: []Principal{id(billing)}}}}
	readOnly := Engine{Action: Allow, Policies: []Policy{{Name: "get-only",
		Permissions: []Permission{{And: []Permission{
			{Header: &route.HeaderMatcher{Name: ":method", Value: &route.StringMatcher{Exact: "GET"}}},
			{Path: &route.StringMatcher{Prefix: "/users"}},
			{Not: &Permission{DestinationPort: 9999}},
		}}},
		Principals: []Principal{{Or: []Principal{id(frontend), id(billing)}}}}}}
	anyAuth := Engine{Action: Allow, Policies: []Policy{{Name: "mesh", Permissions: []Permission{{Any: true}}, Principals: []Principal{{Authenticated: true}}}}}
	tests := []struct {
		name       string
		e          Engine
		method     string
		path       string
		peer       string
		want       bool
		wantPolicy string
	}{
		{"allow listed", allowFrontend, "GET", "/", frontend, true, "frontend-to-users"},
		{"allow: others denied", allowFrontend, "GET", "/", billing, false, ""},
		{"allow: no peer denied", allowFrontend, "GET", "/", "", false, ""},
		{"deny listed", denyBilling, "GET", "/", billing, false, "no-billing"},
		{"deny: others pass", denyBilling, "GET", "/", frontend, true, ""},
		{"and/or/not: GET /users", readOnly, "GET", "/users/1", billing, true, "get-only"},
		{"and/or/not: POST refused", readOnly, "POST", "/users/1", frontend, false, ""},
		{"and/or/not: wrong path", readOnly, "GET", "/orders", frontend, false, ""},
		{"any authenticated", anyAuth, "GET", "/", billing, true, "mesh"},
		{"any authenticated needs a peer", anyAuth, "GET", "/", "", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "http://users"+tt.path, nil)
			got, pol := tt.e.Decide(Request{HTTP: r, PeerID: tt.peer, DestPort: 15006})
			if got != tt.want || pol != tt.wantPolicy {
				t.Fatalf("Decide = %v,%q want %v,%q", got, pol, tt.want, tt.wantPolicy)
			}
		})
	}
}
