package contract

import (
	"slices"
	"testing"
)

func TestMetricNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`up`, []string{"up"}},
		{`sum by (app) (rate(switchyard_shop_http_requests_total{app=~"$app",code=~"5.."}[$__rate_interval])) / sum by (app) (rate(switchyard_shop_http_requests_total[5m]))`,
			[]string{"switchyard_shop_http_requests_total"}},
		{`histogram_quantile(0.99, sum by (le) (rate(a_seconds_bucket{x="${x:regex}"}[${win}])))`, []string{"a_seconds_bucket"}},
		{`max_over_time(b[$__interval:$__interval]) and on (instance) c offset 1h`, []string{"b", "c"}},
		{`{__name__="d_total", job="x"}`, []string{"d_total"}},
		{`topk($n, e) unless ignoring (code) f`, []string{"e", "f"}},
		{`vector(1)`, []string{}},
		{`label_replace(g, "dst", "$1", "src", "(.*)")`, []string{"g"}},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			got, err := metricNames(tc.expr)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("metricNames = %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := metricNames(`sum(rate(x[5m]`); err == nil {
		t.Error("unbalanced expression parsed")
	}
}

func TestTemplateQueryNames(t *testing.T) {
	for q, want := range map[string][]string{
		`label_values(switchyard_shop_http_requests_total, app)`:  {"switchyard_shop_http_requests_total"},
		`label_values(up{job="shop"}, instance)`:                  {"up"},
		`label_values(app)`:                                       nil,
		`query_result(topk(5, sum by (app) (rate(x_total[5m]))))`: {"x_total"},
		`label_names()`:          nil,
		`metrics(switchyard_.*)`: nil,
	} {
		got, err := templateQueryNames(q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Errorf("templateQueryNames(%q) = %v, want %v", q, got, want)
		}
	}
}

func FuzzMetricNames(f *testing.F) {
	for _, s := range []string{`up`, `rate(x[$__rate_interval])`, `{__name__="a"}`, `sum by (a) (b{c=~"$d"})`, `[[x]]`, `${a:b}[${c}]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		names, err := metricNames(expr)
		if err != nil {
			return
		}
		if !slices.IsSorted(names) {
			t.Fatalf("names not sorted: %v", names)
		}
		for _, n := range names {
			if n == "" {
				t.Fatalf("empty metric name from %q", expr)
			}
		}
	})
}
