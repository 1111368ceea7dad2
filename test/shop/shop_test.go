package shop_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-mesh/switchyard/test/harness"
	"github.com/switchyard-mesh/switchyard/test/shop"
)

type page struct {
	User struct {
		ID       int    `json:"id"`
		Name     string `json:"name"`
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

func get(t *testing.T, url string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// The shop comes up as four processes, the frontend composes a user with
// their orders, and one trace id covers every hop.
func TestFrontendReturnsUserWithOrdersTracedEndToEnd(t *testing.T) {
	traces := harness.NewTraceReceiver(t)
	s := shop.Start(t, shop.Options{Env: traces.Env()})

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	resp, body := get(t, s["frontend"].URL+"/api/users/42", http.Header{
		"Traceparent": {"00-" + traceID + "-00f067aa0ba902b7-01"},
	})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/users/42 = %d %s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("X-Served-By"); got != "frontend-1" {
		t.Errorf("X-Served-By = %q, want frontend-1", got)
	}
	var p page
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	if p.User.ID != 42 || p.User.Name == "" || p.User.ServedBy != "users-1" || p.ServedBy != "frontend-1" || p.OrdersServedBy != "orders-1" {
		t.Errorf("page = %s", body)
	}
	if len(p.Orders) == 0 {
		t.Fatalf("no orders in %s", body)
	}
	for _, o := range p.Orders {
		if o.Invoice.Status == "" || o.Invoice.ServedBy != "billing-1" {
			t.Errorf("order without billing's invoice: %s", body)
		}
	}

	tr := traces.WaitForTrace(t, 15*time.Second, func(tr harness.Trace) bool {
		// The frontend's server span ends after its client spans, so with
		// it every span of the page has been exported.
		return tr.ID == traceID && harness.HasServices(shop.Apps...)(tr) && serverSpans(tr, "billing") == len(p.Orders) &&
			serverSpans(tr, "frontend") == 1
	})
	// Every app's server span hangs off a client span of its caller: one
	// connected tree under the caller's traceparent.
	byID := map[string]harness.Span{}
	for _, sp := range tr.Spans {
		byID[sp.SpanID] = sp
	}
	for _, sp := range tr.Spans {
		if sp.Kind != "SERVER" {
			continue
		}
		parent, ok := byID[sp.ParentSpanID]
		switch {
		case sp.Service == "frontend":
			if sp.ParentSpanID != "00f067aa0ba902b7" {
				t.Errorf("frontend span parent = %s, want the caller's span", sp.ParentSpanID)
			}
		case !ok || parent.Kind != "CLIENT":
			t.Errorf("%s server span %q has no client parent in the trace:\n%s", sp.Service, sp.Name, tr)
		}
	}
}

func serverSpans(tr harness.Trace, service string) int {
	n := 0
	for _, sp := range tr.Spans {
		if sp.Service == service && sp.Kind == "SERVER" {
			n++
		}
	}
	return n
}

// Faults set through the admin endpoint reach the frontend's answers, and
// the metrics count them per app.
func TestInjectedFaultsAndMetrics(t *testing.T) {
	s := shop.Start(t, shop.Options{})
	post := func(url string) {
		t.Helper()
		resp, err := http.Post(url, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s = %d %s", url, resp.StatusCode, body)
		}
	}
	post(s["billing"].AdminURL + "/admin/fault?error_rate=1")
	resp, body := get(t, s["frontend"].URL+"/api/users/7", nil)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "billing answered 503") {
		t.Errorf("with billing failing: %d %s, want 502 naming billing", resp.StatusCode, body)
	}
	post(s["billing"].AdminURL + "/admin/fault?error_rate=0&latency=200ms")
	start := time.Now()
	resp, body = get(t, s["frontend"].URL+"/api/users/7", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("after clearing the error rate: %d %s", resp.StatusCode, body)
	}
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Errorf("answer took %s with 200ms injected into billing", took)
	}

	_, metrics := get(t, s["frontend"].AdminURL+"/metrics", nil)
	for _, want := range []string{
		`switchyard_shop_http_requests_total{app="frontend",code="502",method="GET"} 1`,
		`switchyard_shop_http_requests_total{app="frontend",code="200",method="GET"} 1`,
		`switchyard_shop_upstream_requests_total{app="frontend",code="502",upstream="orders"} 1`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("frontend /metrics lacks %s", want)
		}
	}
	_, metrics = get(t, s["billing"].AdminURL+"/metrics", nil)
	if !strings.Contains(string(metrics), `switchyard_shop_faults_injected_total{app="billing",kind="error"} 1`) {
		t.Errorf("billing /metrics does not count the injected error:\n%s", grep(string(metrics), "faults"))
	}
}

func grep(s, substr string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// Bad configuration makes the binary exit non-zero naming the setting.
func TestBadConfigExits(t *testing.T) {
	bin := harness.Binary(t, "shop")
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		file string
		want string
	}{
		{"missing upstream", []string{"-app", "frontend", "-upstreams.users", "http://127.0.0.1:1"}, nil, "", "upstreams.orders: required"},
		{"unknown key", nil, nil, "app: users\nlisten: :80\n", `unknown key "listen"`},
		{"wrong type in file", nil, nil, "app: users\nhttp:\n  timeout: [1, 2]\n", "http.timeout"},
		{"wrong type in env", []string{"-app", "users"}, []string{"SWITCHYARD_FAULT_ERROR_RATE=half"}, "", "fault.error_rate"},
		{"unknown flag", []string{"-app", "users", "-colour", "red"}, nil, "", "-colour"},
		{"no app", nil, nil, "", "app: want one of frontend, users, orders, billing"},
		{"unusable listen address", []string{"-app", "users", "-http.addr", "256.0.0.1:1"}, nil, "", "http.addr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.file != "" {
				p := t.TempDir() + "/shop.yaml"
				writeFile(t, p, tc.file)
				args = append([]string{"-config", p}, args...)
			}
			res := harness.RunToExit(t, harness.Process{Binary: bin, Args: args, Env: tc.env}, 20*time.Second)
			if res.Code == 0 || !strings.Contains(res.Output, tc.want) {
				t.Errorf("shop %s: exit %d, output:\n%s\nwant non-zero naming %q", strings.Join(args, " "), res.Code, res.Output, tc.want)
			}
		})
	}
	t.Run("validate subcommand", func(t *testing.T) {
		p := t.TempDir() + "/shop.yaml"
		writeFile(t, p, "app: orders\nupstreams:\n  billing: http://billing:8093\n")
		res := harness.RunToExit(t, harness.Process{Binary: bin, Args: []string{"validate", "-config", p}}, 20*time.Second)
		if res.Code != 0 {
			t.Errorf("validate of a good file: exit %d\n%s", res.Code, res.Output)
		}
		writeFile(t, p, "app: orders\n")
		res = harness.RunToExit(t, harness.Process{Binary: bin, Args: []string{"validate", "-config", p}}, 20*time.Second)
		if res.Code == 0 || !strings.Contains(res.Output, "upstreams.billing") {
			t.Errorf("validate of a bad file: exit %d\n%s", res.Code, res.Output)
		}
	})
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(fmt.Errorf("write %s: %w", path, err))
	}
}

// SIGTERM lets an in-flight request finish, then the app exits 0.
func TestGracefulShutdownDrainsInFlight(t *testing.T) {
	s := shop.Start(t, shop.Options{Args: map[string][]string{"users": {"-fault.latency", "700ms"}}})
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.Get(s["frontend"].URL + "/api/users/3")
		if err != nil {
			done <- result{err: err}
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		done <- result{code: resp.StatusCode}
	}()
	time.Sleep(300 * time.Millisecond) // the request is waiting on users
	if err := s["frontend"].Proc.Stop(); err != nil {
		t.Errorf("frontend did not stop cleanly on SIGTERM: %v", err)
	}
	r := <-done
	if r.err != nil || r.code != http.StatusOK {
		t.Errorf("in-flight request during shutdown = %d, %v; want 200", r.code, r.err)
	}
	if code := s["frontend"].Proc.ExitCode(); code != 0 {
		t.Errorf("frontend exit code = %d, want 0", code)
	}
}
