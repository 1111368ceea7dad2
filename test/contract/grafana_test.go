package contract

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// dashboard is one grafana/dashboards/*.json file.
type dashboard struct {
	File string
	UID  string
	raw  map[string]any
}

func loadDashboards(t testing.TB) []dashboard {
	t.Helper()
	files := glob(t, repoPath(t, "grafana", "dashboards", "*.json"))
	if len(files) == 0 {
		t.Fatal("no dashboards in grafana/dashboards")
	}
	var out []dashboard
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var raw map[string]any
		if err := json.Unmarshal(data, &raw); err != nil {
			t.Errorf("%s does not parse: %v", filepath.Base(f), err)
			continue
		}
		uid, _ := raw["uid"].(string)
		out = append(out, dashboard{File: filepath.Base(f), UID: uid, raw: raw})
	}
	return out
}

// query is a PromQL expression found in a dashboard or rule file, with
// where it was found.
type query struct {
	Where    string
	Expr     string
	Template bool // a Grafana template variable query (label_values …)
}

// queries returns every Prometheus query in the dashboard: each "expr"
// anywhere in it (panel targets, also inside collapsed rows) and every
// template variable query.
func (d dashboard) queries() []query {
	var out []query
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			label := path
			if title, ok := x["title"].(string); ok && title != "" {
				label = fmt.Sprintf("%s panel %q", d.File, title)
			}
			for k, child := range x {
				if k == "expr" {
					if s, ok := child.(string); ok && strings.TrimSpace(s) != "" {
						out = append(out, query{Where: label, Expr: s})
					}
					continue
				}
				walk(label, child)
			}
		case []any:
			for _, child := range x {
				walk(path, child)
			}
		}
	}
	walk(d.File, d.raw["panels"])
	if tmpl, ok := d.raw["templating"].(map[string]any); ok {
		list, _ := tmpl["list"].([]any)
		for _, item := range list {
			v, _ := item.(map[string]any)
			if v["type"] != "query" || datasourceUID(v["datasource"]) == "jaeger" {
				continue
			}
			q := v["query"]
			if m, ok := q.(map[string]any); ok {
				q = m["query"]
			}
			if s, ok := q.(string); ok && s != "" {
				out = append(out, query{Where: fmt.Sprintf("%s variable %v", d.File, v["name"]), Expr: s, Template: true})
			}
		}
	}
	return out
}

func datasourceUID(v any) string {
	switch x := v.(type) {
	case map[string]any:
		s, _ := x["uid"].(string)
		return s
	case string:
		return x
	}
	return ""
}

type provisionedDatasources struct {
	Datasources []struct {
		Name string `yaml:"name"`
		UID  string `yaml:"uid"`
		Type string `yaml:"type"`
	} `yaml:"datasources"`
}

type dashboardProviders struct {
	Providers []struct {
		Options struct {
			Path string `yaml:"path"`
		} `yaml:"options"`
	} `yaml:"providers"`
}

func TestGrafanaProvisioning(t *testing.T) {
	uids := datasourceUIDs(t)
	for _, want := range []string{"prometheus", "jaeger"} {
		if !slices.Contains(uids, want) {
			t.Errorf("no provisioned datasource with uid %q (have %v)", want, uids)
		}
	}
	var main composeFile
	readYAML(t, repoPath(t, "compose.yaml"), &main)
	mountTarget := ""
	for _, v := range main.Services["grafana"].Volumes {
		if host, rest, ok := strings.Cut(v, ":"); ok && strings.TrimSuffix(host, "/") == "./grafana/dashboards" {
			mountTarget, _, _ = strings.Cut(rest, ":")
		}
	}
	if mountTarget == "" {
		t.Fatal("compose.yaml grafana does not mount ./grafana/dashboards")
	}
	files := glob(t, repoPath(t, "grafana", "provisioning", "dashboards", "*.yml"))
	if len(files) == 0 {
		t.Fatal("no dashboard provider in grafana/provisioning/dashboards")
	}
	for _, f := range files {
		var p dashboardProviders
		readYAML(t, f, &p)
		for _, prov := range p.Providers {
			if prov.Options.Path != mountTarget {
				t.Errorf("%s: provider path %q, but compose mounts the dashboards at %q", filepath.Base(f), prov.Options.Path, mountTarget)
			}
		}
	}
}

func datasourceUIDs(t testing.TB) []string {
	var uids []string
	for _, f := range glob(t, repoPath(t, "grafana", "provisioning", "datasources", "*.yml")) {
		var ds provisionedDatasources
		readYAML(t, f, &ds)
		for _, d := range ds.Datasources {
			uids = append(uids, d.UID)
		}
	}
	return uids
}

// Every dashboard parses, has a unique switchyard-<name> uid, refers only to
// provisioned datasources, and every query in it is valid PromQL.
func TestDashboards(t *testing.T) {
	uids := datasourceUIDs(t)
	seen := map[string]string{}
	for _, d := range loadDashboards(t) {
		t.Run(d.File, func(t *testing.T) {
			if !strings.HasPrefix(d.UID, "switchyard-") {
				t.Errorf("uid %q, want switchyard-<name>", d.UID)
			}
			if other, dup := seen[d.UID]; dup {
				t.Errorf("uid %q also used by %s", d.UID, other)
			}
			seen[d.UID] = d.File
			if title, _ := d.raw["title"].(string); title == "" {
				t.Error("no title")
			}
			checkDatasources(t, d.File, d.raw, uids)
			qs := d.queries()
			if len(qs) == 0 {
				t.Error("no queries")
			}
			for _, q := range qs {
				if _, err := queryNames(q); err != nil {
					t.Errorf("%s: %v", q.Where, err)
				}
			}
		})
	}
}

func queryNames(q query) ([]string, error) {
	if q.Template {
		return templateQueryNames(q.Expr)
	}
	return metricNames(q.Expr)
}

// checkDatasources reports any datasource reference to a uid that is not
// provisioned (Grafana's built-in "-- Grafana --" and variables aside).
func checkDatasources(t *testing.T, file string, v any, uids []string) {
	t.Helper()
	switch x := v.(type) {
	case map[string]any:
		for k, child := range x {
			if k == "datasource" {
				uid := datasourceUID(child)
				if uid != "" && !strings.HasPrefix(uid, "$") && !strings.HasPrefix(uid, "-- ") && uid != "grafana" && !slices.Contains(uids, uid) {
					t.Errorf("%s uses datasource %q, not provisioned (have %v)", file, uid, uids)
				}
				continue
			}
			checkDatasources(t, file, child, uids)
		}
	case []any:
		for _, child := range x {
			checkDatasources(t, file, child, uids)
		}
	}
}
