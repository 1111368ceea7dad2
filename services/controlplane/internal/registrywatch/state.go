// Package registrywatch follows the registry's Watch stream and keeps the
// catalog and config documents the control plane translates. It resumes
// from the last index after a disconnect, takes the registry's full resets,
// and keeps serving what it has while the registry is unreachable.
package registrywatch

import (
	"slices"
	"strings"

	registryv1 "github.com/switchyard-mesh/switchyard/proto/switchyard/registry/v1"

	"github.com/switchyard-mesh/switchyard/services/controlplane/internal/translate"
)

// State is the catalog and documents at an index. The zero value is empty.
type State struct {
	Index     uint64
	instances map[string]map[string]*registryv1.Instance // service → id → instance
	docs      map[string]*registryv1.ConfigDocument      // kind/name → document
}

// Apply folds one WatchResponse into the state and reports whether
// anything the translation depends on changed.
func (s *State) Apply(resp *registryv1.WatchResponse) bool {
	changed := false
	if resp.GetSnapshot() || s.instances == nil {
		s.instances = map[string]map[string]*registryv1.Instance{}
		s.docs = map[string]*registryv1.ConfigDocument{}
		changed = true
	}
	for _, ev := range resp.GetEvents() {
		switch ev.GetType() {
		case registryv1.Event_TYPE_INSTANCE_UPSERT:
			in := ev.GetInstance()
			m := s.instances[in.GetService()]
			if m == nil {
				m = map[string]*registryv1.Instance{}
				s.instances[in.GetService()] = m
			}
			m[in.GetId()] = in
			changed = true
		case registryv1.Event_TYPE_INSTANCE_DELETE:
			in := ev.GetInstance()
			if m := s.instances[in.GetService()]; m != nil {
				delete(m, in.GetId())
				if len(m) == 0 {
					delete(s.instances, in.GetService())
				}
			}
			changed = true
		case registryv1.Event_TYPE_CONFIG_UPSERT:
			d := ev.GetConfig()
			s.docs[d.GetKind()+"/"+d.GetName()] = d
			changed = true
		case registryv1.Event_TYPE_CONFIG_DELETE:
			d := ev.GetConfig()
			delete(s.docs, d.GetKind()+"/"+d.GetName())
			changed = true
		}
	}
	if resp.GetIndex() > s.Index || resp.GetSnapshot() {
		s.Index = resp.GetIndex()
	}
	return changed
}

// Catalog converts the instances for translation, sorted for determinism.
func (s *State) Catalog() translate.Catalog {
	var cat translate.Catalog
	for _, name := range sortedKeys(s.instances) {
		svc := translate.Service{Name: name}
		for _, id := range sortedKeys(s.instances[name]) {
			in := s.instances[name][id]
			ti := translate.Instance{
				ID:      in.GetId(),
				Address: in.GetAddress(),
				Port:    in.GetPort(),
				Health:  health(in.GetHealth()),
				Region:  in.GetLocality().GetRegion(),
				Zone:    in.GetLocality().GetZone(),
				Tags:    in.GetTags(),
			}
			if ns := in.GetMetadata()["namespace"]; ns != "" {
				svc.Namespace = ns
			}
			if id := in.GetMetadata()["spiffe_id"]; id != "" {
				svc.SPIFFEID = id
			}
			svc.Instances = append(svc.Instances, ti)
		}
		cat.Services = append(cat.Services, svc)
	}
	return cat
}

// Documents returns the stored documents, sorted by kind/name.
func (s *State) Documents() []*registryv1.ConfigDocument {
	out := make([]*registryv1.ConfigDocument, 0, len(s.docs))
	for _, k := range sortedKeys(s.docs) {
		out = append(out, s.docs[k])
	}
	return out
}

func health(h registryv1.HealthStatus) translate.Health {
	switch h {
	case registryv1.HealthStatus_HEALTH_STATUS_PASSING:
		return translate.HealthPassing
	case registryv1.HealthStatus_HEALTH_STATUS_WARNING:
		return translate.HealthWarning
	case registryv1.HealthStatus_HEALTH_STATUS_CRITICAL:
		return translate.HealthCritical
	}
	return translate.HealthUnknown
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, strings.Compare)
	return out
}
