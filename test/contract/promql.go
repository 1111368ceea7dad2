package contract

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

var (
	// A range or subquery whose duration is a Grafana variable:
	// [$__rate_interval], [${window}], [$__interval:$__interval].
	grafanaRange = regexp.MustCompile(`\[\s*\$\{?[A-Za-z_][A-Za-z0-9_:]*\}?\s*(:\s*\$\{?[A-Za-z_][A-Za-z0-9_:]*\}?\s*)?\]`)
	// Any other Grafana variable: $app, ${app}, ${app:regex}, [[app]].
	grafanaVar = regexp.MustCompile(`\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*|\[\[[A-Za-z0-9_:]+\]\]`)
	// label_values(metric, label) and friends in a template variable query.
	labelValuesCall = regexp.MustCompile(`^\s*label_values\s*\(\s*(.*?)\s*(,\s*[A-Za-z_][A-Za-z0-9_]*\s*)?\)\s*$`)
	queryResultCall = regexp.MustCompile(`^\s*query_result\s*\((.*)\)\s*$`)
	nameOnlyCall    = regexp.MustCompile(`^\s*(label_names|metrics)\s*\(`)
)

// substituteGrafanaVars turns a Grafana query into plain PromQL: ranges
// given by variables become [5m], other variables become 1 (inside a quoted
// matcher value that stays a valid string).
func substituteGrafanaVars(expr string) string {
	expr = grafanaRange.ReplaceAllStringFunc(expr, func(m string) string {
		if strings.Contains(grafanaVar.ReplaceAllString(m, "v"), ":") {
			return "[5m:1m]"
		}
		return "[5m]"
	})
	return grafanaVar.ReplaceAllString(expr, "1")
}

// metricNames parses a PromQL expression (Grafana variables allowed) and
// returns the metric names its selectors use, sorted and distinct.
func metricNames(expr string) ([]string, error) {
	parsed, err := parser.ParseExpr(substituteGrafanaVars(expr))
	if err != nil {
		return nil, fmt.Errorf("parse %q: %w", expr, err)
	}
	seen := map[string]bool{}
	parser.Inspect(parsed, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		if name == "" {
			for _, m := range vs.LabelMatchers {
				if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
					name = m.Value
				}
			}
		}
		if name != "" {
			seen[name] = true
		}
		return nil
	})
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// templateQueryNames returns the metric names in a Grafana template variable
// query for the Prometheus datasource: label_values(<selector>, label),
// query_result(<expr>), or a plain expression. label_names() and metrics()
// name no metric and return nothing.
func templateQueryNames(q string) ([]string, error) {
	if m := labelValuesCall.FindStringSubmatch(q); m != nil {
		if m[2] == "" { // label_values(label): no metric
			return nil, nil
		}
		return metricNames(m[1])
	}
	if m := queryResultCall.FindStringSubmatch(q); m != nil {
		return metricNames(m[1])
	}
	if nameOnlyCall.MatchString(q) {
		return nil, nil
	}
	return metricNames(q)
}
