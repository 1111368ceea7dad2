// Package registry_test runs the real registry binary as a three-node Raft
// cluster with SVIDs from the real ca, and drives it with meshctl and the
// HTTP API: registration, reads, leader kill -9 and rejoin.
package registry_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-mesh/switchyard/test/harness"
)

const (
	registryToken = "tok-registry-0123456789"
	meshctlToken  = "tok-meshctl-0123456789"
)

type regNode struct {
	id, grpc, raft, admin string
	proc                  *harness.Proc
}

type mesh struct {
	bundle, caAddr string
	nodes          []*regNode
}

func startMesh(t *testing.T) *mesh {
	t.Helper()
	dir := t.TempDir()
	caCfg := filepath.Join(dir, "ca.yaml")
	cfg := fmt.Sprintf("log:\n  format: text\ndata_dir: %s\njoin_tokens:\n  - token: %s\n    spiffe_id: spiffe://switchyard.local/system/registry\n  - token: %s\n    spiffe_id: spiffe://switchyard.local/system/meshctl\n",
		filepath.Join(dir, "ca"), registryToken, meshctlToken)
	if err := os.WriteFile(caCfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	m := &mesh{bundle: filepath.Join(dir, "ca", "bundle.pem"), caAddr: harness.FreeAddr(t)}
	caAdmin := harness.FreeAddr(t)
	harness.Start(t, harness.Process{
		Name: "ca", Binary: harness.Binary(t, "ca"),
		Args:     []string{"-config", caCfg, "-grpc_addr", m.caAddr, "-admin.addr", caAdmin},
		ReadyURL: "http://" + caAdmin + "/readyz",
	})
	var bootstrap []string
	for i := range 3 {
		n := &regNode{id: fmt.Sprintf("r%d", i+1), grpc: harness.FreeAddr(t), raft: harness.FreeAddr(t), admin: harness.FreeAddr(t)}
		bootstrap = append(bootstrap, n.id+"="+n.raft)
		m.nodes = append(m.nodes, n)
	}
	for _, n := range m.nodes {
		// /healthz: a node alone cannot elect a leader, so /readyz only
		// answers once enough of them run.
		n.proc = harness.Start(t, harness.Process{
			Name: "registry-" + n.id, Binary: harness.Binary(t, "registry"),
			Args: []string{
				"-node_id", n.id, "-data_dir", filepath.Join(dir, n.id),
				"-grpc.addr", n.grpc, "-raft.addr", n.raft, "-admin.addr", n.admin,
				"-raft.bootstrap", strings.Join(bootstrap, ","), "-log.format", "text",
				"-identity.ca_addr", m.caAddr, "-identity.join_token", registryToken,
				"-identity.spiffe_id", "spiffe://switchyard.local/system/registry", "-identity.trust_bundle_file", m.bundle,
			},
			ReadyURL: "http://" + n.admin + "/healthz",
		})
	}
	for _, n := range m.nodes {
		harness.Poll(t, 20*time.Second, func() error { return httpStatus("http://"+n.admin+"/readyz", 200) })
	}
	return m
}

func httpStatus(url string, want int) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return nil
}

func (m *mesh) meshctl(t *testing.T, node *regNode, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, harness.Binary(t, "meshctl"), args...)
	cmd.Env = append(os.Environ(),
		"SWITCHYARD_REGISTRY="+node.grpc, "SWITCHYARD_CA_ADDR="+m.caAddr,
		"SWITCHYARD_JOIN_TOKEN="+meshctlToken, "SWITCHYARD_TRUST_BUNDLE="+m.bundle)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

type clusterStatus struct {
	LeaderID string `json:"leader_id"`
	Peers    []struct {
		ID        string `json:"id"`
		Reachable bool   `json:"reachable"`
	} `json:"peers"`
}

func (m *mesh) status(n *regNode) (clusterStatus, error) {
	var st clusterStatus
	resp, err := http.Get("http://" + n.admin + "/v1/cluster/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st, err
}

func register(n *regNode, id string) error {
	body := fmt.Sprintf(`{"service":"orders","id":%q,"address":"10.1.0.1","port":8080,"locality":{"region":"eu-west"}}`, id)
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Post("http://"+n.admin+"/v1/register", "application/json", strings.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("register %s: %d %s", id, resp.StatusCode, b)
	}
	return nil
}

func TestRegistryClusterEndToEnd(t *testing.T) {
	m := startMesh(t)
	st, err := m.status(m.nodes[0])
	if err != nil || st.LeaderID == "" {
		t.Fatalf("cluster status: %+v %v", st, err)
	}
	var leader *regNode
	var others []*regNode
	for _, n := range m.nodes {
		if n.id == st.LeaderID {
			leader = n
		} else {
			others = append(others, n)
		}
	}

	// meshctl through a follower (forwarded to the leader over mTLS).
	out, err := m.meshctl(t, others[0], "register", "-service", "users", "-id", "u-1", "-address", "10.1.0.2", "-port", "9090", "-region", "eu-west", "-ttl", "1m")
	if err != nil {
		t.Fatalf("meshctl register: %v\n%s", err, out)
	}
	out, err = m.meshctl(t, others[1], "instances", "-service", "users")
	if err != nil || !strings.Contains(out, "u-1") || !strings.Contains(out, "passing") {
		t.Fatalf("meshctl instances: %v\n%s", err, out)
	}
	out, err = m.meshctl(t, others[1], "register", "-service", "users", "-id", "u-2", "-address", "10.1.0.2", "-port", "0")
	if err == nil || !strings.Contains(out, "instance.port") {
		t.Fatalf("meshctl register with port 0: %v\n%s", err, out)
	}
	// The operator's curl: POST /v1/register and GET the catalog.
	if err := register(others[1], "o-0"); err != nil {
		t.Fatal(err)
	}
	out, err = m.meshctl(t, leader, "services")
	if err != nil || !strings.Contains(out, "orders") || !strings.Contains(out, "users") {
		t.Fatalf("meshctl services: %v\n%s", err, out)
	}
	// Each node announces its API address through Raft shortly after it
	// starts; until then the status names it unreachable.
	harness.Poll(t, 10*time.Second, func() error {
		out, err = m.meshctl(t, others[0], "cluster", "status")
		if err != nil || !strings.Contains(out, "leader "+leader.id) || strings.Contains(out, "unreachable") {
			return fmt.Errorf("meshctl cluster status: %v\n%s", err, out)
		}
		return nil
	})
	t.Logf("meshctl cluster status:\n%s", out)

	// kill -9 the leader while writing through the others: measure until
	// a write is acknowledged again.
	stop := make(chan struct{})
	acked := make(chan [2]time.Time, 1024) // call, acknowledgement
	go func() {
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			start := time.Now()
			if register(others[i%2], fmt.Sprintf("o-%d", i)) == nil {
				acked <- [2]time.Time{start, time.Now()}
			}
		}
	}()
	time.Sleep(300 * time.Millisecond)
	killed := time.Now()
	leader.proc.Kill()
	// The first write sent after the kill and acknowledged: it can only
	// have been committed by a new leader.
	var back time.Time
	for back.IsZero() {
		select {
		case at := <-acked:
			if at[0].After(killed) {
				back = at[1]
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no write acknowledged within 10s of killing the leader")
		}
	}
	close(stop)
	failover := back.Sub(killed)
	t.Logf("leader %s killed (SIGKILL): writes acknowledged again after %s", leader.id, failover.Round(time.Millisecond))
	if failover > 2*time.Second {
		t.Errorf("failover took %s", failover)
	}

	// The killed node restarts with its data and rejoins.
	leader.proc.Restart(t)
	harness.Poll(t, 20*time.Second, func() error {
		st, err := m.status(leader)
		if err != nil {
			return err
		}
		for _, p := range st.Peers {
			if !p.Reachable {
				return fmt.Errorf("peer %s unreachable", p.ID)
			}
		}
		if len(st.Peers) != 3 || st.LeaderID == "" {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	harness.Poll(t, 10*time.Second, func() error {
		out, err := m.meshctl(t, leader, "instances", "-service", "users", "-stale")
		if err != nil || !strings.Contains(out, "u-1") {
			return fmt.Errorf("restarted node's catalog: %v %s", err, out)
		}
		return nil
	})
}
