package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/switchyard-mesh/switchyard/services/ca/internal/authority"
)

// ServingSource is the ca's own SVID (spiffe://<td>/system/ca), minted
// in-process and re-minted once half its lifetime is gone, on the handshake
// that notices.
type ServingSource struct {
	auth *authority.Authority
	id   spiffeid.ID
	now  func() time.Time
	ttl  time.Duration

	mu   sync.Mutex
	svid *x509svid.SVID
}

var _ x509svid.Source = (*ServingSource)(nil)

// NewServingSource mints the ca's first serving SVID.
func NewServingSource(auth *authority.Authority, ttl time.Duration, now func() time.Time) (*ServingSource, error) {
	id, err := spiffeid.FromSegments(auth.TrustDomain(), "system", "ca")
	if err != nil {
		return nil, err
	}
	s := &ServingSource{auth: auth, id: id, now: now, ttl: ttl}
	if _, err := s.GetX509SVID(); err != nil {
		return nil, err
	}
	return s, nil
}

// GetX509SVID returns the serving SVID, re-minting it past half-life.
func (s *ServingSource) GetX509SVID() (*x509svid.SVID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.svid != nil {
		leaf := s.svid.Certificates[0]
		half := leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) / 2)
		if s.now().Before(half) {
			return s.svid, nil
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("serving key: %w", err)
	}
	minted, err := s.auth.Mint(s.id, key.Public(), s.ttl)
	if err != nil {
		return nil, fmt.Errorf("serving SVID: %w", err)
	}
	s.svid = &x509svid.SVID{ID: s.id, Certificates: minted.Chain, PrivateKey: key}
	return s.svid, nil
}

// TLSConfig is the ca's server TLS: it presents the serving SVID and asks
// for, but does not verify, a client certificate. SignSVID verifies it
// itself, so an expired or foreign certificate gets a clear gRPC status
// rather than a bare handshake failure, and first issuance works without one.
func (s *ServingSource) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		GetCertificate: tlsconfig.GetCertificate(s),
		ClientAuth:     tls.RequestClientCert,
	}
}
