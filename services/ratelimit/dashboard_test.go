package main

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/decider"
	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/rules"
)

// recorder is a Registerer that remembers what was registered.
type recorder struct{ cs []prometheus.Collector }

func (r *recorder) Register(c prometheus.Collector) error   { r.cs = append(r.cs, c); return nil }
func (r *recorder) MustRegister(cs ...prometheus.Collector) { r.cs = append(r.cs, cs...) }
func (r *recorder) Unregister(prometheus.Collector) bool    { return false }

// TestDashboardUsesExportedMetrics keeps grafana/dashboards/ratelimit.json
// honest: right uid and datasource, and every switchyard_ratelimit_* series
// it queries is one the binary exports.
func TestDashboardUsesExportedMetrics(t *testing.T) {
	rec := &recorder{}
	decider.NewMetrics(rec)
	rules.NewMetrics(rec)
	exported := map[string]bool{
		// From kit/grpcx for Binary "ratelimit".
		"switchyard_ratelimit_grpc_server_handled_total":    true,
		"switchyard_ratelimit_grpc_server_handling_seconds": true,
	}
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	for _, c := range rec.cs {
		ch := make(chan *prometheus.Desc, 16)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			if m := fq.FindStringSubmatch(d.String()); m != nil {
				exported[m[1]] = true
			}
		}
	}

	data, err := os.ReadFile("../../grafana/dashboards/ratelimit.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title      string `json:"title"`
			Datasource struct {
				UID string `json:"uid"`
			} `json:"datasource"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatal(err)
	}
	if dash.UID != "switchyard-ratelimit" {
		t.Fatalf("uid = %q", dash.UID)
	}
	series := regexp.MustCompile(`switchyard_ratelimit_[a-z_]+`)
	used := map[string]bool{}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			if p.Datasource.UID != "prometheus" {
				t.Errorf("panel %q: datasource %q, want prometheus", p.Title, p.Datasource.UID)
			}
			for _, s := range series.FindAllString(tg.Expr, -1) {
				name := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(s, "_bucket"), "_count"), "_sum")
				if !exported[name] {
					t.Errorf("panel %q queries %s, which the binary does not export", p.Title, s)
				}
				used[name] = true
			}
		}
	}
	for name := range exported {
		if !used[name] {
			t.Errorf("metric %s is on no dashboard panel", name)
		}
	}
}
