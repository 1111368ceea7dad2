package tcpmesh_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-mesh/switchyard/test/harness"
	"github.com/switchyard-mesh/switchyard/test/meshtest"
)

// TestTCPServiceThroughSidecars: echo is a TCP service (ServiceDefaults
// protocol tcp, outbound_port P) with two replicas behind their sidecars. An
// app beside the client's sidecar dials 127.0.0.1:P and reaches a replica
// over mTLS, round robin per connection; a DENY AuthorizationPolicy for the
// client closes its connections; an ALLOW policy that does not admit it
// removes the listener from its sidecar.
func TestTCPServiceThroughSidecars(t *testing.T) {
	m := startMesh(t)
	port := meshtest.TCPServicePort(t)
	m.Apply(t, fmt.Sprintf("kind: ServiceDefaults\nname: echo\nspec: {protocol: tcp, outbound_port: %d}\n", port))

	backends := []*sidecarProc{
		m.startSidecar(t, "echo", "echo-1", startEcho(t, "echo-1")),
		m.startSidecar(t, "echo", "echo-2", startEcho(t, "echo-2")),
	}
	m.startSidecar(t, "client", "client-1", 0)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))

	// Both replicas registered, in the client's EDS, and the listener up.
	harness.Poll(t, 30*time.Second, func() error {
		seen := map[string]bool{}
		for range 4 {
			name, err := exchange(addr, []byte("hello\n"))
			if err != nil {
				return err
			}
			seen[name] = true
		}
		if !seen["echo-1"] || !seen["echo-2"] {
			return fmt.Errorf("replicas reached: %v, want echo-1 and echo-2", seen)
		}
		return nil
	})

	t.Run("round robin per connection, bytes intact both ways", func(t *testing.T) {
		payload := make([]byte, 256<<10)
		_, _ = rand.Read(payload)
		before := inboundConns(t, backends)
		counts := map[string]int{}
		for i := range 10 {
			name, err := exchange(addr, payload)
			if err != nil {
				t.Fatalf("connection %d: %v", i, err)
			}
			counts[name]++
		}
		if counts["echo-1"] != 5 || counts["echo-2"] != 5 {
			t.Errorf("10 connections landed %v, want 5-5", counts)
		}
		// Every connection came in through a backend sidecar's inbound
		// (mTLS) listener, not straight to the app.
		if got := inboundConns(t, backends) - before; got != 10 {
			t.Errorf("backend sidecars' inbound listeners accepted %v connections, want 10", got)
		}
	})

	t.Run("the inbound side speaks only mTLS", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", backends[0].inbound, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(15 * time.Second))
		_, _ = c.Write([]byte("GET / HTTP/1.0\r\n\r\nhello\n"))
		got, _ := io.ReadAll(c)
		if bytes.Contains(got, []byte("echo-")) {
			t.Fatalf("plaintext connection reached the app: %q", got)
		}
	})

	t.Run("a DENY policy for the caller closes its connections", func(t *testing.T) {
		m.Apply(t, `
kind: AuthorizationPolicy
name: echo-no-client
spec:
  service: echo
  action: deny
  rules: [{from: [spiffe://switchyard.local/ns/default/sa/client]}]
`)
		// The replicas' sidecars get the policy a moment apart: wait until
		// connections to both (round robin alternates) are refused.
		harness.Poll(t, 15*time.Second, func() error {
			for range 2 {
				if _, err := exchange(addr, []byte("hello\n")); !errors.Is(err, errClosed) {
					return fmt.Errorf("exchange: %v, want the connection closed", err)
				}
			}
			return nil
		})
		// Every new connection, on both replicas.
		for i := range 4 {
			if name, err := exchange(addr, []byte("hello\n")); !errors.Is(err, errClosed) {
				t.Errorf("connection %d reached %q (err %v) despite the policy", i, name, err)
			}
		}
		if denied := metricSum(t, backends, "switchyard_sidecar_rbac_denied_total", `listener="inbound"`); denied < 5 {
			t.Errorf("switchyard_sidecar_rbac_denied_total{listener=inbound} = %v on the backends, want ≥ 5", denied)
		}
	})

	t.Run("an ALLOW policy that does not admit the caller removes its listener", func(t *testing.T) {
		m.Apply(t, `
kind: AuthorizationPolicy
name: echo-only-ops
spec:
  service: echo
  rules: [{from: [spiffe://switchyard.local/ns/ops/*]}]
`)
		harness.Poll(t, 15*time.Second, func() error {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				return fmt.Errorf("%s still accepts connections", addr)
			}
			return nil
		})
	})
}

func inboundConns(t *testing.T, sidecars []*sidecarProc) float64 {
	return metricSum(t, sidecars, "switchyard_sidecar_tcp_connections_total", `listener="inbound"`)
}

// metricSum adds up the series of name whose labels contain label across
// the sidecars' /metrics.
func metricSum(t *testing.T, sidecars []*sidecarProc, name, label string) float64 {
	t.Helper()
	var sum float64
	for _, s := range sidecars {
		resp, err := http.Get("http://" + s.admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, name+"{") || !strings.Contains(line, label) {
				continue
			}
			v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			sum += v
		}
		resp.Body.Close()
	}
	return sum
}
