package identity

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var (
	idReg = SystemID("registry")
	idCP  = SystemID("controlplane")
)

const (
	tokReg = "token-registry"
	tokCP  = "token-controlplane"
)

type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newSource(t *testing.T, ca *testCA, id spiffeid.ID, token string, ttl time.Duration, logs io.Writer, reg prometheus.Registerer) *Source {
	t.Helper()
	if logs == nil {
		logs = io.Discard
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	src, err := New(ctx, Config{CAAddr: ca.addr, JoinToken: token, SPIFFEID: id.String(), TrustBundleFile: ca.bundleFile, TTL: ttl},
		Options{Log: slog.New(slog.NewTextHandler(logs, nil)), Registerer: reg})
	if err != nil {
		t.Fatalf("New(%s): %v", id, err)
	}
	return src
}

func runSource(t *testing.T, src *Source) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func TestFirstSVIDFromJoinToken(t *testing.T) {
	ca := newTestCA(t, map[string]spiffeid.ID{tokReg: idReg})
	reg := prometheus.NewRegistry()
	src := newSource(t, ca, idReg, tokReg, 0, nil, reg)
	svid, err := src.GetX509SVID()
	if err != nil {
		t.Fatal(err)
	}
	if svid.ID != idReg {
		t.Fatalf("ID %s", svid.ID)
	}
	if _, _, err := x509svid.Verify(svid.Certificates, src); err != nil {
		t.Fatalf("SVID does not verify against the source's own bundle: %v", err)
	}
	if _, err := src.GetX509BundleForTrustDomain(spiffeid.RequireTrustDomainFromString("other.example")); err == nil {
		t.Fatal("bundle for a foreign trust domain")
	}
	want := float64(svid.Certificates[0].NotAfter.Unix())
	if got := testutil.ToFloat64(src.metrics.expiry); got != want {
		t.Fatalf("expiry gauge %v, want %v", got, want)
	}
	// A second Source on the same registry shares the metric families.
	newSource(t, ca, idReg, tokReg, 0, nil, reg)
	if ca.joins.Load() != 2 || ca.renewals.Load() != 0 {
		t.Fatalf("joins=%d renewals=%d", ca.joins.Load(), ca.renewals.Load())
	}
}

func TestNewFailsFastOnRefusal(t *testing.T) {
	ca := newTestCA(t, map[string]spiffeid.ID{tokReg: idReg})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	for _, tc := range []struct {
		name, token string
		id          spiffeid.ID
		want        codes.Code
	}{
		{"unknown token", "nope", idReg, codes.Unauthenticated},
		{"token for another ID", tokReg, idCP, codes.PermissionDenied},
	} {
		_, err := New(ctx, Config{CAAddr: ca.addr, JoinToken: tc.token, SPIFFEID: tc.id.String(), TrustBundleFile: ca.bundleFile}, Options{Log: slog.New(slog.DiscardHandler)})
		if status.Code(errors.Unwrap(err)) != tc.want && !strings.Contains(err.Error(), tc.want.String()) {
			t.Fatalf("%s: err = %v, want %s", tc.name, err, tc.want)
		}
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("refusals were retried")
	}
}

func TestNewWaitsForCA(t *testing.T) {
	ca := newTestCA(t, map[string]spiffeid.ID{tokReg: idReg})
	ca.stop()
	go func() {
		time.Sleep(700 * time.Millisecond)
		ca.start()
	}()
	newSource(t, ca, idReg, tokReg, 0, nil, nil)
}

func TestRenewsAtHalfLifeAndSurvivesOutage(t *testing.T) {
	ca := newTestCA(t, map[string]spiffeid.ID{tokReg: idReg})
	src := newSource(t, ca, idReg, tokReg, 3*time.Second, nil, nil)
	first, _ := src.GetX509SVID()
	changed := src.Changed()
	runSource(t, src)

	select {
	case <-changed:
	case <-time.After(4 * time.Second):
		t.Fatal("no renewal within the SVID's lifetime")
	}
	second, _ := src.GetX509SVID()
	if second.Certificates[0].SerialNumber.Cmp(first.Certificates[0].SerialNumber) == 0 {
		t.Fatal("renewal returned the same certificate")
	}
	if ca.renewals.Load() == 0 {
		t.Fatal("renewal did not use mTLS with the current SVID")
	}
	if second.PrivateKey == first.PrivateKey {
		t.Fatal("renewal reused the private key")
	}

	// ca down: the current SVID keeps being served, and the process stays
	// ready until it expires.
	ca.stop()
	time.Sleep(1500 * time.Millisecond)
	during, err := src.GetX509SVID()
	if err != nil || during == nil {
		t.Fatalf("no SVID during outage: %v", err)
	}
	if err := src.Ready(context.Background()); err != nil {
		t.Fatalf("not ready with a valid SVID: %v", err)
	}
	time.Sleep(time.Until(during.Certificates[0].NotAfter) + 100*time.Millisecond)
	if err := src.Ready(context.Background()); err == nil {
		t.Fatal("ready with an expired SVID")
	}
	// ca back: renewals resume (by token if the SVID expired meanwhile).
	joins := ca.joins.Load()
	recovered := src.Changed()
	ca.start()
	// Wait for the source to install the new SVID, not for the CA to count
	// the request: the two happen a moment apart.
	select {
	case <-recovered:
	case <-time.After(8 * time.Second):
		t.Fatal("no new SVID after the ca came back")
	}
	after, _ := src.GetX509SVID()
	if time.Now().After(after.Certificates[0].NotAfter) {
		t.Fatal("serving an expired SVID after recovery")
	}
	if ca.joins.Load() == joins {
		t.Fatal("an expired SVID was not replaced through the join token")
	}
	if err := src.Ready(context.Background()); err != nil {
		t.Fatalf("not ready after recovery: %v", err)
	}
}

// serve accepts TLS connections and echoes lines back.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func echo(c net.Conn, msg string) error {
	if _, err := c.Write([]byte(msg + "\n")); err != nil {
		return err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if got != msg+"\n" {
		return errors.New("echo mismatch")
	}
	return nil
}

func TestMTLSAuthorizesAndLogsRefusals(t *testing.T) {
	ca := newTestCA(t, map[string]spiffeid.ID{tokReg: idReg, tokCP: idCP, "token-meshctl": SystemID("meshctl")})
	logs := &logBuffer{}
	reg := prometheus.NewRegistry()
	server := newSource(t, ca, idReg, tokReg, 0, logs, reg)
	addr := serve(t, server.ServerTLSConfig(idCP))

	client := newSource(t, ca, idCP, tokCP, 0, nil, nil)
	c, err := tls.Dial("tcp", addr, client.ClientTLSConfig(idReg))
	if err != nil {
		t.Fatalf("allowed client refused: %v", err)
	}
	if err := echo(c, "hello"); err != nil {
		t.Fatal(err)
	}
	c.Close()

	// Wrong SPIFFE ID: refused, logged with what it presented.
	wrong := newSource(t, ca, SystemID("meshctl"), "token-meshctl", 0, nil, nil)
	if err := dialAndTalk(addr, wrong.ClientTLSConfig(idReg)); err == nil {
		t.Fatal("client with a disallowed ID got through")
	}
	// No certificate at all.
	if err := dialAndTalk(addr, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}); err == nil { //nolint:gosec // the test client has no SVID
		t.Fatal("client without a certificate got through")
	}
	// The client side refuses a server with an unexpected ID.
	if err := dialAndTalk(addr, client.ClientTLSConfig(idCP)); err == nil {
		t.Fatal("client accepted a server with the wrong ID")
	}
	time.Sleep(100 * time.Millisecond)
	out := logs.String()
	for _, want := range []string{
		"TLS handshake refused",
		"peer.spiffe_id=spiffe://switchyard.local/system/meshctl",
		"peer.certificate=none",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if got := testutil.ToFloat64(server.metrics.refusals.WithLabelValues("client")); got != 2 {
		t.Errorf("client refusals counted %v, want 2", got)
	}
}

// dialAndTalk completes a handshake and an exchange; with TLS 1.3 a client
// learns that the server refused its certificate only on first read.
func dialAndTalk(addr string, cfg *tls.Config) error {
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	return echo(c, "x")
}

func TestRotationKeepsConnections(t *testing.T) {
	ca := newTestCA(t, map[string]spiffeid.ID{tokReg: idReg, tokCP: idCP})
	server := newSource(t, ca, idReg, tokReg, 3*time.Second, nil, nil)
	client := newSource(t, ca, idCP, tokCP, 3*time.Second, nil, nil)
	runSource(t, server)
	runSource(t, client)
	addr := serve(t, server.ServerTLSConfig(idCP))
	long, err := tls.Dial("tcp", addr, client.ClientTLSConfig(idReg))
	if err != nil {
		t.Fatal(err)
	}
	defer long.Close()
	firstSerial := long.ConnectionState().PeerCertificates[0].SerialNumber

	// Several SVID lifetimes: the long-lived connection keeps working, and
	// new connections always succeed with the current SVIDs.
	end := time.Now().Add(7 * time.Second)
	for i := 0; time.Now().Before(end); i++ {
		if err := echo(long, "ping"); err != nil {
			t.Fatalf("established connection broke after rotation: %v", err)
		}
		if err := dialAndTalk(addr, client.ClientTLSConfig(idReg)); err != nil {
			t.Fatalf("new connection %d failed: %v", i, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	c, err := tls.Dial("tcp", addr, client.ClientTLSConfig(idReg))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.ConnectionState().PeerCertificates[0].SerialNumber.Cmp(firstSerial) == 0 {
		t.Fatal("server never rotated its certificate")
	}
}

// TestRecoversFromNewCARoot: the ca comes back with a different root (its
// data was lost). Renewal cannot verify it; once the SVID has expired the
// join token path trusts the rewritten bundle file and the process recovers.
func TestRecoversFromNewCARoot(t *testing.T) {
	ca := newTestCA(t, map[string]spiffeid.ID{tokReg: idReg})
	src := newSource(t, ca, idReg, tokReg, 3*time.Second, nil, nil)
	runSource(t, src)
	before, _ := src.GetX509SVID()
	ca.stop()
	ca.newRoot()
	ca.start()
	deadline := time.Now().Add(15 * time.Second)
	for {
		now, _ := src.GetX509SVID()
		if _, _, err := x509svid.Verify(now.Certificates, x509bundle.FromX509Authorities(TrustDomain, []*x509.Certificate{ca.signer.Load().cert})); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still on the old root's SVID (serial %s) after 15 s", before.Certificates[0].SerialNumber)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
