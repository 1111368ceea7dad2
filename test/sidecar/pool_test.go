package sidecar_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/switchyard-mesh/switchyard/test/harness"
)

// ServiceDefaults connection_pool.max_connection_duration through the
// whole mesh: the frontend sidecar's pooled mTLS connections to users are
// reused until the setting is applied, and from then on replaced (a new
// handshake each time) at least every lifetime while requests keep
// succeeding.
func TestConnectionPoolLifetime(t *testing.T) {
	m := startMesh(t)
	m.startSidecar(t, "users", "users-1", startApp(t, "users-1"))
	frontend := m.startSidecar(t, "frontend", "frontend-1", 0)
	harness.Poll(t, 30*time.Second, func() error {
		if n := hosts(t, frontend.admin, "users"); n != 1 {
			return fmt.Errorf("frontend sees %d users endpoints, want 1", n)
		}
		return nil
	})
	const opened = `switchyard_sidecar_upstream_connections_total{cluster="users",result="opened",service="frontend"}`
	// sequential calls for d, every one of which must succeed.
	callFor := func(d time.Duration) int {
		n := 0
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			code, body, _, err := call(frontend.outbound, "users", "/")
			if err != nil || code != 200 {
				t.Fatalf("frontend → users: %d %q %v", code, body, err)
			}
			n++
		}
		return n
	}

	before := metricValue(t, frontend.admin, opened)
	n := callFor(2 * time.Second)
	if d := metricValue(t, frontend.admin, opened) - before; d > 1 {
		t.Fatalf("%v connections opened for %d sequential requests without a lifetime, want the pool to reuse one", d, n)
	}

	m.Apply(t, `kind: ServiceDefaults
name: users
spec:
  connection_pool: {max_connection_duration: 500ms}
`)
	waitForConfig(t, frontend.admin, `maxConnectionDuration`)
	before = metricValue(t, frontend.admin, opened)
	n = callFor(3 * time.Second)
	d := metricValue(t, frontend.admin, opened) - before
	// Six lifetimes of traffic: a new connection at least every 500ms.
	if d < 5 {
		t.Fatalf("%v connections opened over 3s of requests with a 500ms lifetime, want at least 5", d)
	}
	t.Logf("%d requests, %v upstream connections opened over 3s with a 500ms lifetime", n, d)
}
