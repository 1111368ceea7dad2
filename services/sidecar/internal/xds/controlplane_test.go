package xds

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// TestControlPlaneGoldenFiles validates every sidecar resource in the
// control plane's golden translation files (its testdata), so a field the
// control plane starts emitting that this proxy does not implement fails
// here, not as a NACK in production; and shows each in /config_dump as
// Envoy's JSON of it. Gateway and proxyless outputs are for other clients
// and skipped.
func TestControlPlaneGoldenFiles(t *testing.T) {
	files, _ := filepath.Glob("../../../controlplane/internal/translate/testdata/*.json")
	if len(files) == 0 {
		t.Fatal("no control plane golden files in services/controlplane/internal/translate/testdata")
	}
	for _, f := range files {
		base := filepath.Base(f)
		if strings.HasPrefix(base, "gateway") || strings.HasPrefix(base, "proxyless") {
			continue
		}
		t.Run(base, func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var doc map[string][]json.RawMessage
			if err := json.Unmarshal(raw, &doc); err != nil {
				t.Fatal(err)
			}
			for _, r := range doc["listeners"] {
				var m listenerv3.Listener
				mustJSON(t, r, &m)
				if _, err := validateListener(t, &m); err != nil {
					t.Errorf("listener %s: %v", m.GetName(), err)
				}
				sameDump(t, &m)
			}
			for _, r := range doc["routes"] {
				var m routev3.RouteConfiguration
				mustJSON(t, r, &m)
				if _, err := validateRouteConfig(t, &m); err != nil {
					t.Errorf("route %s: %v", m.GetName(), err)
				}
				sameDump(t, &m)
			}
			for _, r := range doc["clusters"] {
				var m clusterv3.Cluster
				mustJSON(t, r, &m)
				if _, err := validateCluster(t, &m); err != nil {
					t.Errorf("cluster %s: %v", m.GetName(), err)
				}
				sameDump(t, &m)
			}
			for _, r := range doc["endpoints"] {
				var m endpointv3.ClusterLoadAssignment
				mustJSON(t, r, &m)
				if _, err := validateEndpoints(t, &m); err != nil {
					t.Errorf("endpoints %s: %v", m.GetClusterName(), err)
				}
				sameDump(t, &m)
			}
		})
	}
}

func mustJSON(t *testing.T, raw []byte, m proto.Message) {
	t.Helper()
	if err := protojson.Unmarshal(raw, m); err != nil {
		t.Fatal(err)
	}
}

// sameDump checks that /config_dump shows an accepted resource, decoded
// into the subset, as Envoy's own types print it.
func sameDump(t *testing.T, m proto.Message) {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ResourceJSON(a)
	if err != nil {
		t.Fatal(err)
	}
	want, err := protojson.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("config dump of %s:\n got %s\nwant %s", a.GetTypeUrl(), got, want)
	}
}
