package controlplane_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-mesh/switchyard/test/harness"
)

// TestMeshctlConfigCommands drives meshctl's config commands against the
// real registry and control plane: apply changes what a proxyless client
// is routed to, an invalid file is refused naming the field and changes
// nothing, get/diff/delete see what is stored, status shows the client.
func TestMeshctlConfigCommands(t *testing.T) {
	m := startMesh(t)
	m.register(t, "echo", "echo-1", startBackend(t, "b1"))
	m.register(t, "echo", "echo-2", startBackend(t, "b2"), "v2")
	client := dialProxyless(t, m.xdsAddr, "echo")

	meshctl := harness.Binary(t, "meshctl")
	env := []string{
		"SWITCHYARD_REGISTRY=" + m.registryGRPC, "SWITCHYARD_CONTROLPLANE=" + m.cpAdmin,
		"SWITCHYARD_CA_ADDR=" + m.caAddr, "SWITCHYARD_TRUST_BUNDLE=" + m.bundle,
		"SWITCHYARD_JOIN_TOKEN=" + tokens["spiffe://switchyard.local/system/meshctl"],
	}
	run := func(args ...string) harness.Result {
		return harness.RunToExit(t, harness.Process{Binary: meshctl, Args: args, Env: env}, 30*time.Second)
	}
	dir := t.TempDir()
	write := func(name, doc string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("route.yaml", "kind: HTTPRoute\nname: echo-v2\nspec:\n  service: echo\n  rules:\n    - backends: [{service: echo, tag: v2}]\n")
	bad := write("bad.yaml", "kind: HTTPRoute\nname: echo-bad\nspec:\n  service: echo\n  rules:\n    - backends: [{service: echo, weight: 150}]\n")

	if r := run("apply", "-f", good); r.Code != 0 || !strings.Contains(r.Output, "HTTPRoute/echo-v2 configured") {
		t.Fatalf("meshctl apply: exit %d\n%s", r.Code, r.Output)
	}
	harness.Poll(t, 10*time.Second, func() error {
		seen, err := spread(client, 10)
		if err != nil {
			return err
		}
		if seen["b2"] != 10 {
			return fmt.Errorf("after meshctl apply calls landed %v", seen)
		}
		return nil
	})
	if r := run("apply", "-f", bad); r.Code == 0 || !strings.Contains(r.Output, "spec.rules[0].backends[0].weight: must be 0..100") {
		t.Fatalf("meshctl apply of an invalid file: exit %d\n%s", r.Code, r.Output)
	}
	if r := run("get", "HTTPRoute"); r.Code != 0 || !strings.Contains(r.Output, "name: echo-v2") || strings.Contains(r.Output, "echo-bad") {
		t.Fatalf("meshctl get: exit %d\n%s", r.Code, r.Output)
	}
	if r := run("diff", "-f", good); r.Code != 0 {
		t.Fatalf("meshctl diff of the applied file: exit %d\n%s", r.Code, r.Output)
	}
	changed := write("changed.yaml", "kind: HTTPRoute\nname: echo-v2\nspec:\n  service: echo\n  rules:\n    - backends: [{service: echo}]\n")
	if r := run("diff", "-f", changed); r.Code == 0 || !strings.Contains(r.Output, "- ") {
		t.Fatalf("meshctl diff of a changed file: exit %d\n%s", r.Code, r.Output)
	}
	if r := run("status"); r.Code != 0 || !strings.Contains(r.Output, "e2e-proxyless-client") {
		t.Fatalf("meshctl status: exit %d\n%s", r.Code, r.Output)
	}
	if r := run("proxy-config", "-type", "eds", "e2e-proxyless-client"); r.Code != 0 || !strings.Contains(r.Output, "echo") {
		t.Fatalf("meshctl proxy-config: exit %d\n%s", r.Code, r.Output)
	}
	if r := run("delete", "HTTPRoute", "echo-v2"); r.Code != 0 {
		t.Fatalf("meshctl delete: exit %d\n%s", r.Code, r.Output)
	}
	harness.Poll(t, 10*time.Second, func() error {
		seen, err := spread(client, 20)
		if err != nil {
			return err
		}
		if seen["b1"] == 0 {
			return fmt.Errorf("after meshctl delete calls landed %v", seen)
		}
		return nil
	})
}
