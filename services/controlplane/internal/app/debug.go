package app

import (
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/encoding/protojson"

	registryv1 "github.com/switchyard-mesh/switchyard/proto/switchyard/registry/v1"
	"github.com/switchyard-mesh/switchyard/services/controlplane/internal/translate"
	"github.com/switchyard-mesh/switchyard/services/controlplane/internal/xds"
	"github.com/switchyard-mesh/switchyard/services/kit/admin"
)

// ProxiesResponse is the body of GET /debug/xds/proxies.
type ProxiesResponse struct {
	Proxies []ProxyEntry `json:"proxies"`
}

// ProxyEntry is a proxy's status plus the versions it should be on.
type ProxyEntry struct {
	xds.ProxyStatus
	Current map[string]string `json:"current"` // type → version in its snapshot
}

// ConfigResponse is the body of GET /debug/xds/config?proxy=<id>.
type ConfigResponse struct {
	Proxy     string                       `json:"proxy"`
	Versions  map[string]string            `json:"versions"`
	Resources map[string][]json.RawMessage `json:"resources"`
}

var types = map[string]string{
	"lds": resource.ListenerType, "rds": resource.RouteType,
	"cds": resource.ClusterType, "eds": resource.EndpointType,
}

func registerDebug(a *admin.Server, tr *xds.Tracker, pub *xds.Publisher) {
	a.Handle("GET /debug/xds/proxies", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		resp := ProxiesResponse{Proxies: []ProxyEntry{}}
		for _, st := range tr.Status() {
			e := ProxyEntry{ProxyStatus: st, Current: map[string]string{}}
			if snap, err := pub.Snapshot(st.ID); err == nil {
				for short, url := range types {
					e.Current[short] = snap.GetVersion(url)
				}
			}
			resp.Proxies = append(resp.Proxies, e)
		}
		writeJSON(w, http.StatusOK, resp)
	}))
	a.Handle("GET /debug/xds/config", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("proxy")
		snap, err := pub.Snapshot(id)
		if err != nil {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no snapshot for proxy " + id})
			return
		}
		writeJSON(w, http.StatusOK, renderSnapshot(id, snap))
	}))
}

func renderSnapshot(id string, snap *cache.Snapshot) ConfigResponse {
	out := ConfigResponse{Proxy: id, Versions: map[string]string{}, Resources: map[string][]json.RawMessage{}}
	for short, url := range types {
		out.Versions[short] = snap.GetVersion(url)
		out.Resources[short] = []json.RawMessage{}
		for _, r := range snap.GetResources(url) {
			b, err := protojson.Marshal(r)
			if err != nil {
				continue
			}
			out.Resources[short] = append(out.Resources[short], b)
		}
	}
	return out
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// invalidDocs counts stored documents that fail validation.
type invalidDocs struct{ gauge prometheus.Gauge }

func newInvalidDocs(reg prometheus.Registerer) *invalidDocs {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "switchyard_controlplane_invalid_documents",
		Help: "Stored config documents the control plane refused to translate (they are skipped).",
	})
	reg.MustRegister(g)
	return &invalidDocs{gauge: g}
}

func (i *invalidDocs) decode(log *slog.Logger, raw []*registryv1.ConfigDocument) translate.Docs {
	docs, bad := decodeDocs(log, raw)
	i.gauge.Set(float64(bad))
	return docs
}
