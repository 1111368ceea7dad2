// Package devmesh runs `make dev` for real: the meshctl dev runner with the
// plan deploy/dev/mesh.yaml and the built binaries, checks the shop answers
// through the mesh (sidecars, mTLS), then interrupts the runner as Ctrl-C
// would and checks that no process it started is left.
package devmesh

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/switchyard-mesh/switchyard/test/harness"
)

// plan is the part of deploy/dev/mesh.yaml this test reads.
type plan struct {
	StateDir  string `yaml:"state_dir"`
	Processes []struct {
		Name   string   `yaml:"name"`
		Binary string   `yaml:"binary"`
		Args   []string `yaml:"args"`
		Ready  string   `yaml:"ready"`
	} `yaml:"processes"`
}

// The shop's answer to GET /api/users/{id}.
type page struct {
	User struct {
		ID       int    `json:"id"`
		ServedBy string `json:"served_by"`
	} `json:"user"`
	Orders []struct {
		ID      int `json:"id"`
		Invoice struct {
			Status   string `json:"status"`
			ServedBy string `json:"served_by"`
		} `json:"invoice"`
	} `json:"orders"`
	ServedBy       string `json:"served_by"`
	OrdersServedBy string `json:"orders_served_by"`
}

// Addresses the plan gives the shop and its sidecars.
const (
	shopURL = "http://127.0.0.1:8090/api/users/42"
	// sidecar admin ports, by app
	frontendSidecarAdmin = "127.0.0.1:15010"
	usersSidecarAdmin    = "127.0.0.1:15020"
	ordersSidecarAdmin   = "127.0.0.1:15030"
	billingSidecarAdmin  = "127.0.0.1:15040"
	usersInbound         = "127.0.0.1:15026"
)

func TestDevMesh(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole mesh (14 processes)")
	}
	start := time.Now()
	p := loadPlan(t)
	work, binDir := prepare(t, p)
	t.Logf("binaries ready after %s", time.Since(start).Round(time.Millisecond))
	up := time.Now()
	dev, children := startPlan(t, work, binDir, "deploy/dev/mesh.yaml", p)
	t.Logf("all %d processes ready after %s", len(children), time.Since(up).Round(time.Millisecond))

	// The state is in the temporary directory, not the repository's.
	if _, err := os.Stat(filepath.Join(work, p.StateDir, "trust", "bundle.pem")); err != nil {
		t.Fatalf("trust bundle not under the test's state dir: %v", err)
	}

	// The shop answers through the mesh: frontend → its sidecar → users' and
	// orders' sidecars → apps; orders → its sidecar → billing's. Endpoints
	// turn healthy in the registry once the apps answer their checks, so
	// allow a few seconds after the runner is ready.
	before := map[string]float64{}
	for _, m := range []struct{ admin, service, listener string }{
		{frontendSidecarAdmin, "frontend", "outbound"}, {usersSidecarAdmin, "users", "inbound"},
		{ordersSidecarAdmin, "orders", "inbound"}, {ordersSidecarAdmin, "orders", "outbound"},
		{billingSidecarAdmin, "billing", "inbound"},
	} {
		before[m.service+"/"+m.listener] = sidecarRequests(t, m.admin, m.service, m.listener)
	}
	var pg page
	harness.Poll(t, 20*time.Second, func() error {
		var err error
		pg, err = getPage()
		return err
	})
	if pg.User.ID != 42 || pg.User.ServedBy != "users-1" || pg.ServedBy != "frontend-1" || pg.OrdersServedBy != "orders-1" {
		t.Fatalf("composed answer = %+v, want user 42 from users-1 via frontend-1, orders from orders-1", pg)
	}
	if len(pg.Orders) == 0 {
		t.Fatalf("composed answer has no orders: %+v", pg)
	}
	for _, o := range pg.Orders {
		if o.Invoice.ServedBy != "billing-1" || o.Invoice.Status == "" {
			t.Fatalf("order %d has invoice %+v, want one from billing-1", o.ID, o.Invoice)
		}
	}
	const n = 5
	for range n {
		if _, err := getPage(); err != nil {
			t.Fatalf("shop through the mesh: %v", err)
		}
	}
	ordersPerPage := float64(len(pg.Orders))
	// Every hop went through a sidecar: the frontend's outbound listener took
	// its two upstream calls, the callees' inbound listeners (mTLS) served them.
	for key, min := range map[string]float64{
		"frontend/outbound": 2 * n, "users/inbound": n, "orders/inbound": n,
		"orders/outbound": n * ordersPerPage, "billing/inbound": n * ordersPerPage,
	} {
		service, listener, _ := strings.Cut(key, "/")
		admin := map[string]string{"frontend": frontendSidecarAdmin, "users": usersSidecarAdmin, "orders": ordersSidecarAdmin, "billing": billingSidecarAdmin}[service]
		if got := sidecarRequests(t, admin, service, listener) - before[key]; got < min {
			t.Errorf("sidecar-%s %s listener served %v requests with 2xx during %d shop calls, want ≥ %v", service, listener, got, n, min)
		}
	}

	// The sidecar's inbound listener is mutual TLS with SPIFFE identities:
	// it presents the workload's SVID and refuses a client without one.
	checkInboundMTLS(t, usersInbound, "spiffe://switchyard.local/ns/shop/sa/users")

	// meshctl works against the dev mesh with the documented dev env.
	env := []string{"SWITCHYARD_JOIN_TOKEN=dev-meshctl-26d4883e68a317d040111890",
		"SWITCHYARD_TRUST_BUNDLE=" + filepath.Join(p.StateDir, "trust", "bundle.pem")}
	out := meshctl(t, binDir, work, env, "services")
	for _, svc := range []string{"frontend", "users", "orders", "billing"} {
		if !regexp.MustCompile(`(?m)^` + svc + `\s+1\s+1\s+0\b`).MatchString(out) {
			t.Errorf("meshctl services lacks %s with 1 instance, 1 passing, 0 critical:\n%s", svc, out)
		}
	}
	out = meshctl(t, binDir, work, env, "cluster", "status")
	// Rows of the member table only: the header line names the state of
	// whichever member answered.
	leaders := regexp.MustCompile(`(?m)^r\d\s.*\sLeader\s`).FindAllString(out, -1)
	followers := regexp.MustCompile(`(?m)^r\d\s.*\sFollower\s`).FindAllString(out, -1)
	if len(leaders) != 1 || len(followers) != 2 {
		t.Errorf("meshctl cluster status does not show one leader and two followers:\n%s", out)
	}

	// ratelimit registered itself, so a RateLimitPolicy reaches it: users'
	// sidecar asks it about every request and refuses past 10/s.
	harness.Poll(t, 15*time.Second, func() error {
		if out := meshctl(t, binDir, work, env, "instances", "-service", "ratelimit"); !regexp.MustCompile(`ratelimit-1\s+127\.0\.0\.1:8081\b.*\bpassing\b`).MatchString(out) {
			return fmt.Errorf("ratelimit is not registered and passing:\n%s", out)
		}
		return nil
	})
	meshctl(t, binDir, work, env, "apply", "-f", "deploy/dev/ratelimit.yaml")
	harness.Poll(t, 20*time.Second, func() error {
		refused := 0
		for range 30 {
			if _, err := getPage(); err != nil {
				refused++
			}
		}
		if refused == 0 {
			return errors.New("30 quick pages, none refused: the 10/s global limit on users is not applied yet")
		}
		if refused == 30 {
			return errors.New("30 quick pages, all refused: want the first ones allowed")
		}
		return nil
	})
	if over := metricSum(t, "http://127.0.0.1:6070/metrics", "switchyard_ratelimit_decisions_total", `result="over_limit"`); over == 0 {
		t.Errorf("ratelimit counted no over_limit decisions while users' sidecar refused pages")
	}
	meshctl(t, binDir, work, env, "delete", "-f", "deploy/dev/ratelimit.yaml")

	// Ctrl-C: the runner stops every process and exits 0.
	down := time.Now()
	stopPlan(t, dev, children)
	t.Logf("stopped in %s; whole test %s", time.Since(down).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

func getPage() (page, error) {
	var pg page
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(shopURL)
	if err != nil {
		return pg, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return pg, fmt.Errorf("GET %s: %s: %s", shopURL, resp.Status, bytes.TrimSpace(body))
	}
	if err := json.Unmarshal(body, &pg); err != nil {
		return pg, fmt.Errorf("GET %s: %v: %s", shopURL, err, body)
	}
	if pg.User.ServedBy == "" || pg.OrdersServedBy == "" {
		return pg, fmt.Errorf("GET %s: incomplete answer %s", shopURL, body)
	}
	return pg, nil
}

// sidecarRequests sums switchyard_sidecar_downstream_requests_total with
// code_class 2xx for one listener of one sidecar.
func sidecarRequests(t *testing.T, admin, service, listener string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatalf("sidecar-%s metrics: %v", service, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, "switchyard_sidecar_downstream_requests_total{") {
			continue
		}
		labels, value, ok := strings.Cut(line[len("switchyard_sidecar_downstream_requests_total{"):], "} ")
		if !ok || !strings.Contains(labels, `code_class="2xx"`) || !strings.Contains(labels, `listener="`+listener+`"`) ||
			!strings.Contains(labels, `service="`+service+`"`) {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			t.Fatalf("sidecar-%s metrics: %q: %v", service, line, err)
		}
		sum += v
	}
	return sum
}

// checkInboundMTLS checks that addr serves TLS with a certificate naming
// wantID, and that a request without a client certificate is refused.
func checkInboundMTLS(t *testing.T, addr, wantID string) {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr,
		&tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}) // #nosec G402 -- inspecting the peer, not trusting it
	if err != nil {
		t.Fatalf("TLS to %s: %v", addr, err)
	}
	defer conn.Close()
	certs := conn.ConnectionState().PeerCertificates
	if len(certs) == 0 || len(certs[0].URIs) != 1 || certs[0].URIs[0].String() != wantID {
		var uris []string
		if len(certs) > 0 {
			for _, u := range certs[0].URIs {
				uris = append(uris, u.String())
			}
		}
		t.Fatalf("%s presents URI SANs %v, want [%s]", addr, uris, wantID)
	}
	// TLS 1.3: the server's refusal of the missing client certificate
	// arrives on the first read.
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(conn, "GET /users/42 HTTP/1.1\r\nHost: users\r\nConnection: close\r\n\r\n"); err == nil {
		buf := make([]byte, 512)
		n, err := conn.Read(buf)
		if err == nil && bytes.Contains(buf[:n], []byte(" 200 ")) {
			t.Fatalf("%s served a client without a certificate: %q", addr, buf[:n])
		}
	}
	// Plain HTTP gets nothing either.
	c := &http.Client{Timeout: 3 * time.Second}
	if resp, err := c.Get("http://" + addr + "/users/42"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatalf("%s served plaintext HTTP", addr)
		}
	}
}

func meshctl(t *testing.T, binDir, dir string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "meshctl"), args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SWITCHYARD_") && !strings.HasPrefix(kv, "OTEL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("meshctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// proc is a process identified by PID and start time (so a reused PID is
// not mistaken for it).
type proc struct {
	pid   int
	start string
	name  string
}

func (p proc) String() string { return fmt.Sprintf("%s(%d)", p.name, p.pid) }

func (p proc) alive() bool {
	st, err := readStat(p.pid)
	return err == nil && st.start == p.start && st.state != "Z"
}

type stat struct {
	name, state, start string
	ppid, pgid         int
}

// readStat parses /proc/PID/stat (fields after the parenthesised command).
func readStat(pid int) (stat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return stat{}, err
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return stat{}, fmt.Errorf("/proc/%d/stat: unexpected %q", pid, s)
	}
	f := strings.Fields(s[end+1:])
	if len(f) < 20 {
		return stat{}, fmt.Errorf("/proc/%d/stat: short %q", pid, s)
	}
	ppid, _ := strconv.Atoi(f[1])
	pgid, _ := strconv.Atoi(f[2])
	return stat{name: s[open+1 : end], state: f[0], ppid: ppid, pgid: pgid, start: f[19]}, nil
}

func allPIDs() []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

func childrenOf(parent int) ([]proc, error) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		return nil, fmt.Errorf("this test needs Linux /proc: %w", err)
	}
	var out []proc
	for _, pid := range allPIDs() {
		st, err := readStat(pid)
		if err == nil && st.ppid == parent {
			out = append(out, proc{pid: pid, start: st.start, name: st.name})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no children of pid %d", parent)
	}
	return out, nil
}

// inGroups lists live processes in the process groups the children led
// (anything they forked).
func inGroups(children []proc) []string {
	groups := map[int]bool{}
	for _, c := range children {
		groups[c.pid] = true
	}
	var left []string
	for _, pid := range allPIDs() {
		if st, err := readStat(pid); err == nil && groups[st.pgid] && st.state != "Z" {
			left = append(left, fmt.Sprintf("%s(%d)", st.name, pid))
		}
	}
	return left
}

// loadPlan reads deploy/dev/mesh.yaml.
func loadPlan(t *testing.T) plan {
	t.Helper()
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	var p plan
	data, err := os.ReadFile(filepath.Join(root, "deploy", "dev", "mesh.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &p); err != nil {
		t.Fatalf("deploy/dev/mesh.yaml: %v", err)
	}
	if filepath.IsAbs(p.StateDir) {
		t.Fatalf("state_dir %q is absolute; it must be relative so the test can move it", p.StateDir)
	}
	return p
}

// prepare checks the plan's ports are free and makes a working directory
// for the runner and a bin directory holding the plan's binaries.
func prepare(t *testing.T, p plan) (work, binDir string) {
	t.Helper()
	// The plan's ports are fixed (make dev prints them); refuse to run over
	// a mesh that is already up rather than test it.
	for _, proc := range p.Processes {
		if u, err := url.Parse(proc.Ready); err == nil && u.Host != "" {
			if c, err := net.DialTimeout("tcp", u.Host, 200*time.Millisecond); err == nil {
				c.Close()
				t.Fatalf("%s (%s's ready port) is in use: stop `make dev` (or whatever listens there) before this test", u.Host, proc.Name)
			}
		}
	}
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	// The plan's paths are relative to the working directory. Run it from a
	// temporary directory that sees the repository's services/ and deploy/
	// (config the plan reads) but keeps its own state dir, so the test starts
	// from scratch and leaves nothing behind.
	work = t.TempDir()
	for _, dir := range []string{"services", "deploy"} {
		if err := os.Symlink(filepath.Join(root, dir), filepath.Join(work, dir)); err != nil {
			t.Fatal(err)
		}
	}
	binDir = filepath.Join(work, "bin")
	if err := os.Mkdir(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"meshctl": true}
	for _, proc := range p.Processes {
		want[proc.Binary] = true
	}
	for name := range want {
		path, err := filepath.Abs(harness.Binary(t, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(path, filepath.Join(binDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return work, binDir
}

// startPlan runs `meshctl dev -f planFile` in work and returns once the
// runner reports every process ready, with the processes it started.
func startPlan(t *testing.T, work, binDir, planFile string, p plan) (*harness.Proc, []proc) {
	t.Helper()
	dev := harness.Start(t, harness.Process{
		Name:         "meshctl-dev",
		Binary:       filepath.Join(binDir, "meshctl"),
		Args:         []string{"dev", "-f", planFile, "-bin", binDir},
		Dir:          work,
		ReadyURL:     p.Processes[len(p.Processes)-1].Ready,
		ReadyTimeout: 60 * time.Second,
		StopGrace:    20 * time.Second,
	})
	// Every process the runner started, found now so that the end of the
	// test can check each is gone. A safety net kills what a failed test
	// leaves behind (each child leads its own process group).
	var children []proc
	harness.Poll(t, 10*time.Second, func() error {
		if !strings.Contains(dev.Log(), "press Ctrl-C") {
			return errors.New("runner has not printed its links yet")
		}
		var err error
		children, err = childrenOf(dev.PID())
		return err
	})
	t.Cleanup(func() {
		for _, c := range children {
			if c.alive() {
				_ = syscall.Kill(-c.pid, syscall.SIGKILL)
			}
		}
	})
	if len(children) != len(p.Processes) {
		t.Fatalf("runner has %d child processes, want %d (one per plan entry): %v", len(children), len(p.Processes), children)
	}
	return dev, children
}

// stopPlan interrupts the runner as Ctrl-C does and checks it exits 0
// having stopped every process it started.
func stopPlan(t *testing.T, dev *harness.Proc, children []proc) {
	t.Helper()
	if err := dev.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-dev.Exited():
	case <-time.After(30 * time.Second):
		t.Fatalf("meshctl dev still running 30s after SIGINT")
	}
	if code := dev.ExitCode(); code != 0 {
		t.Errorf("meshctl dev exited %d after SIGINT, want 0", code)
	}
	if want := fmt.Sprintf("stopped %d processes", len(children)); !strings.Contains(dev.Log(), want) {
		t.Errorf("runner output lacks %q", want)
	}
	for _, c := range children {
		if c.alive() {
			t.Errorf("%s (pid %d) still running after meshctl dev exited", c.name, c.pid)
		}
	}
	if left := inGroups(children); len(left) > 0 {
		t.Errorf("processes left in the runner's children's process groups: %v", left)
	}
}

// metricSum adds the samples of one metric whose labels contain match.
func metricSum(t *testing.T, url, name, match string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	sum := 0.0
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, name+"{") || !strings.Contains(line, match) {
			continue
		}
		if v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64); err == nil {
			sum += v
		}
	}
	return sum
}
