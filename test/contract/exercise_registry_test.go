package contract

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-mesh/switchyard/test/harness"
	"github.com/switchyard-mesh/switchyard/test/meshtest"
)

func init() { exercisers["registry"] = exerciseRegistry }

// exerciseRegistry runs a ca and a one-node registry, registers one
// instance with a short TTL check (it goes critical and is deregistered) and
// one with an active HTTP check, and reads the catalog over gRPC through
// meshctl, so the health, probe and gRPC server metrics have samples.
func exerciseRegistry(t testing.TB) []string {
	const meshctlToken = "contract-meshctl-0123456789"
	m := meshtest.StartCA(t, map[string]string{
		meshtest.RegistryID: "contract-registry-only-0123456789",
		meshtest.MeshctlID:  meshctlToken,
	})
	m.StartRegistry(t)
	admin, grpcAddr := m.RegistryAdmin, m.RegistryGRPC

	register := func(body string) {
		resp, err := http.Post("http://"+admin+"/v1/register", "application/json", bytes.NewReader([]byte(body)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("register: %d %s", resp.StatusCode, b)
		}
	}
	register(`{"service":"users","id":"users-ttl","address":"127.0.0.1","port":9001,
		"check":{"type":"CHECK_TYPE_TTL","ttl":"1s","deregister_critical_after":"1s"}}`)
	host, port, _ := strings.Cut(admin, ":")
	register(fmt.Sprintf(`{"service":"users","id":"users-http","address":%q,"port":%s,
		"check":{"type":"CHECK_TYPE_HTTP","http_path":"/healthz","interval":"0.2s","timeout":"0.2s"}}`, host, port))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, harness.Binary(t, "meshctl"), "services")
	cmd.Env = append(os.Environ(), "SWITCHYARD_REGISTRY="+grpcAddr, "SWITCHYARD_CA_ADDR="+m.CAAddr,
		"SWITCHYARD_JOIN_TOKEN="+meshctlToken, "SWITCHYARD_TRUST_BUNDLE="+m.Bundle)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("meshctl services: %v\n%s", err, out)
	}

	metricsURL := "http://" + admin + "/metrics"
	harness.Poll(t, 20*time.Second, func() error {
		resp, err := http.Get(metricsURL)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, want := range []string{
			"switchyard_registry_health_transitions_total{", "switchyard_registry_health_probes_total{",
			"switchyard_registry_health_deregistrations_total 1", "switchyard_registry_grpc_server_handled_total{",
		} {
			if !bytes.Contains(b, []byte(want)) {
				return fmt.Errorf("registry metrics lack %s yet", want)
			}
		}
		return nil
	})
	return []string{metricsURL}
}
