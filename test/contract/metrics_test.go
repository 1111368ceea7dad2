package contract

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/switchyard-mesh/switchyard/test/harness"
)

// builtinMetrics are produced by Prometheus itself, not by a scraped binary.
var builtinMetrics = map[string]bool{
	"up": true, "scrape_duration_seconds": true, "scrape_samples_scraped": true,
	"scrape_samples_post_metric_relabeling": true, "scrape_series_added": true,
	"ALERTS": true, "ALERTS_FOR_STATE": true,
}

// externalPrefixes are metrics of third-party processes in the compose stack
// (Prometheus scraping itself, Jaeger); no Switchyard binary exports them.
var externalPrefixes = []string{"prometheus_", "jaeger_"}

var switchyardMetric = regexp.MustCompile(`^switchyard_([a-z0-9]+)_`)

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Record string `yaml:"record"`
			Alert  string `yaml:"alert"`
			Expr   string `yaml:"expr"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// usedMetrics returns every metric name used by a dashboard query or a rule
// expression, with where it is used, and the names recording rules define.
func usedMetrics(t *testing.T) (used map[string][]string, recorded map[string]bool) {
	used, recorded = map[string][]string{}, map[string]bool{}
	add := func(q query) {
		names, err := queryNames(q)
		if err != nil {
			t.Errorf("%s: %v", q.Where, err)
			return
		}
		for _, n := range names {
			used[n] = append(used[n], q.Where)
		}
	}
	for _, d := range loadDashboards(t) {
		for _, q := range d.queries() {
			add(q)
		}
	}
	for _, f := range glob(t, repoPath(t, "prometheus", "rules", "*.yml")) {
		var rf ruleFile
		readYAML(t, f, &rf)
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				name := r.Alert
				if r.Record != "" {
					name = r.Record
					recorded[r.Record] = true
				}
				add(query{Where: "prometheus/rules/" + strings.TrimPrefix(f, repoPath(t, "prometheus", "rules")+"/") + " rule " + name, Expr: r.Expr})
			}
		}
	}
	return used, recorded
}

// Every metric a dashboard panel, template variable or rule uses is exported
// by some binary, checked against the live /metrics of the real binaries
// after traffic. Every switchyard_<binary>_* metric a started binary exports
// appears in some dashboard or rule.
//
// The binaries started are the shop (whose Go and process metrics stand for
// every binary's), every binary a used switchyard_<binary>_* metric names —
// those must start — and, when a used metric comes from a kit library
// (switchyard_<kit package>_*, exported by whichever binaries use it), every
// other binary with an admin port, as far as they start.
func TestDashboardAndRuleMetricsAreExported(t *testing.T) {
	used, recorded := usedMetrics(t)
	binaries := harness.Binaries(t)

	required := map[string]bool{"shop": true}
	libraryMetrics := false
	for name, where := range used {
		m := switchyardMetric.FindStringSubmatch(name)
		switch {
		case m == nil:
		case slices.Contains(binaries, m[1]):
			required[m[1]] = true
		case isKitPackage(t, m[1]):
			libraryMetrics = true
		default:
			t.Errorf("metric %s (used in %s) is named for %q, which is neither a binary under services/ (%v) nor a kit package",
				name, strings.Join(dedupe(where), "; "), m[1], binaries)
		}
	}
	var toStart []string
	for _, bin := range binaries {
		if required[bin] || (libraryMetrics && !nonServers[bin]) {
			toStart = append(toStart, bin)
		}
	}

	exported := map[string]string{} // metric -> first binary exporting it
	notStarted := map[string]string{}
	for _, bin := range toStart {
		t.Run(bin, func(t *testing.T) {
			names, err := exercise(t, bin)
			if err != nil {
				notStarted[bin] = err.Error()
				if required[bin] {
					t.Errorf("%v", err)
				} else {
					t.Logf("%s did not start, so its metrics are not counted: %v", bin, err)
				}
				return
			}
			for n := range names {
				if _, dup := exported[n]; !dup {
					exported[n] = bin
				}
			}
		})
	}
	for bin := range required {
		if msg, failed := notStarted[bin]; failed {
			t.Errorf("could not read the live metrics of %s, which dashboards or rules use: %s", bin, firstLine(msg))
		}
	}

	var missing []string
	for name, where := range used {
		if exported[name] != "" || builtinMetrics[name] || recorded[name] || hasAnyPrefix(name, externalPrefixes) {
			continue
		}
		missing = append(missing, name+" (used in "+strings.Join(dedupe(where), "; ")+")")
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("no binary exports %s after the exercise run: a renamed or removed metric, or a vector with no samples yet "+
			"(drive traffic in the binary's exerciser, or initialise known label values)", m)
	}
	if len(missing) > 0 && len(notStarted) > 0 {
		var bins []string
		for bin := range notStarted {
			bins = append(bins, bin)
		}
		sort.Strings(bins)
		t.Errorf("binaries that did not start (their metrics are not counted): %s; give them an exerciser in test/contract", strings.Join(bins, ", "))
	}

	var unshown []string
	for name, bin := range exported {
		m := switchyardMetric.FindStringSubmatch(name)
		if m == nil || m[1] != bin || isHistogramPart(name, exported) {
			continue
		}
		if _, ok := used[name]; !ok && !usedAsHistogram(name, used) {
			unshown = append(unshown, name)
		}
	}
	sort.Strings(unshown)
	for _, name := range unshown {
		t.Errorf("%s is exported by %s but no dashboard panel or rule uses it (DESIGN.md: every binary's metrics appear in a Grafana dashboard)", name, exported[name])
	}
}

// exercise runs bin's exerciser and scrapes what it returns. A failure to
// start is returned as an error rather than failing t, so binaries that are
// only tried do not fail the test.
func exercise(t *testing.T, bin string) (map[string]bool, error) {
	ex := exercisers[bin]
	if ex == nil {
		ex = func(t testing.TB) []string { return exerciseWithDefaults(t, bin) }
	}
	soft := &softTB{TB: t}
	var urls []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		urls = ex(soft)
	}()
	<-done
	if soft.Failed() {
		return nil, errors.New(soft.message())
	}
	names := map[string]bool{}
	for _, url := range urls {
		got, err := scrape(url)
		if err != nil {
			return nil, fmt.Errorf("scrape %s: %w", url, err)
		}
		maps.Copy(names, got)
	}
	return names, nil
}

func isKitPackage(t *testing.T, name string) bool {
	st, err := os.Stat(repoPath(t, "services", "kit", name))
	return err == nil && st.IsDir()
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// isHistogramPart reports a _bucket/_sum/_count series whose family is
// exported too; the family stands for it.
func isHistogramPart(name string, exported map[string]string) bool {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && exported[base] != "" {
			return true
		}
	}
	return false
}

// usedAsHistogram reports a histogram family used through any of its series.
func usedAsHistogram(name string, used map[string][]string) bool {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if _, ok := used[name+suffix]; ok {
			return true
		}
	}
	return false
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func dedupe(s []string) []string {
	out := slices.Clone(s)
	sort.Strings(out)
	return slices.Compact(out)
}
