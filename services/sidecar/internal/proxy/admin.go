package proxy

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"

	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/xds"
)

// NackSource reports the last rejected update per type (the xDS client).
type NackSource interface{ Nacks() map[string]string }

// ConfigDump serves the applied snapshot as Envoy-style JSON: the accepted
// resources per type with their versions, and the last rejection per type.
func (p *Proxy) ConfigDump(nacks NackSource) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s := p.Snapshot()
		type typeDump struct {
			Version   string            `json:"version_info"`
			Resources []json.RawMessage `json:"resources"`
			Rejected  string            `json:"last_rejected_update,omitempty"`
		}
		out := map[string]*typeDump{}
		if s != nil {
			for typ, res := range s.Raw {
				td := &typeDump{Version: s.Versions[typ], Resources: []json.RawMessage{}}
				for _, name := range xds.SortedNames(res) {
					b, err := xds.ResourceJSON(res[name])
					if err != nil {
						continue
					}
					td.Resources = append(td.Resources, b)
				}
				out[typ] = td
			}
		}
		if nacks != nil {
			for typ, msg := range nacks.Nacks() {
				if out[typ] == nil {
					out[typ] = &typeDump{Resources: []json.RawMessage{}}
				}
				out[typ].Rejected = msg
			}
		}
		writeJSON(w, map[string]any{"configs": out})
	})
}

// Clusters serves every cluster with its endpoints' health, outlier and
// breaker state.
func (p *Proxy) Clusters() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		cs := *p.clusters.Load()
		out := make([]clusterStatus, 0, len(cs))
		for _, name := range slices.Sorted(func(yield func(string) bool) {
			for k := range cs {
				if !yield(k) {
					return
				}
			}
		}) {
			out = append(out, cs[name].status())
		}
		writeJSON(w, map[string]any{"clusters": out})
	})
}

// Ready answers 200 once a complete (warm) config is applied and every
// listener in it is serving, 503 before.
func (p *Proxy) Ready() error {
	s := p.Snapshot()
	if s == nil || !s.Warm() {
		return errNotWarm
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for name := range s.Listeners {
		if _, ok := p.listeners[name]; !ok {
			return &listenerDownError{name}
		}
	}
	return nil
}

type listenerDownError struct{ name string }

func (e *listenerDownError) Error() string { return "listener " + e.name + " is not serving" }

var errNotWarm = errors.New("xDS config not complete yet (waiting for listeners, clusters and the routes and endpoints they name)")

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
