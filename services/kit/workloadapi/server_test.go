package workloadapi

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"log/slog"
	"math/big"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	spiffewl "github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

var (
	td    = spiffeid.RequireTrustDomainFromString("switchyard.local")
	appID = spiffeid.RequireFromString("spiffe://switchyard.local/ns/shop/sa/orders")
)

// rotatingSource is an in-memory Source whose SVID the test rotates.
type rotatingSource struct {
	root    *x509.Certificate
	rootKey *ecdsa.PrivateKey

	mu      sync.Mutex
	svid    *x509svid.SVID
	changed chan struct{}
	serial  int64
}

func newRotatingSource(t *testing.T) *rotatingSource {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(der)
	s := &rotatingSource{root: root, rootKey: key, changed: make(chan struct{})}
	s.rotate(t)
	return s
}

func (s *rotatingSource) rotate(t *testing.T) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(100 + s.serial), URIs: []*url.URL{appID.URL()},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.root, key.Public(), s.rootKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	s.svid = &x509svid.SVID{ID: appID, Certificates: []*x509.Certificate{leaf}, PrivateKey: key}
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *rotatingSource) GetX509SVID() (*x509svid.SVID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.svid, nil
}

func (s *rotatingSource) GetX509BundleForTrustDomain(spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	return x509bundle.FromX509Authorities(td, []*x509.Certificate{s.root}), nil
}

func (s *rotatingSource) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func startServer(t *testing.T, src Source) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "workload.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- New(src, slog.New(slog.DiscardHandler)).Serve(path)(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return path
}

func TestGoSpiffeClientFetchesAndWatches(t *testing.T) {
	src := newRotatingSource(t)
	path := startServer(t, src)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// go-spiffe's own client is the independent consumer.
	client, err := spiffewl.New(ctx, spiffewl.WithAddr("unix://"+path))
	for err != nil && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
		client, err = spiffewl.New(ctx, spiffewl.WithAddr("unix://"+path))
	}
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var svid *x509svid.SVID
	for svid, err = client.FetchX509SVID(ctx); err != nil && ctx.Err() == nil; svid, err = client.FetchX509SVID(ctx) {
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("FetchX509SVID: %v", err)
	}
	if svid.ID != appID {
		t.Fatalf("ID %s", svid.ID)
	}
	bundles, err := client.FetchX509Bundles(ctx)
	if err != nil {
		t.Fatalf("FetchX509Bundles: %v", err)
	}
	b, err := bundles.GetX509BundleForTrustDomain(td)
	if err != nil || !b.HasX509Authority(src.root) {
		t.Fatalf("bundle: %v", err)
	}
	if _, _, err := x509svid.Verify(svid.Certificates, bundles); err != nil {
		t.Fatalf("fetched SVID does not verify against fetched bundle: %v", err)
	}

	// X509Source watches the stream: a rotation reaches it.
	xsrc, err := spiffewl.NewX509Source(ctx, spiffewl.WithClientOptions(spiffewl.WithAddr("unix://"+path)))
	if err != nil {
		t.Fatal(err)
	}
	defer xsrc.Close()
	before, _ := xsrc.GetX509SVID()
	src.rotate(t)
	deadline := time.Now().Add(5 * time.Second)
	for {
		now, _ := xsrc.GetX509SVID()
		if now.Certificates[0].SerialNumber.Cmp(before.Certificates[0].SerialNumber) != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("rotation not streamed to the workload")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSecurityHeaderRequired(t *testing.T) {
	path := startServer(t, newRotatingSource(t))
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var code codes.Code
	for {
		stream, err := workload.NewSpiffeWorkloadAPIClient(conn).FetchX509SVID(ctx, &workload.X509SVIDRequest{})
		if err == nil {
			_, err = stream.Recv()
		}
		code = status.Code(err)
		if code != codes.Unavailable || ctx.Err() != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code != codes.InvalidArgument {
		t.Fatalf("call without %s header: %s, want InvalidArgument", securityHeader, code)
	}
}
