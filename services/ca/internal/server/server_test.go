package server

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	cav1 "github.com/switchyard-mesh/switchyard/proto/switchyard/ca/v1"
	"github.com/switchyard-mesh/switchyard/services/ca/internal/authority"
	"github.com/switchyard-mesh/switchyard/services/ca/internal/jointoken"
)

var (
	td     = spiffeid.RequireTrustDomainFromString("switchyard.local")
	idReg  = spiffeid.RequireFromString("spiffe://switchyard.local/system/registry")
	idCP   = spiffeid.RequireFromString("spiffe://switchyard.local/system/controlplane")
	caID   = spiffeid.RequireFromString("spiffe://switchyard.local/system/ca")
	t0     = time.Now()
	tokReg = "registry-join-token-0123456789"
	tokOne = "single-use-join-token-0123456789"
	tokOld = "expired-join-token-0123456789"
)

// fakeClock is shared by the authority and the server.
type fakeClock struct{ offset atomic.Int64 }

func (c *fakeClock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *fakeClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

type testCA struct {
	addr   string
	auth   *authority.Authority
	bundle *x509bundle.Bundle
	clock  *fakeClock
	api    *Server
	logs   *logBuffer
}

func newAuthority(t testing.TB, clock *fakeClock) *authority.Authority {
	t.Helper()
	s, _, err := authority.LoadOrCreateRoot(t.TempDir(), td, 24*time.Hour, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	a, err := authority.New(authority.Config{TrustDomain: td, DefaultTTL: time.Hour, MaxTTL: 2 * time.Hour, Now: clock.Now}, s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// startCA serves the real API over its real TLS config on loopback.
func startCA(t testing.TB) *testCA {
	t.Helper()
	clock := &fakeClock{}
	auth := newAuthority(t, clock)
	tokens, err := jointoken.NewStore([]jointoken.Token{
		{Value: tokReg, ID: idReg},
		{Value: tokOne, ID: idCP, SingleUse: true},
		{Value: tokOld, ID: idReg, Expires: t0.Add(-time.Minute)},
	}, "")
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	api, err := New(slog.New(slog.NewTextHandler(logs, nil)), auth, tokens, clock.Now, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	serving, err := NewServingSource(auth, time.Hour, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(serving.TLSConfig())))
	cav1.RegisterCAServiceServer(srv, api)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return &testCA{addr: ln.Addr().String(), auth: auth, bundle: x509bundle.FromX509Authorities(td, auth.Roots()), clock: clock, api: api, logs: logs}
}

// logBuffer collects log output from concurrent handlers.
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

// client dials the CA verifying its serving SVID; with svid set it presents
// that certificate (mTLS renewal).
func (ca *testCA) client(t testing.TB, svid *x509svid.SVID) cav1.CAServiceClient {
	t.Helper()
	var cfg *tls.Config
	if svid == nil {
		cfg = tlsconfig.TLSClientConfig(ca.bundle, tlsconfig.AuthorizeID(caID))
	} else {
		// Present the certificate as is, even if expired or foreign: the
		// server must refuse it with a clear status.
		cfg = tlsconfig.TLSClientConfig(ca.bundle, tlsconfig.AuthorizeID(caID))
		cfg.GetClientCertificate = tlsconfig.GetClientCertificate(staticSVID{svid})
	}
	conn, err := grpc.NewClient(ca.addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return cav1.NewCAServiceClient(conn)
}

type staticSVID struct{ s *x509svid.SVID }

func (s staticSVID) GetX509SVID() (*x509svid.SVID, error) { return s.s, nil }

func newCSR(t testing.TB, key crypto.Signer, ids ...string) []byte {
	t.Helper()
	var uris []*url.URL
	for _, id := range ids {
		u, _ := url.Parse(id)
		uris = append(uris, u)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: uris}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func ecKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// issue gets an SVID for idReg with the join token.
func (ca *testCA) issue(t *testing.T, ttl time.Duration) *x509svid.SVID {
	t.Helper()
	key := ecKey(t)
	resp, err := ca.client(t, nil).SignSVID(context.Background(), &cav1.SignSVIDRequest{
		Csr: newCSR(t, key, idReg.String()), JoinToken: tokReg, TtlSeconds: int64(ttl / time.Second),
	})
	if err != nil {
		t.Fatalf("SignSVID with join token: %v", err)
	}
	var raw []byte
	for _, c := range resp.CertChain {
		raw = append(raw, c...)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	svid, err := x509svid.ParseRaw(raw, keyDER)
	if err != nil {
		t.Fatalf("response is not a valid X509-SVID: %v", err)
	}
	if svid.ID != idReg || resp.SpiffeId != idReg.String() {
		t.Fatalf("issued %s", svid.ID)
	}
	if _, _, err := x509svid.Verify(svid.Certificates, ca.bundle); err != nil {
		t.Fatalf("SVID does not verify against the bundle: %v", err)
	}
	return svid
}

func TestJoinTokenThenRenewal(t *testing.T) {
	ca := startCA(t)
	first := ca.issue(t, 0)
	if got := time.Until(first.Certificates[0].NotAfter); got < 59*time.Minute || got > time.Hour {
		t.Fatalf("default TTL: expires in %s", got)
	}
	resp, err := ca.client(t, first).SignSVID(context.Background(), &cav1.SignSVIDRequest{Csr: newCSR(t, ecKey(t), idReg.String()), TtlSeconds: 10})
	if err != nil {
		t.Fatalf("renewal over mTLS: %v", err)
	}
	leaf, _ := x509.ParseCertificate(resp.CertChain[0])
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life != 10*time.Second+authority.Backdate {
		t.Fatalf("renewed lifetime %s", life)
	}
	logs := ca.logs.String()
	if !strings.Contains(logs, "svid issued") || !strings.Contains(logs, "caller=svid:"+idReg.String()) || !strings.Contains(logs, "caller=join_token:"+jointoken.Fingerprint(tokReg)) {
		t.Fatalf("audit lines missing:\n%s", logs)
	}
	if strings.Contains(logs, tokReg) {
		t.Fatal("a join token appears in the logs")
	}
	if got := testutil.ToFloat64(ca.api.issued.WithLabelValues(resultIssued)); got != 2 {
		t.Fatalf("issued counter = %v", got)
	}
	b, err := ca.client(t, nil).GetTrustBundle(context.Background(), &cav1.GetTrustBundleRequest{})
	if err != nil || b.TrustDomain != td.Name() || len(b.Roots) != 1 {
		t.Fatalf("GetTrustBundle = %v, %v", b, err)
	}
}

func TestRefusals(t *testing.T) {
	ca := startCA(t)
	good := ca.issue(t, 10*time.Second)
	otherCA := newAuthority(t, &fakeClock{})
	foreignMint, err := otherCA.Mint(idReg, good.PrivateKey.Public(), 0)
	if err != nil {
		t.Fatal(err)
	}
	foreign := &x509svid.SVID{ID: idReg, Certificates: foreignMint.Chain, PrivateKey: good.PrivateKey}
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	// The single-use token works once.
	if _, err := ca.client(t, nil).SignSVID(context.Background(), &cav1.SignSVIDRequest{Csr: newCSR(t, ecKey(t), idCP.String()), JoinToken: tokOne}); err != nil {
		t.Fatalf("single-use token first use: %v", err)
	}

	tests := []struct {
		name     string
		svid     *x509svid.SVID
		req      *cav1.SignSVIDRequest
		advance  time.Duration
		wantCode codes.Code
		wantMsg  string
	}{
		{"malformed CSR", nil, &cav1.SignSVIDRequest{Csr: []byte("junk"), JoinToken: tokReg}, 0, codes.InvalidArgument, "malformed CSR"},
		{"empty CSR", nil, &cav1.SignSVIDRequest{JoinToken: tokReg}, 0, codes.InvalidArgument, "malformed CSR"},
		{"weak RSA key", nil, &cav1.SignSVIDRequest{Csr: newCSR(t, weak, idReg.String()), JoinToken: tokReg}, 0, codes.InvalidArgument, "1024 bits"},
		{"two URI SANs", nil, &cav1.SignSVIDRequest{Csr: newCSR(t, ecKey(t), idReg.String(), idCP.String()), JoinToken: tokReg}, 0, codes.InvalidArgument, "exactly one URI SAN"},
		{"negative TTL", nil, &cav1.SignSVIDRequest{Csr: newCSR(t, ecKey(t), idReg.String()), JoinToken: tokReg, TtlSeconds: -1}, 0, codes.InvalidArgument, "ttl_seconds"},
		{"token for another ID", nil, &cav1.SignSVIDRequest{Csr: newCSR(t, ecKey(t), idCP.String()), JoinToken: tokReg}, 0, codes.PermissionDenied, "may only obtain"},
		{"unknown token", nil, &cav1.SignSVIDRequest{Csr: newCSR(t, ecKey(t), idReg.String()), JoinToken: "no-such-token-0123456789"}, 0, codes.Unauthenticated, "unknown join token"},
		{"expired token", nil, &cav1.SignSVIDRequest{Csr: newCSR(t, ecKey(t), idReg.String()), JoinToken: tokOld}, 0, codes.Unauthenticated, "join token expired"},
		{"reused single-use token", nil, &cav1.SignSVIDRequest{Csr: newCSR(t, ecKey(t), idCP.String()), JoinToken: tokOne}, 0, codes.Unauthenticated, "already used"},
		{"no token, no certificate", nil, &cav1.SignSVIDRequest{Csr: newCSR(t, ecKey(t), idReg.String())}, 0, codes.Unauthenticated, "no join token and no client certificate"},
		{"renewal for another ID", good, &cav1.SignSVIDRequest{Csr: newCSR(t, ecKey(t), idCP.String())}, 0, codes.PermissionDenied, "may only obtain"},
		{"renewal with foreign-CA SVID", foreign, &cav1.SignSVIDRequest{Csr: newCSR(t, ecKey(t), idReg.String())}, 0, codes.Unauthenticated, "not issued by this CA"},
		{"renewal with expired SVID", good, &cav1.SignSVIDRequest{Csr: newCSR(t, ecKey(t), idReg.String())}, 11 * time.Second, codes.Unauthenticated, "expired"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ca.clock.Advance(tc.advance)
			_, err := ca.client(t, tc.svid).SignSVID(context.Background(), tc.req)
			st := status.Convert(err)
			if st.Code() != tc.wantCode || !strings.Contains(st.Message(), tc.wantMsg) {
				t.Fatalf("got %s %q, want %s containing %q", st.Code(), st.Message(), tc.wantCode, tc.wantMsg)
			}
		})
	}
}
