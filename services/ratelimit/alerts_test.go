package main

import (
	"os/exec"
	"testing"
)

// TestAlertRules checks prometheus/rules/ratelimit.yml with promtool and runs
// its unit tests in prometheus/tests/ratelimit_test.yml.
func TestAlertRules(t *testing.T) {
	if _, err := exec.LookPath("promtool"); err != nil {
		t.Fatal("promtool is not installed: apt-get install prometheus (.ci/run does)")
	}
	for _, args := range [][]string{
		{"check", "rules", "../../prometheus/rules/ratelimit.yml"},
		{"test", "rules", "../../prometheus/tests/ratelimit_test.yml"},
	} {
		if out, err := exec.Command("promtool", args...).CombinedOutput(); err != nil {
			t.Fatalf("promtool %v: %v\n%s", args, err, out)
		}
	}
}
