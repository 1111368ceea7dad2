package sidecar_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/switchyard-mesh/switchyard/test/harness"
)

// hosts reads a cluster's endpoints from a sidecar's /clusters.
func hosts(t *testing.T, admin, cluster string) int {
	resp, err := http.Get("http://" + admin + "/clusters")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Clusters []struct {
			Name  string `json:"name"`
			Hosts []struct {
				Healthy bool `json:"healthy"`
			} `json:"hosts"`
		} `json:"clusters"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	for _, c := range out.Clusters {
		if c.Name == cluster {
			n := 0
			for _, h := range c.Hosts {
				if h.Healthy {
					n++
				}
			}
			return n
		}
	}
	return 0
}

func TestSidecarMesh(t *testing.T) {
	m := startMesh(t)
	var users []*sidecarProc
	socket := filepath.Join(m.Dir, "workload.sock")
	for i := 1; i <= 3; i++ {
		extra := []string{"-registration.tags", "v1"}
		if i == 3 {
			extra = []string{"-registration.tags", "v2"}
		}
		if i == 1 {
			extra = append(extra, "-workload_api_socket", socket)
		}
		users = append(users, m.startSidecar(t, "users", fmt.Sprintf("users-%d", i), startApp(t, fmt.Sprintf("users-%d", i)), extra...))
	}
	frontend := m.startSidecar(t, "frontend", "frontend-1", 0)
	billing := m.startSidecar(t, "billing", "billing-1", 0)

	harness.Poll(t, 30*time.Second, func() error {
		if n := hosts(t, frontend.admin, "users"); n != 3 {
			return fmt.Errorf("frontend sees %d healthy users endpoints, want 3 (registered by their sidecars)", n)
		}
		return nil
	})

	t.Run("9 requests over 3 replicas land 3-3-3 over mTLS", func(t *testing.T) {
		seen := map[string]int{}
		for range 9 {
			code, body, _, err := call(frontend.outbound, "users", "/users/1")
			if err != nil || code != 200 {
				t.Fatalf("frontend → users: %d %q %v", code, body, err)
			}
			name, caller, _ := strings.Cut(body, " ")
			seen[name]++
			if !strings.Contains(caller, "URI="+workloadID("frontend")) {
				t.Fatalf("app saw caller %q, want the frontend's SPIFFE ID", caller)
			}
		}
		if seen["users-1"] != 3 || seen["users-2"] != 3 || seen["users-3"] != 3 {
			t.Fatalf("9 requests landed %v, want 3-3-3", seen)
		}
	})

	t.Run("a pool growing under a burst resumes its mTLS sessions", func(t *testing.T) {
		// Each users replica has had a connection (and sent its session
		// ticket); a burst makes the frontend's pool dial more, which
		// resume those sessions instead of full handshakes.
		var wg sync.WaitGroup
		var failed atomic.Int64
		for range 32 {
			wg.Go(func() {
				for range 5 {
					if code, _, _, err := call(frontend.outbound, "users", "/"); err != nil || code != 200 {
						failed.Add(1)
					}
				}
			})
		}
		wg.Wait()
		if failed.Load() > 0 {
			t.Fatalf("%d of 160 requests failed", failed.Load())
		}
		full := metricValue(t, frontend.admin, `switchyard_sidecar_upstream_tls_handshakes_total{cluster="users",service="frontend",session="full"}`)
		resumed := metricValue(t, frontend.admin, `switchyard_sidecar_upstream_tls_handshakes_total{cluster="users",service="frontend",session="resumed"}`)
		if resumed < 1 {
			t.Fatalf("no resumed handshake after the burst (%v full): the pool's new connections did not resume the replicas' sessions", full)
		}
		t.Logf("frontend → users handshakes: %v full, %v resumed", full, resumed)
	})

	t.Run("AuthorizationPolicy denying billing: 403 (gRPC: PermissionDenied) for billing, frontend passes", func(t *testing.T) {
		m.Apply(t, `kind: AuthorizationPolicy
name: no-billing-to-users
spec:
  service: users
  action: deny
  rules:
    - from: [`+workloadID("billing")+`]
`)
		harness.Poll(t, 20*time.Second, func() error {
			code, body, hdr, err := call(billing.outbound, "users", "/users/1")
			if err != nil {
				return err
			}
			if code != 403 {
				return fmt.Errorf("billing → users: %d %q", code, body)
			}
			if hdr.Get("x-switchyard-reason") != "rbac_denied" || !strings.Contains(body, workloadID("billing")) {
				return fmt.Errorf("403 without a clear reason: %v %q", hdr, body)
			}
			return nil
		})
		if code, body, _, err := call(frontend.outbound, "users", "/users/1"); err != nil || code != 200 {
			t.Fatalf("frontend → users after the policy: %d %q %v", code, body, err)
		}
		// A gRPC caller is denied in gRPC's terms.
		cc, err := grpc.NewClient(billing.outbound, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("users"))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err = healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
		want := "RBAC: access denied: " + workloadID("billing") + " may not call POST /grpc.health.v1.Health/Check"
		if st, _ := status.FromError(err); st.Code() != codes.PermissionDenied || !strings.HasPrefix(st.Message(), want) {
			t.Fatalf("gRPC billing → users: %v, want PermissionDenied: %s", err, want)
		}
	})

	t.Run("no SVID: no handshake on the inbound port", func(t *testing.T) {
		conn, err := tls.Dial("tcp", users[0].inbound, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the point
		if err == nil {
			fmt.Fprint(conn, "GET / HTTP/1.1\r\nHost: users\r\n\r\n")
			_, err = bufio.NewReader(conn).ReadString('\n')
			conn.Close()
		}
		if err == nil {
			t.Fatal("a client without an SVID got an answer from the inbound listener")
		}
	})

	t.Run("the app gets its SVID from the Workload API socket", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		svid, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr("unix://"+socket))
		if err != nil {
			t.Fatal(err)
		}
		if svid.ID.String() != workloadID("users") {
			t.Fatalf("Workload API served %s, want %s", svid.ID, workloadID("users"))
		}
	})

	t.Run("HTTPRoute 90/10 split over 2,000 requests within the binomial 99.9% interval", func(t *testing.T) {
		m.Apply(t, `kind: HTTPRoute
name: users-canary
spec:
  service: users
  rules:
    - name: split
      matches: [{path: {prefix: /}}]
      backends:
        - {service: users, tag: v1, weight: 90}
        - {service: users, tag: v2, weight: 10}
`)
		harness.Poll(t, 20*time.Second, func() error {
			if n := hosts(t, frontend.admin, "users~v2"); n != 1 {
				return fmt.Errorf("users~v2 has %d endpoints", n)
			}
			return nil
		})
		time.Sleep(500 * time.Millisecond) // the route update follows the new clusters
		const n = 2000
		v2 := 0
		for range n {
			code, body, _, err := call(frontend.outbound, "users", "/")
			if err != nil || code != 200 {
				t.Fatalf("%d %q %v", code, body, err)
			}
			if strings.HasPrefix(body, "users-3 ") {
				v2++
			}
		}
		mean, sd := n*0.1, math.Sqrt(n*0.1*0.9)
		if lo, hi := mean-3.29*sd, mean+3.29*sd; float64(v2) < lo || float64(v2) > hi {
			t.Fatalf("v2 got %d of %d, want within [%.0f, %.0f]", v2, n, lo, hi)
		}
	})

	t.Run("a replica killed mid-load is ejected", func(t *testing.T) {
		m.Apply(t, `kind: ServiceDefaults
name: users
spec:
  retries: {attempts: 2, retry_on: [connect-failure]}
  outlier_detection: {consecutive_gateway_failure: 2, interval: 1s, base_ejection_time: 30s, max_ejection_percent: 50}
`)
		time.Sleep(time.Second) // the new cluster settings reach the frontend sidecar
		failures, last := 0, -1
		for i := range 100 {
			if i == 10 {
				users[1].proc.Kill() // users-2 (v1) dies; its registry entry lingers until the TTL
			}
			code, _, _, err := call(frontend.outbound, "users", "/")
			if err != nil || code != 200 {
				failures++
				last = i
			}
		}
		if failures > 3 || last > 20 {
			t.Fatalf("%d failures, the last at request %d: the dead replica was not ejected quickly", failures, last)
		}
		metrics, err := scrape(frontend.admin)
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`switchyard_sidecar_upstream_ejections_total\{cluster="users~v1",reason="consecutive_gateway_failure",service="frontend"\} [1-9]`).MatchString(metrics) {
			t.Fatalf("no consecutive_gateway_failure ejection counted for users~v1:\n%s", grepLines(metrics, "ejections_total"))
		}
		// The pool's connections are counted, and so are the connects the
		// dead replica refused.
		for _, re := range []string{
			`switchyard_sidecar_upstream_connections_total\{cluster="users~v1",result="opened",service="frontend"\} [1-9]`,
			`switchyard_sidecar_upstream_connections_total\{cluster="users~v1",result="failed",service="frontend"\} [1-9]`,
			`switchyard_sidecar_upstream_open_connections\{cluster="users~v1",service="frontend"\} [1-9]`,
		} {
			if !regexp.MustCompile(re).MatchString(metrics) {
				t.Fatalf("no sample matches %s:\n%s", re, grepLines(metrics, "connections"))
			}
		}
	})

	t.Run("control plane killed: traffic keeps flowing", func(t *testing.T) {
		m.ControlPlane.Kill()
		time.Sleep(300 * time.Millisecond)
		for range 30 {
			if code, body, _, err := call(frontend.outbound, "users", "/"); err != nil || code != 200 {
				t.Fatalf("after killing the control plane: %d %q %v", code, body, err)
			}
		}
	})
}

// scrape is a sidecar's /metrics page.
// waitForConfig waits until a sidecar's /config_dump contains want: the
// config that carries it has been applied.
func waitForConfig(t *testing.T, admin, want string) {
	t.Helper()
	harness.Poll(t, 20*time.Second, func() error {
		resp, err := http.Get("http://" + admin + "/config_dump")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if !strings.Contains(string(b), want) {
			return fmt.Errorf("config with %s not applied yet", want)
		}
		return nil
	})
}

func scrape(admin string) (string, error) {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// metricValue is the value of one exact series on a sidecar's /metrics.
func metricValue(t *testing.T, admin, series string) float64 {
	t.Helper()
	metrics, err := scrape(admin)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(metrics, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", series, err)
			}
			return f
		}
	}
	t.Fatalf("no series %s on %s:\n%s", series, admin, grepLines(metrics, "handshakes"))
	return 0
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
