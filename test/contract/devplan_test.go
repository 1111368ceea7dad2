package contract

import (
	"slices"
	"testing"

	"github.com/switchyard-mesh/switchyard/test/harness"
)

// deploy/dev/mesh.yaml (make dev) only names binaries that exist, and runs
// the whole shop.
func TestDevPlan(t *testing.T) {
	var plan struct {
		Processes []struct {
			Name   string `yaml:"name"`
			Binary string `yaml:"binary"`
		} `yaml:"processes"`
	}
	readYAML(t, repoPath(t, "deploy", "dev", "mesh.yaml"), &plan)
	binaries := harness.Binaries(t)
	var names []string
	for _, p := range plan.Processes {
		if !slices.Contains(binaries, p.Binary) {
			t.Errorf("process %s runs binary %q, which is not under services/ (%v)", p.Name, p.Binary, binaries)
		}
		names = append(names, p.Name)
	}
	for _, app := range []string{"frontend", "users", "orders", "billing"} {
		if !slices.Contains(names, app) {
			t.Errorf("make dev does not run the shop's %s", app)
		}
	}
}
