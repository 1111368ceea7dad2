package contract

import (
	"os"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/switchyard-mesh/switchyard/test/harness"
)

// repoPath returns an absolute path inside the repository.
func repoPath(t testing.TB, parts ...string) string {
	t.Helper()
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(append([]string{root}, parts...)...)
}

func readYAML(t testing.TB, path string, dst any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, dst); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func glob(t testing.TB, pattern string) []string {
	t.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// nonServers are binaries without an admin port to scrape.
var nonServers = map[string]bool{"meshctl": true}
