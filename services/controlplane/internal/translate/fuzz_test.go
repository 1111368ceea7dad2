package translate

import (
	"strings"
	"testing"

	"github.com/switchyard-mesh/switchyard/services/kit/meshconfig"
)

// FuzzTranslate feeds any document meshconfig accepts through the
// translator: it must not panic, every snapshot must be consistent, and every
// resource must pass Envoy's own proto constraints.
func FuzzTranslate(f *testing.F) {
	for _, seed := range []string{serviceDefaults, httpRoute, authzPolicy, rateLimit} {
		for _, doc := range strings.Split(seed, "---") {
			f.Add(doc)
		}
	}
	f.Add("kind: ServiceDefaults\nname: orders\nspec: {protocol: tcp, lb_policy: ring_hash, hash_policy: {source_ip: true}}")
	f.Add("kind: AuthorizationPolicy\nname: x\nspec: {service: users, rules: [{from: ['*'], paths: ['*']}]}")
	f.Add("kind: ServiceDefaults\nname: orders\nspec: {protocol: tcp, outbound_port: 5432}")
	f.Add("kind: ServiceDefaults\nname: db\nspec: {protocol: tcp, outbound_port: 15002}\n---\nkind: ServiceDefaults\nname: orders\nspec: {protocol: tcp, outbound_port: 15003}")
	f.Fuzz(func(t *testing.T, doc string) {
		docs, err := meshconfig.Parse(strings.NewReader(doc))
		if err != nil {
			return
		}
		w := Build(catalog(), docs, Options{})
		for _, p := range []Proxy{{Service: "orders"}, {Service: "frontend"}, {Kind: Gateway}, {Kind: Proxyless}, {}} {
			r := w.ForProxy(p)
			if _, err := r.Snapshot(); err != nil {
				t.Fatalf("%v: %v", p.Kind, err)
			}
			for _, group := range [][]Built{r.Listeners, r.Routes, r.Clusters, r.Endpoints} {
				for _, b := range group {
					if err := b.Resource.(interface{ ValidateAll() error }).ValidateAll(); err != nil {
						t.Fatalf("%v %s: %v\n%s", p.Kind, b.Name, err, doc)
					}
				}
			}
		}
	})
}
