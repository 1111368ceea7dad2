package identity

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// switchable is an authorizer whose answer the test changes, as a
// listener's accepted peers change with its configuration.
func switchable(allow *atomic.Bool) func(spiffeid.ID, [][]*x509.Certificate) error {
	return func(id spiffeid.ID, _ [][]*x509.Certificate) error {
		if allow.Load() {
			return nil
		}
		return errors.New(id.String() + " is no longer allowed")
	}
}

// dialResumable dials with cfg, exchanges a line (which also takes in the
// server's session ticket) and reports whether the session was resumed.
func dialResumable(addr string, cfg *tls.Config) (bool, error) {
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return false, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if err := echo(c, "x"); err != nil {
		return false, err
	}
	return c.ConnectionState().DidResume, nil
}

// Go skips VerifyPeerCertificate on a resumed session; what was allowed
// when the session was made must be checked again on both sides.
func TestResumedSessionsAreVerifiedAgain(t *testing.T) {
	ca := newTestCA(t, map[string]spiffeid.ID{tokReg: idReg, tokCP: idCP})
	logs := &logBuffer{}
	reg := prometheus.NewRegistry()
	server := newSource(t, ca, idReg, tokReg, 0, logs, reg)
	var serverAllows, clientAllows atomic.Bool
	serverAllows.Store(true)
	clientAllows.Store(true)
	addr := serve(t, server.ServerTLSConfigWith(switchable(&serverAllows)))

	client := newSource(t, ca, idCP, tokCP, 0, nil, nil)
	cfg := client.ClientTLSConfigWith(switchable(&clientAllows))
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)

	if resumed, err := dialResumable(addr, cfg); err != nil || resumed {
		t.Fatalf("first connection: resumed %v, err %v; want a full handshake", resumed, err)
	}
	if resumed, err := dialResumable(addr, cfg); err != nil || !resumed {
		t.Fatalf("second connection: resumed %v, err %v; want the session resumed", resumed, err)
	}

	// The server no longer accepts the client's ID: a resumed session
	// must not let it in.
	serverAllows.Store(false)
	if resumed, err := dialResumable(addr, cfg); err == nil {
		t.Fatalf("the server accepted a resumed session of a client its authorizer refuses (resumed %v)", resumed)
	}
	if got := testutil.ToFloat64(server.metrics.refusals.WithLabelValues("client")); got < 1 {
		t.Errorf("refusals of the resumed client counted %v, want ≥ 1", got)
	}
	if out := logs.String(); !strings.Contains(out, "resumed session") || !strings.Contains(out, "peer.spiffe_id="+idCP.String()) {
		t.Errorf("the refused resumption is not logged with the client's ID:\n%s", out)
	}

	// And the client no longer accepts the server's ID: it refuses the
	// server's resumed session itself.
	serverAllows.Store(true)
	if _, err := dialResumable(addr, cfg); err != nil { // a fresh session, allowed
		t.Fatal(err)
	}
	clientAllows.Store(false)
	if resumed, err := dialResumable(addr, cfg); err == nil {
		t.Fatalf("the client accepted a resumed session with a server its authorizer refuses (resumed %v)", resumed)
	}
}
