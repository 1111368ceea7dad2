// Package rbac evaluates Envoy RBAC policies (compiled from Switchyard's
// AuthorizationPolicy) against an inbound request and the caller's SPIFFE ID
// taken from its verified client certificate.
package rbac

import (
	"net/http"

	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/route"
)

// Action is what a matching policy means.
type Action int

// Actions: with Allow, only requests some policy matches pass; with Deny,
// requests some policy matches are refused.
const (
	Allow Action = iota
	Deny
)

// Engine is one RBAC filter's rules.
type Engine struct {
	Action   Action
	Policies []Policy
}

// Policy matches when any permission and any principal match.
type Policy struct {
	Name        string
	Permissions []Permission
	Principals  []Principal
}

// Permission describes the request; exactly one field (group) is set.
type Permission struct {
	Any             bool
	And, Or         []Permission
	Not             *Permission
	Header          *route.HeaderMatcher
	Path            *route.StringMatcher
	DestinationPort uint32
}

// Principal describes the caller; exactly one field (group) is set.
type Principal struct {
	Any           bool
	And, Or       []Principal
	Not           *Principal
	Authenticated bool                 // a verified peer certificate…
	PrincipalName *route.StringMatcher // …whose SPIFFE ID matches (nil: any)
	Header        *route.HeaderMatcher
}

// Request is what policies are evaluated against.
type Request struct {
	HTTP     *http.Request // nil for TCP connections: header and path rules never match
	PeerID   string        // SPIFFE ID of the verified client certificate; "" if none
	DestPort uint32
}

// Decide reports whether req may pass and the name of the policy that decided.
func (e *Engine) Decide(req Request) (allowed bool, policy string) {
	for _, p := range e.Policies {
		if p.matches(req) {
			return e.Action == Allow, p.Name
		}
	}
	return e.Action == Deny, ""
}

func (p *Policy) matches(req Request) bool {
	perm := false
	for i := range p.Permissions {
		if p.Permissions[i].matches(req) {
			perm = true
			break
		}
	}
	if !perm {
		return false
	}
	for i := range p.Principals {
		if p.Principals[i].matches(req) {
			return true
		}
	}
	return false
}

func (p *Permission) matches(req Request) bool {
	switch {
	case p.Any:
		return true
	case p.And != nil:
		for i := range p.And {
			if !p.And[i].matches(req) {
				return false
			}
		}
		return true
	case p.Or != nil:
		for i := range p.Or {
			if p.Or[i].matches(req) {
				return true
			}
		}
		return false
	case p.Not != nil:
		return !p.Not.matches(req)
	case p.Header != nil:
		return req.HTTP != nil && p.Header.Matches(req.HTTP)
	case p.Path != nil:
		return req.HTTP != nil && p.Path.Match(req.HTTP.URL.Path)
	case p.DestinationPort != 0:
		return p.DestinationPort == req.DestPort
	}
	return false
}

func (p *Principal) matches(req Request) bool {
	switch {
	case p.Any:
		return true
	case p.And != nil:
		for i := range p.And {
			if !p.And[i].matches(req) {
				return false
			}
		}
		return true
	case p.Or != nil:
		for i := range p.Or {
			if p.Or[i].matches(req) {
				return true
			}
		}
		return false
	case p.Not != nil:
		return !p.Not.matches(req)
	case p.Authenticated:
		return req.PeerID != "" && (p.PrincipalName == nil || p.PrincipalName.Match(req.PeerID))
	case p.Header != nil:
		return req.HTTP != nil && p.Header.Matches(req.HTTP)
	}
	return false
}
