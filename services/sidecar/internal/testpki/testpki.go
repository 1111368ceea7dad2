// Package testpki issues SPIFFE X.509-SVIDs from an in-memory CA for tests,
// and wraps them in the same TLS-config API as kit/identity.Source.
package testpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/url"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/switchyard-mesh/switchyard/services/kit/identity"
)

// TrustDomain is the tests' trust domain.
var TrustDomain = spiffeid.RequireTrustDomainFromString("switchyard.local")

// CA is an in-memory root.
type CA struct {
	cert   *x509.Certificate
	key    crypto.Signer
	Bundle *x509bundle.Bundle
	serial int64
}

// NewCA creates a root for TrustDomain.
func NewCA(t testing.TB) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test root"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		URIs: []*url.URL{TrustDomain.ID().URL()}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &CA{cert: cert, key: key, Bundle: x509bundle.FromX509Authorities(TrustDomain, []*x509.Certificate{cert}), serial: 1}
}

// Identity is one workload's SVID plus the CA bundle.
type Identity struct {
	svid   *x509svid.SVID
	bundle *x509bundle.Bundle
}

// Issue mints an SVID for spiffe://switchyard.local/<path>.
func (ca *CA) Issue(t testing.TB, path string) *Identity {
	t.Helper()
	id := spiffeid.RequireFromPath(TrustDomain, path)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca.serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(ca.serial), NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs: []*url.URL{id.URL()}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &Identity{svid: &x509svid.SVID{ID: id, Certificates: []*x509.Certificate{cert}, PrivateKey: key}, bundle: ca.Bundle}
}

// ID is the SVID's SPIFFE ID.
func (i *Identity) ID() spiffeid.ID { return i.svid.ID }

// GetX509SVID implements x509svid.Source.
func (i *Identity) GetX509SVID() (*x509svid.SVID, error) { return i.svid, nil }

// GetX509BundleForTrustDomain implements x509bundle.Source.
func (i *Identity) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	return i.bundle.GetX509BundleForTrustDomain(td)
}

// ServerTLSConfigWith mirrors kit/identity.Source.ServerTLSConfigWith.
func (i *Identity) ServerTLSConfigWith(authz tlsconfig.Authorizer) *tls.Config {
	cfg := tlsconfig.MTLSServerConfig(i, i, authz)
	cfg.VerifyConnection = identity.VerifyResumed(i, authz)
	cfg.MinVersion = tls.VersionTLS13
	return cfg
}

// ClientTLSConfigWith mirrors kit/identity.Source.ClientTLSConfigWith.
func (i *Identity) ClientTLSConfigWith(authz tlsconfig.Authorizer) *tls.Config {
	cfg := tlsconfig.MTLSClientConfig(i, i, authz)
	cfg.VerifyConnection = identity.VerifyResumed(i, authz)
	cfg.MinVersion = tls.VersionTLS13
	return cfg
}
