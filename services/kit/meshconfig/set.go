package meshconfig

import (
	"errors"
	"fmt"
	"slices"

	configv1 "github.com/switchyard-mesh/switchyard/proto/switchyard/config/v1"
)

// CheckSet runs the checks that span documents (each one is already valid
// on its own): today, that no two ServiceDefaults claim the same
// outbound_port. The error wraps one *FieldError per conflicting document,
// naming the document that keeps the port. Parse runs it over the documents
// of one apply; the control plane runs it over everything stored.
func CheckSet(docs []Document) error {
	_, errs := OutboundPorts(docs)
	return errors.Join(errs...)
}

// OutboundPorts assigns each TCP service its outbound_port, keyed by service
// name. Documents are taken in name order, so when two claim one port the
// service whose name sorts first keeps it — the same answer everywhere, for
// any order of the input — and the other gets none and an error.
func OutboundPorts(docs []Document) (map[string]uint32, []error) {
	type claim struct {
		name string
		port uint32
	}
	var claims []claim
	for _, d := range docs {
		sd, ok := d.Spec.(*configv1.ServiceDefaults)
		if !ok || sd.GetProtocol() != "tcp" || sd.GetOutboundPort() == 0 {
			continue
		}
		claims = append(claims, claim{d.Name, sd.GetOutboundPort()})
	}
	slices.SortFunc(claims, func(a, b claim) int {
		if a.name < b.name {
			return -1
		}
		if a.name > b.name {
			return 1
		}
		return 0
	})
	ports := make(map[string]uint32, len(claims))
	owner := map[uint32]string{}
	var errs []error
	for _, c := range claims {
		if o, taken := owner[c.port]; taken {
			errs = append(errs, &FieldError{Kind: KindServiceDefaults, Name: c.name, Field: "spec.outbound_port",
				Reason: fmt.Sprintf("%d is already the outbound_port of ServiceDefaults %q", c.port, o)})
			continue
		}
		owner[c.port] = c.name
		ports[c.name] = c.port
	}
	return ports, errs
}

// CheckAgainst runs the cross-document checks for one document being
// applied over others already stored: the new document is refused when it
// claims an outbound_port another ServiceDefaults holds. (A stored
// document of the same kind and name is the one being replaced and is
// skipped.) Conflicts among the stored documents themselves are not its
// business.
func CheckAgainst(doc Document, stored []Document) error {
	sd, ok := doc.Spec.(*configv1.ServiceDefaults)
	if !ok || sd.GetProtocol() != "tcp" || sd.GetOutboundPort() == 0 {
		return nil
	}
	for _, o := range stored {
		if o.Kind == doc.Kind && o.Name == doc.Name {
			continue
		}
		osd, ok := o.Spec.(*configv1.ServiceDefaults)
		if ok && osd.GetProtocol() == "tcp" && osd.GetOutboundPort() == sd.GetOutboundPort() {
			return &FieldError{Kind: KindServiceDefaults, Name: doc.Name, Field: "spec.outbound_port",
				Reason: fmt.Sprintf("%d is already the outbound_port of ServiceDefaults %q", sd.GetOutboundPort(), o.Name)}
		}
	}
	return nil
}
