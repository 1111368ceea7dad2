package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	cav1 "github.com/switchyard-mesh/switchyard/proto/switchyard/ca/v1"
)

// testCA is a minimal stand-in for the ca binary, which lives in another
// module: join tokens, renewal by the caller's certificate, a stop/start
// switch for outage tests. The real ca is exercised with this package in
// test/identity.
type testCA struct {
	t          *testing.T
	signer     atomic.Pointer[rootPair]
	bundleFile string
	tokens     map[string]spiffeid.ID

	mu       sync.Mutex
	addr     string
	srv      *grpc.Server
	renewals atomic.Int64
	joins    atomic.Int64
}

type rootPair struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T, tokens map[string]spiffeid.ID) *testCA {
	t.Helper()
	ca := &testCA{t: t, tokens: tokens, bundleFile: filepath.Join(t.TempDir(), "bundle.pem")}
	ca.newRoot()
	ca.start()
	t.Cleanup(ca.stop)
	return ca
}

// newRoot replaces the root, as a ca that lost its data directory would,
// and rewrites the bundle file. The serving certificate changes at the next
// start.
func (ca *testCA) newRoot() {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		ca.t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		ca.t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(der)
	ca.signer.Store(&rootPair{cert: root, key: key})
	if err := os.WriteFile(ca.bundleFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		ca.t.Fatal(err)
	}
}

func (ca *testCA) mint(id spiffeid.ID, pub any, ttl time.Duration) *x509.Certificate {
	signer := ca.signer.Load()
	now := time.Now()
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, URIs: []*url.URL{id.URL()}, NotBefore: now.Add(-10 * time.Second), NotAfter: now.Add(ttl),
		KeyUsage: x509.KeyUsageDigitalSignature, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer.cert, pub, signer.key)
	if err != nil {
		ca.t.Error(err)
		return nil
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

// start serves on the previous address if there was one, so clients
// reconnect to the "same" ca after an outage.
func (ca *testCA) start() {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	addr := ca.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		ca.t.Fatal(err)
	}
	if ca.addr == "" {
		ca.addr = ln.Addr().String()
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serving := &x509svid.SVID{ID: spiffeid.RequireFromString("spiffe://switchyard.local/system/ca"), PrivateKey: key}
	serving.Certificates = []*x509.Certificate{ca.mint(serving.ID, key.Public(), time.Hour)}
	cfg := &tls.Config{GetCertificate: tlsconfig.GetCertificate(staticSource{serving}), ClientAuth: tls.RequestClientCert, MinVersion: tls.VersionTLS13}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(cfg)))
	cav1.RegisterCAServiceServer(srv, &testCAService{ca: ca})
	ca.srv = srv
	go func() { _ = srv.Serve(ln) }()
}

func (ca *testCA) stop() {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	ca.srv.Stop()
}

type staticSource struct{ s *x509svid.SVID }

func (s staticSource) GetX509SVID() (*x509svid.SVID, error) { return s.s, nil }

type testCAService struct {
	cav1.UnimplementedCAServiceServer
	ca *testCA
}

func (s *testCAService) SignSVID(ctx context.Context, req *cav1.SignSVIDRequest) (*cav1.SignSVIDResponse, error) {
	csr, err := x509.ParseCertificateRequest(req.Csr)
	if err != nil || len(csr.URIs) != 1 {
		return nil, status.Error(codes.InvalidArgument, "bad csr")
	}
	var allowed spiffeid.ID
	if req.JoinToken != "" {
		id, ok := s.ca.tokens[req.JoinToken]
		if !ok {
			return nil, status.Error(codes.Unauthenticated, "unknown join token")
		}
		allowed = id
		s.ca.joins.Add(1)
	} else {
		chain := peerCerts(ctx)
		if len(chain) == 0 {
			return nil, status.Error(codes.Unauthenticated, "no certificate")
		}
		pool := x509.NewCertPool()
		pool.AddCert(s.ca.signer.Load().cert)
		if _, err := chain[0].Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			return nil, status.Error(codes.Unauthenticated, err.Error())
		}
		allowed, _ = x509svid.IDFromCert(chain[0])
		s.ca.renewals.Add(1)
	}
	if csr.URIs[0].String() != allowed.String() {
		return nil, status.Error(codes.PermissionDenied, "wrong id")
	}
	ttl := time.Duration(req.TtlSeconds) * time.Second
	if ttl == 0 {
		ttl = time.Hour
	}
	leaf := s.ca.mint(allowed, csr.PublicKey, ttl)
	return &cav1.SignSVIDResponse{CertChain: [][]byte{leaf.Raw}, Bundle: [][]byte{s.ca.signer.Load().cert.Raw}, ExpiresAtUnix: leaf.NotAfter.Unix(), SpiffeId: allowed.String()}, nil
}

func peerCerts(ctx context.Context) []*x509.Certificate {
	p, ok := peerFromContext(ctx)
	if !ok {
		return nil
	}
	return p
}
