package server_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	registryv1 "github.com/switchyard-mesh/switchyard/proto/switchyard/registry/v1"
)

func TestHTTPAPI(t *testing.T) {
	c := newCluster(t, 3, nil)
	leader := c.leader(10 * time.Second)
	f := c.followers(leader)[0]
	srv := httptest.NewServer(f.srv.HTTPHandler())
	defer srv.Close()

	post := func(path, body string) (int, string) {
		resp, err := http.Post(srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := post("/v1/register", `{"service":"orders","id":"o-1","address":"10.0.0.7","port":8080,"locality":{"region":"eu-west"},"check":{"type":"CHECK_TYPE_TTL","ttl":"30s"}}`)
	if code != 200 || !strings.Contains(body, `"index"`) {
		t.Fatalf("register: %d %s", code, body)
	}
	code, body = get("/v1/catalog/service/orders")
	if code != 200 || !strings.Contains(body, `"address":"10.0.0.7"`) || !strings.Contains(body, "HEALTH_STATUS_PASSING") {
		t.Fatalf("service: %d %s", code, body)
	}
	code, body = get("/v1/catalog/services")
	if code != 200 || !strings.Contains(body, `"name":"orders"`) {
		t.Fatalf("services: %d %s", code, body)
	}
	waitFor(t, 5*time.Second, func() bool { // a stale read on the follower catches up
		code, body := get("/v1/catalog/services?stale=true")
		return code == 200 && strings.Contains(body, `"name":"orders"`)
	})
	code, body = post("/v1/register", `{"service":"orders","id":"o-2","address":"10.0.0.7","port":0}`)
	var e map[string]string
	_ = json.Unmarshal([]byte(body), &e)
	if code != 400 || e["code"] != "InvalidArgument" || !strings.Contains(e["error"], "instance.port") {
		t.Fatalf("bad port: %d %s", code, body)
	}
	if code, body = post("/v1/register", `{"service":`); code != 400 {
		t.Fatalf("malformed json: %d %s", code, body)
	}
	if code, body = post("/v1/heartbeat/orders/o-1", ``); code != 200 {
		t.Fatalf("heartbeat: %d %s", code, body)
	}
	if code, body = post("/v1/deregister/orders/o-1", ``); code != 200 {
		t.Fatalf("deregister: %d %s", code, body)
	}
	if code, body = post("/v1/deregister/orders/o-1", ``); code != 404 {
		t.Fatalf("deregister again: %d %s", code, body)
	}
	if code, body = get("/v1/cluster/status"); code != 200 || !strings.Contains(body, `"leader_id"`) {
		t.Fatalf("cluster status: %d %s", code, body)
	}
	if code, body = get("/v1/config/ServiceDefaults/nope"); code != 404 {
		t.Fatalf("missing config: %d %s", code, body)
	}
}

func TestActiveHTTPCheckWithThresholds(t *testing.T) {
	var failing atomic.Bool
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	defer app.Close()
	c := newCluster(t, 3, nil)
	leader := c.leader(10 * time.Second)
	ctx := ctxT(t, 30*time.Second)
	in := orders("web-1", appPort(t, app))
	in.Check = &registryv1.HealthCheck{
		Type: registryv1.CheckType_CHECK_TYPE_HTTP, HttpPath: "/healthz",
		Interval: durationpb.New(100 * time.Millisecond), Timeout: durationpb.New(100 * time.Millisecond),
		FailuresBeforeCritical: 3, SuccessesBeforePassing: 2,
	}
	if _, err := leader.client().Register(ctx, &registryv1.RegisterRequest{Instance: in}); err != nil {
		t.Fatal(err)
	}
	healthOf := func() registryv1.HealthStatus {
		r, err := leader.client().GetService(ctx, &registryv1.GetServiceRequest{Service: "orders"})
		if err != nil || len(r.GetInstances()) == 0 {
			return 0
		}
		return r.GetInstances()[0].GetHealth()
	}
	// Starts critical until checked, then passes.
	waitFor(t, 5*time.Second, func() bool { return healthOf() == registryv1.HealthStatus_HEALTH_STATUS_PASSING })
	failing.Store(true)
	waitFor(t, 5*time.Second, func() bool { return healthOf() == registryv1.HealthStatus_HEALTH_STATUS_CRITICAL })
	failing.Store(false)
	waitFor(t, 5*time.Second, func() bool { return healthOf() == registryv1.HealthStatus_HEALTH_STATUS_PASSING })
}

func appPort(t *testing.T, s *httptest.Server) uint32 {
	t.Helper()
	return uint32(s.Listener.Addr().(*net.TCPAddr).Port)
}
