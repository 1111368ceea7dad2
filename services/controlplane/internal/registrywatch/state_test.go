package registrywatch

import (
	"testing"

	registryv1 "github.com/switchyard-mesh/switchyard/proto/switchyard/registry/v1"

	"github.com/switchyard-mesh/switchyard/services/controlplane/internal/translate"
)

func upsert(svc, id string, port uint32, h registryv1.HealthStatus) *registryv1.Event {
	return &registryv1.Event{Type: registryv1.Event_TYPE_INSTANCE_UPSERT, Instance: &registryv1.Instance{
		Service: svc, Id: id, Address: "10.0.0.1", Port: port, Health: h,
		Locality: &registryv1.Locality{Region: "eu", Zone: "eu-1"}, Metadata: map[string]string{"namespace": "shop"},
	}}
}

func TestApply(t *testing.T) {
	var s State
	passing := registryv1.HealthStatus_HEALTH_STATUS_PASSING
	steps := []struct {
		name     string
		resp     *registryv1.WatchResponse
		changed  bool
		services int
		docs     int
		index    uint64
	}{
		{"snapshot", &registryv1.WatchResponse{Index: 5, Snapshot: true, Events: []*registryv1.Event{
			upsert("orders", "o1", 1, passing), upsert("orders", "o2", 2, passing), upsert("users", "u1", 3, passing),
			{Type: registryv1.Event_TYPE_CONFIG_UPSERT, Config: &registryv1.ConfigDocument{Kind: "HTTPRoute", Name: "r", Body: []byte(`{}`)}},
		}}, true, 2, 1, 5},
		{"progress only", &registryv1.WatchResponse{Index: 6}, false, 2, 1, 6},
		{"delete last users instance", &registryv1.WatchResponse{Index: 7, Events: []*registryv1.Event{
			{Type: registryv1.Event_TYPE_INSTANCE_DELETE, Instance: &registryv1.Instance{Service: "users", Id: "u1"}},
		}}, true, 1, 1, 7},
		{"delete document", &registryv1.WatchResponse{Index: 8, Events: []*registryv1.Event{
			{Type: registryv1.Event_TYPE_CONFIG_DELETE, Config: &registryv1.ConfigDocument{Kind: "HTTPRoute", Name: "r"}},
		}}, true, 1, 0, 8},
		{"resync replaces everything", &registryv1.WatchResponse{Index: 20, Snapshot: true, Events: []*registryv1.Event{
			upsert("billing", "b1", 4, registryv1.HealthStatus_HEALTH_STATUS_CRITICAL),
		}}, true, 1, 0, 20},
	}
	for _, st := range steps {
		if got := s.Apply(st.resp); got != st.changed {
			t.Errorf("%s: changed = %v, want %v", st.name, got, st.changed)
		}
		cat := s.Catalog()
		if len(cat.Services) != st.services || len(s.Documents()) != st.docs || s.Index != st.index {
			t.Errorf("%s: services=%d docs=%d index=%d, want %d %d %d", st.name, len(cat.Services), len(s.Documents()), s.Index, st.services, st.docs, st.index)
		}
	}
	got := s.Catalog().Services[0]
	if got.Name != "billing" || got.Namespace != "shop" || got.Instances[0].Health != translate.HealthCritical || got.Instances[0].Region != "eu" {
		t.Errorf("converted service = %+v", got)
	}
}
