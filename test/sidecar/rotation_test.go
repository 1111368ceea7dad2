package sidecar_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"

	"github.com/switchyard-mesh/switchyard/services/kit/identity"
	"github.com/switchyard-mesh/switchyard/test/harness"
	"github.com/switchyard-mesh/switchyard/test/meshtest"
)

// TestRootRotationUnderTraffic follows the ca README's root rotation with
// the whole mesh running and requests flowing through its sidecars the
// whole time: publish the next root beside the current one, switch the ca
// to it keeping the old one published until the SVIDs it signed expired,
// then drop the old root. No request may fail; afterwards an SVID of the
// old root is refused at a sidecar's inbound port, and a sidecar started
// with the new bundle file joins the mesh.
func TestRootRotationUnderTraffic(t *testing.T) {
	const svidTTL = 8 * time.Second
	ttlLine := fmt.Sprintf("svid_ttl: %s", svidTTL)
	m := &mesh{meshtest.StartCA(t, tokens, ttlLine)}
	m.StartRegistry(t)
	m.StartControlPlane(t)
	ordersPort := meshtest.TCPServicePort(t)
	m.Apply(t, fmt.Sprintf(`kind: ServiceDefaults
name: orders
spec: {protocol: tcp, outbound_port: %d}
---
kind: AuthorizationPolicy
name: orders
spec:
  service: orders
  action: allow
  rules: [{from: [%s]}]
`, ordersPort, workloadID("frontend")))
	ordersAddr := fmt.Sprintf("127.0.0.1:%d", ordersPort)
	users := m.startSidecar(t, "users", "users-1", startApp(t, "users-1"))
	orders := m.startSidecar(t, "orders", "orders-1", startApp(t, "orders-1"))
	frontend := m.startSidecar(t, "frontend", "frontend-1", 0)
	harness.Poll(t, 30*time.Second, func() error {
		if n := hosts(t, frontend.admin, "users"); n != 1 {
			return fmt.Errorf("frontend sees %d healthy users endpoints, want 1", n)
		}
		if code, body, err := callNewConnection(ordersAddr); code != http.StatusOK {
			return fmt.Errorf("frontend → orders over TCP: %d %q %v", code, body, err)
		}
		return nil
	})
	admins := map[string]string{"registry": m.RegistryAdmin, "controlplane": m.ControlPlaneAdmin,
		"frontend sidecar": frontend.admin, "users sidecar": users.admin, "orders sidecar": orders.admin}
	// restartCA restarts the ca with extra config lines and waits until
	// every component has renewed its SVID from the restarted ca, so each
	// holds the bundle (and, after the switch, an SVID) of the new config.
	restartCA := func(t *testing.T, extra ...string) {
		t.Helper()
		m.RestartCA(t, append([]string{ttlLine}, extra...)...)
		before := renewals(admins)
		harness.Poll(t, 4*svidTTL, func() error {
			after := renewals(admins)
			for name := range admins {
				if after[name] <= before[name] {
					return fmt.Errorf("%s has not renewed its SVID since the ca restarted", name)
				}
			}
			return nil
		})
	}

	// users is HTTP: the frontend sidecar's pool keeps its connections, so
	// those must outlive the rotation. orders is a TCP service: every
	// connection the app opens is a new mTLS handshake between the
	// sidecars, which must succeed at every step.
	load := startTraffic(t,
		request{"frontend → users (HTTP, pooled)", func() (int, string, error) {
			code, body, _, err := call(frontend.outbound, "users", "/")
			return code, body, err
		}},
		request{"frontend → orders (TCP, a handshake per request)", func() (int, string, error) {
			return callNewConnection(ordersAddr)
		}})
	dir := t.TempDir()
	oldRoot, nextRoot := filepath.Join(dir, "root-old.crt"), filepath.Join(dir, "root-next.crt")
	nextKey := filepath.Join(dir, "root-next.key")
	newRoot(t, nextRoot, nextKey)

	// 1. The next root is published beside the current one.
	restartCA(t, "extra_roots_file: "+nextRoot)
	// An SVID of the old root that outlives the rotation (a process that
	// missed it): 10 minutes, not renewed.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stale, err := identity.New(ctx, identity.Config{CAAddr: m.CAAddr, JoinToken: tokens[workloadID("shadow")],
		SPIFFEID: workloadID("shadow"), TrustBundleFile: m.Bundle, TTL: 10 * time.Minute}, identity.Options{})
	if err != nil {
		t.Fatal(err)
	}

	// 2. The ca signs with the next root; the old one stays published
	// until every SVID it signed has expired.
	data := m.CADataDir()
	copyFile(t, filepath.Join(data, "root.crt"), oldRoot)
	copyFile(t, nextRoot, filepath.Join(data, "root.crt"))
	copyFile(t, nextKey, filepath.Join(data, "root.key"))
	switched := time.Now()
	restartCA(t, "extra_roots_file: "+oldRoot)
	chain, err := inboundRequest(stale, users.inbound)
	if err != nil {
		t.Fatalf("with both roots trusted, the old root's SVID was refused: %v", err)
	}
	if err := verifiesAgainst(chain, nextRoot); err != nil {
		t.Fatalf("after the switch the users sidecar presents a certificate not from the next root: %v", err)
	}
	time.Sleep(time.Until(switched.Add(svidTTL + time.Second)))

	// 3. The old root is dropped.
	refusalsBefore := metricSum(users.admin, "switchyard_identity_handshake_refusals_total")
	restartCA(t)
	if b, err := os.ReadFile(m.Bundle); err != nil || strings.Count(string(b), "BEGIN CERTIFICATE") != 1 {
		t.Fatalf("bundle file after dropping the old root: %d roots, %v", strings.Count(string(b), "BEGIN CERTIFICATE"), err)
	}
	if !mustParse(t, m.Bundle).Equal(mustParse(t, nextRoot)) {
		t.Fatal("the bundle's one root is not the next root")
	}
	// A fresh process bootstraps from the new bundle file and joins.
	users2 := m.startSidecar(t, "users", "users-2", startApp(t, "users-2"))
	harness.Poll(t, 30*time.Second, func() error {
		if n := hosts(t, frontend.admin, "users"); n != 2 {
			return fmt.Errorf("frontend sees %d healthy users endpoints, want 2", n)
		}
		return nil
	})
	seen := map[string]bool{}
	for range 4 {
		code, body, _, err := call(frontend.outbound, "users", "/")
		if err != nil || code != 200 {
			t.Fatalf("frontend → users after the rotation: %d %q %v", code, body, err)
		}
		name, _, _ := strings.Cut(body, " ")
		seen[name] = true
	}
	if !seen["users-2"] {
		t.Fatalf("no request reached the sidecar started after the rotation: %v", seen)
	}
	ok, failed, errs := load.stop()
	if failed > 0 || ok < 100 {
		t.Fatalf("during the rotation %d requests succeeded and %d failed; first failures:\n%s", ok, failed, strings.Join(errs, "\n"))
	}
	t.Logf("%d requests through the rotation, none failed", ok)

	if _, err := inboundRequest(stale, users2.inbound); err == nil {
		t.Fatal("an SVID of the dropped root was accepted by a sidecar started after the rotation")
	}
	if _, err := inboundRequest(stale, users.inbound); err == nil {
		t.Fatal("an SVID of the dropped root was still accepted after the rotation")
	}
	if n := metricSum(users.admin, "switchyard_identity_handshake_refusals_total") - refusalsBefore; n != 1 {
		t.Fatalf("users sidecar counted %v handshake refusals after the old root was dropped, want exactly the stale SVID's 1", n)
	}
	if !strings.Contains(users.proc.Log(), "unknown authority") {
		t.Fatalf("the users sidecar's log does not say why the stale SVID was refused:\n%s", users.proc.LogTail(20))
	}
}

// renewals is each component's count of successful SVID renewals.
func renewals(admins map[string]string) map[string]float64 {
	out := make(map[string]float64, len(admins))
	for name, admin := range admins {
		out[name] = metricSum(admin, "switchyard_identity_svid_fetches_total", `mode="renewal"`, `result="success"`)
	}
	return out
}

// traffic is a steady stream of requests through the mesh, counting those
// answered 200 and keeping the failures.
type traffic struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	ok     int
	errs   []string
}

// request is one kind of request of a traffic stream: name says its path
// through the mesh, do sends it and returns the status code and body.
type request struct {
	name string
	do   func() (int, string, error)
}

// startTraffic sends each request in a loop, one at a time, and all of
// them in a burst of 16 every second.
func startTraffic(t *testing.T, reqs ...request) *traffic {
	ctx, cancel := context.WithCancel(context.Background())
	tr := &traffic{cancel: cancel}
	send := func(r request) {
		code, body, err := r.do()
		tr.mu.Lock()
		defer tr.mu.Unlock()
		switch {
		case err != nil:
			tr.errs = append(tr.errs, fmt.Sprintf("%s %s: %v", time.Now().Format("15:04:05.000"), r.name, err))
		case code != http.StatusOK:
			tr.errs = append(tr.errs, fmt.Sprintf("%s %s: %d %q", time.Now().Format("15:04:05.000"), r.name, code, body))
		default:
			tr.ok++
		}
	}
	for _, r := range reqs {
		tr.wg.Go(func() {
			for ctx.Err() == nil {
				send(r)
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	tr.wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				var burst sync.WaitGroup
				for i := range 16 {
					burst.Go(func() { send(reqs[i%len(reqs)]) })
				}
				burst.Wait()
			}
		}
	})
	t.Cleanup(func() { tr.stop() })
	return tr
}

// stop ends the traffic and returns how many requests succeeded and failed,
// with the first failures.
func (tr *traffic) stop() (ok, failed int, first []string) {
	tr.cancel()
	tr.wg.Wait()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.ok, len(tr.errs), tr.errs[:min(len(tr.errs), 10)]
}

// newRoot makes the next root the way the ca README tells operators to,
// with openssl.
func newRoot(t *testing.T, certFile, keyFile string) {
	t.Helper()
	out, err := exec.Command("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-days", "3650", "-subj", "/O=Switchyard/CN=Switchyard root CA 2",
		"-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
		"-addext", "subjectAltName=URI:spiffe://switchyard.local",
		"-keyout", keyFile, "-out", certFile).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func mustParse(t *testing.T, pemFile string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(pemFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM block", pemFile)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// verifiesAgainst checks that chain (leaf first) chains to the one root in
// rootFile.
func verifiesAgainst(chain []*x509.Certificate, rootFile string) error {
	b, err := os.ReadFile(rootFile)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(b) {
		return fmt.Errorf("%s: no certificate", rootFile)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err = chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err
}

// inboundRequest sends one request to a sidecar's inbound port over mTLS
// as src, and returns the certificate chain the sidecar presented. Any
// HTTP answer counts: in TLS 1.3 a server's refusal of the client's
// certificate arrives with the first read.
func inboundRequest(src *identity.Source, inbound string) ([]*x509.Certificate, error) {
	cfg := src.ClientTLSConfigWith(tlsconfig.AuthorizeMemberOf(spiffeid.RequireTrustDomainFromString("switchyard.local")))
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", inbound, cfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprint(conn, "GET / HTTP/1.1\r\nHost: users\r\nConnection: close\r\n\r\n"); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	chain := conn.ConnectionState().PeerCertificates
	if len(chain) == 0 {
		return nil, errors.New("no server certificate")
	}
	return chain, nil
}

// callNewConnection sends one HTTP request to addr over a connection of its
// own.
func callNewConnection(addr string) (int, string, error) {
	req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
	req.Close = true
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}
