package contract

import (
	"os/exec"
	"slices"
	"testing"

	"github.com/switchyard-mesh/switchyard/test/harness"
)

func promtool(t *testing.T, args ...string) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not installed: apt-get install prometheus (.ci/run does)")
	}
	out, err := exec.Command(path, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %v: %v\n%s", args, err, out)
	}
}

func TestPromtoolCheckConfig(t *testing.T) {
	promtool(t, "check", "config", repoPath(t, "prometheus", "prometheus.yml"))
}

func TestPromtoolCheckRules(t *testing.T) {
	files := glob(t, repoPath(t, "prometheus", "rules", "*.yml"))
	if len(files) == 0 {
		t.Fatal("no rule files in prometheus/rules")
	}
	promtool(t, append([]string{"check", "rules"}, files...)...)
}

func TestPromtoolTestRules(t *testing.T) {
	files := glob(t, repoPath(t, "prometheus", "tests", "*.yml"))
	if len(files) == 0 {
		t.Fatal("no rule unit tests in prometheus/tests")
	}
	promtool(t, append([]string{"test", "rules"}, files...)...)
}

type promConfig struct {
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

// Every binary with an admin port has a scrape job named after it, and the
// rules directory is where Prometheus reads rules from in compose.
func TestEveryBinaryIsScraped(t *testing.T) {
	var cfg promConfig
	readYAML(t, repoPath(t, "prometheus", "prometheus.yml"), &cfg)
	var jobs []string
	for _, sc := range cfg.ScrapeConfigs {
		jobs = append(jobs, sc.JobName)
	}
	for _, bin := range harness.Binaries(t) {
		if nonServers[bin] {
			continue
		}
		if !slices.Contains(jobs, bin) {
			t.Errorf("prometheus/prometheus.yml has no scrape job %q for binary %s (jobs: %v)", bin, bin, jobs)
		}
	}
	if !slices.Contains(cfg.RuleFiles, "rules/*.yml") {
		t.Errorf("rule_files = %v, want rules/*.yml (relative to prometheus.yml, so promtool on the host and Prometheus in compose read the same files)", cfg.RuleFiles)
	}
}
