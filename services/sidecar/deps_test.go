package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLinksNoEnvoyGeneratedCode keeps go-control-plane's generated Envoy
// types out of the binary: the sidecar speaks xDS and RLS with its own
// subset of them (proto/switchyard/xdssubset). Linking Envoy's packages
// registers hundreds of message types at start and maps their
// descriptors, megabytes of a proxy whose budget is 30 MB. Tests and the
// subset's generator may use them.
func TestLinksNoEnvoyGeneratedCode(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, banned := range []string{"github.com/envoyproxy/", "github.com/cncf/xds/"} {
			if strings.HasPrefix(pkg, banned) {
				t.Errorf("the sidecar links %s", pkg)
			}
		}
	}
}
