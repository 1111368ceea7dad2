package contract

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard-mesh/switchyard/test/harness"
)

type composeFile struct {
	Version  string                    `yaml:"version"`
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string            `yaml:"context"`
		Dockerfile string            `yaml:"dockerfile"`
		Args       map[string]string `yaml:"args"`
	} `yaml:"build"`
	Volumes     []string `yaml:"volumes"`
	NetworkMode string   `yaml:"network_mode"`
}

// docker-compose (1.29 here) or the compose plugin must accept the files.
func TestComposeConfig(t *testing.T) {
	var cmd []string
	if path, err := exec.LookPath("docker-compose"); err == nil {
		cmd = []string{path}
	} else if path, err := exec.LookPath("docker"); err == nil && exec.Command(path, "compose", "version").Run() == nil {
		cmd = []string{path, "compose"}
	} else {
		t.Skip("neither docker-compose nor docker compose is installed; TestComposeStructure still checks the files")
	}
	for _, files := range [][]string{{"compose.yaml"}, {"compose.yaml", "compose.ci.yaml"}} {
		args := append([]string(nil), cmd[1:]...)
		for _, f := range files {
			args = append(args, "-f", repoPath(t, f))
		}
		args = append(args, "config", "-q")
		c := exec.Command(cmd[0], args...)
		c.Dir = repoPath(t)
		if out, err := c.CombinedOutput(); err != nil {
			t.Errorf("%s %s: %v\n%s", cmd[0], strings.Join(args, " "), err, out)
		}
	}
}

func TestComposeStructure(t *testing.T) {
	var main, ci composeFile
	readYAML(t, repoPath(t, "compose.yaml"), &main)
	readYAML(t, repoPath(t, "compose.ci.yaml"), &ci)
	binaries := harness.Binaries(t)

	if main.Version != "" {
		t.Errorf("compose.yaml has version: %q; leave it out (docker-compose 1.29 and compose v2 both read the versionless format)", main.Version)
	}
	for _, want := range []string{"frontend", "users", "orders", "billing", "redis", "prometheus", "grafana", "jaeger"} {
		if _, ok := main.Services[want]; !ok {
			t.Errorf("compose.yaml lacks service %q", want)
		}
	}
	for name, svc := range main.Services {
		if svc.Image == "" && svc.NetworkMode == "" {
			t.Errorf("compose.yaml service %s has no image", name)
		}
		if b := svc.Build; b != nil {
			df := filepath.Join(repoPath(t, b.Context), b.Dockerfile)
			if _, err := os.Stat(df); err != nil {
				t.Errorf("service %s: build.dockerfile: %v", name, err)
			}
			if bin := b.Args["BINARY"]; !slices.Contains(binaries, bin) {
				t.Errorf("service %s: build.args.BINARY = %q is not a binary under services/ (%v)", name, bin, binaries)
			}
			if want := "switchyard/" + b.Args["BINARY"] + ":"; !strings.HasPrefix(svc.Image, want) {
				t.Errorf("service %s: image %q, want %s<tag> so compose-test's :ci images line up", name, svc.Image, want)
			}
		}
		for _, v := range svc.Volumes {
			host, _, ok := strings.Cut(v, ":")
			if ok && strings.HasPrefix(host, "./") {
				if _, err := os.Stat(repoPath(t, host)); err != nil {
					t.Errorf("service %s mounts %s: %v", name, host, err)
				}
			}
		}
	}
	for name, svc := range ci.Services {
		if _, ok := main.Services[name]; !ok {
			t.Errorf("compose.ci.yaml overrides %q, which compose.yaml does not define", name)
		}
		if !strings.HasSuffix(svc.Image, ":ci") {
			t.Errorf("compose.ci.yaml service %s uses image %q; CI can only run the :ci images compose-test.sh builds", name, svc.Image)
		}
	}
}
