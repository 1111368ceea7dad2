// Package identity_test checks Switchyard's zero-trust identity end to end:
// the real ca binary issues SVIDs, separate processes use kit/identity to
// talk mutual TLS, refuse peers that should be refused, rotate under load
// and ride out a ca outage.
package identity_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/switchyard-mesh/switchyard/services/kit/identity"
	"github.com/switchyard-mesh/switchyard/test/harness"
)

var (
	idRegistry     = identity.SystemID("registry")
	idControlplane = identity.SystemID("controlplane")
	idMeshctl      = identity.SystemID("meshctl")
)

func TestHandshakeAuthorization(t *testing.T) {
	c := startCA(t, time.Hour)
	other := startCA(t, time.Hour) // a second, unrelated trust root
	server := startPeer(t, c, idRegistry, idControlplane)

	// The allowed client gets through.
	good := newSource(t, c, idControlplane, 0)
	if err := check(dial(t, server.addr, good.ClientCredentials(idRegistry))); err != nil {
		t.Fatalf("allowed client refused: %v", err)
	}

	bundle, err := x509bundle.Load(identity.TrustDomain, c.bundleFile)
	if err != nil {
		t.Fatal(err)
	}
	serverOnly := tlsconfig.AuthorizeID(idRegistry)
	wrongID := newSource(t, c, idMeshctl, 0)
	foreign := newSource(t, other, idControlplane, 0)
	expiring := newSource(t, c, idControlplane, 2*time.Second)
	leaf, _ := expiring.GetX509SVID()
	time.Sleep(time.Until(leaf.Certificates[0].NotAfter) + 1100*time.Millisecond)

	refused := []struct {
		name  string
		creds credentials.TransportCredentials
		log   string // what the server logs about the presented certificate
	}{
		{"no certificate", credentials.NewTLS(tlsconfig.TLSClientConfig(bundle, serverOnly)), "peer.certificate=none"},
		{"wrong SPIFFE ID", wrongID.ClientCredentials(idRegistry), "peer.spiffe_id=" + idMeshctl.String()},
		// Trusts the server (so the handshake reaches the client
		// certificate) but presents an SVID from another CA.
		{"other CA", credentials.NewTLS(tlsconfig.MTLSClientConfig(foreign, bundle, serverOnly)), "certificate signed by unknown authority"},
		{"expired", expiring.ClientCredentials(idRegistry), "expired"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			if err := check(dial(t, server.addr, tc.creds)); err == nil {
				t.Fatal("handshake accepted")
			}
			harness.Poll(t, 5*time.Second, func() error {
				for _, line := range strings.Split(server.proc.Log(), "\n") {
					if strings.Contains(line, "TLS handshake refused") && strings.Contains(line, tc.log) {
						return nil
					}
				}
				return fmt.Errorf("no refusal logged with %q", tc.log)
			})
		})
	}
	if got := metric(t, server.admin, "switchyard_identity_handshake_refusals_total",
		`peer_role="client",spiffe_id="`+idRegistry.String()+`"`); got < float64(len(refused)) {
		t.Errorf("refusals counted %v, want >= %d", got, len(refused))
	}

	// The client side refuses a server with an unexpected ID.
	if err := check(dial(t, server.addr, good.ClientCredentials(idMeshctl))); err == nil {
		t.Fatal("client accepted a server whose ID is not allowed")
	}

	// The ca audited every issuance and never logged a token.
	caLog := c.proc.Log()
	for _, id := range []string{idRegistry.String(), idControlplane.String(), idMeshctl.String()} {
		if !strings.Contains(caLog, `msg="svid issued"`) || !strings.Contains(caLog, "spiffe_id="+id) {
			t.Errorf("ca log has no audit line for %s", id)
		}
	}
	for tok := range joinTokens {
		if strings.Contains(caLog, tok) || strings.Contains(server.proc.Log(), tok) {
			t.Errorf("join token %s… appears in a log", tok[:8])
		}
	}
}

// TestRotationUnderTraffic runs 10 s SVIDs on both sides under continuous
// traffic — a long-lived connection plus a new connection every 250 ms —
// until each side has rotated at least three times, with no failed request.
func TestRotationUnderTraffic(t *testing.T) {
	c := startCA(t, 10*time.Second)
	server := startPeer(t, c, idRegistry, idControlplane)
	client := newSource(t, c, idControlplane, 0)
	runSource(t, client)
	creds := client.ClientCredentials(idRegistry)

	var clientRotations atomic.Int64
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-client.Changed():
				clientRotations.Add(1)
			case <-stop:
				return
			}
		}
	}()

	long := dial(t, server.addr, creds)
	serverSerials := map[string]bool{}
	var requests, failures int
	deadline := time.Now().Add(40 * time.Second)
	lastNew := time.Time{}
	for len(serverSerials) < 4 || clientRotations.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("after 40 s: %d server certificates seen, %d client rotations", len(serverSerials), clientRotations.Load())
		}
		requests++
		if err := check(long); err != nil {
			failures++
			t.Errorf("request on long-lived connection: %v", err)
		}
		if time.Since(lastNew) > 250*time.Millisecond {
			lastNew = time.Now()
			fresh, err := grpcDialFresh(server.addr, creds)
			if err != nil {
				t.Fatal(err)
			}
			var p peer.Peer
			requests++
			if err := check(fresh, grpc.Peer(&p)); err != nil {
				failures++
				t.Errorf("request on new connection: %v", err)
			} else {
				serverSerials[p.AuthInfo.(credentials.TLSInfo).State.PeerCertificates[0].SerialNumber.String()] = true
			}
			fresh.Close()
		}
		time.Sleep(20 * time.Millisecond)
	}
	renewals := metric(t, server.admin, "switchyard_identity_svid_fetches_total",
		`mode="renewal",result="success",spiffe_id="`+idRegistry.String()+`"`)
	t.Logf("%d requests, %d failures; server certificates seen %d (renewals %v), client rotations %d",
		requests, failures, len(serverSerials), renewals, clientRotations.Load())
	if failures > 0 {
		t.Fatalf("%d of %d requests failed during rotation", failures, requests)
	}
	if renewals < 3 {
		t.Fatalf("server renewed %v times over mTLS, want >= 3", renewals)
	}
}

func grpcDialFresh(addr string, creds credentials.TransportCredentials) (*grpc.ClientConn, error) {
	return grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
}

// TestCAOutage kills the ca: existing SVIDs keep working while renewals fail,
// and renewal resumes once the ca is back, before anything expires.
func TestCAOutage(t *testing.T) {
	c := startCA(t, 16*time.Second)
	server := startPeer(t, c, idRegistry, idControlplane)
	client := newSource(t, c, idControlplane, 0)
	runSource(t, client)
	conn := dial(t, server.addr, client.ClientCredentials(idRegistry))
	if err := check(conn); err != nil {
		t.Fatal(err)
	}
	svidBefore, _ := client.GetX509SVID()

	c.proc.Kill()
	failuresMetric := func() float64 {
		return metric(t, server.admin, "switchyard_identity_svid_fetches_total",
			`mode="renewal",result="failure",spiffe_id="`+idRegistry.String()+`"`)
	}
	// Traffic continues, on the open connection and on new ones, while the
	// server's renewals fail.
	end := time.Now().Add(10 * time.Second)
	for time.Now().Before(end) || failuresMetric() == 0 {
		if time.Now().After(end.Add(10 * time.Second)) {
			t.Fatal("no failed renewal recorded while the ca was down")
		}
		if err := check(conn); err != nil {
			t.Fatalf("request failed during ca outage: %v", err)
		}
		fresh := dial(t, server.addr, client.ClientCredentials(idRegistry))
		if err := check(fresh); err != nil {
			t.Fatalf("new connection failed during ca outage: %v", err)
		}
		fresh.Close()
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(server.proc.Log(), "SVID renewal failed; serving the current SVID") {
		t.Fatal("server did not log the failed renewal")
	}

	c.proc.Restart(t)
	okBefore := metric(t, server.admin, "switchyard_identity_svid_fetches_total",
		`mode="renewal",result="success",spiffe_id="`+idRegistry.String()+`"`)
	harness.Poll(t, 10*time.Second, func() error {
		ok := metric(t, server.admin, "switchyard_identity_svid_fetches_total",
			`mode="renewal",result="success",spiffe_id="`+idRegistry.String()+`"`)
		if ok <= okBefore {
			return fmt.Errorf("server has not renewed since the ca came back")
		}
		now, _ := client.GetX509SVID()
		if now.Certificates[0].SerialNumber.Cmp(svidBefore.Certificates[0].SerialNumber) == 0 {
			return fmt.Errorf("client still holds its pre-outage SVID")
		}
		return nil
	})
	if err := check(conn); err != nil {
		t.Fatalf("request after recovery: %v", err)
	}
	fresh := dial(t, server.addr, client.ClientCredentials(idRegistry))
	if err := check(fresh); err != nil {
		t.Fatalf("new connection after recovery: %v", err)
	}
}
