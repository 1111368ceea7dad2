// Package authority is the certificate authority's pure core: it holds the
// signing key, validates certificate signing requests and mints X509-SVIDs
// that follow the SPIFFE X509-SVID specification (exactly one URI SAN, not a
// CA, digitalSignature key usage). It does no network I/O; key material is
// loaded from or persisted to files by keys.go.
package authority

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Backdate is how far before "now" an SVID's NotBefore is set, so peers
// with slightly slow clocks accept a fresh SVID.
const Backdate = 10 * time.Second

// Signer is the key material an Authority signs with.
type Signer struct {
	// Cert is the signing CA certificate: the root itself, or an
	// intermediate that chains to a root in Roots.
	Cert *x509.Certificate
	// Key is Cert's private key.
	Key crypto.Signer
	// Chain holds the intermediates between Cert and the root (not
	// including Cert or the root), leaf-most first.
	Chain []*x509.Certificate
	// Roots is the trust bundle published to peers.
	Roots []*x509.Certificate
}

// Config is an Authority's configuration.
type Config struct {
	TrustDomain spiffeid.TrustDomain
	// DefaultTTL is the SVID lifetime when the caller asks for none.
	DefaultTTL time.Duration
	// MaxTTL caps the lifetime a caller may ask for.
	MaxTTL time.Duration
	// Now is the clock.
	Now func() time.Time
}

// Authority mints X509-SVIDs. It is safe for concurrent use.
type Authority struct {
	cfg    Config
	signer Signer
	// issuers is what follows the leaf in every minted chain: nothing when
	// signing with a root, else the intermediate and its own chain.
	issuers []*x509.Certificate
}

// New returns an Authority signing with s.
func New(cfg Config, s Signer) (*Authority, error) {
	if cfg.TrustDomain.IsZero() {
		return nil, errors.New("authority: trust domain is empty")
	}
	if cfg.DefaultTTL <= 0 || cfg.MaxTTL < cfg.DefaultTTL {
		return nil, fmt.Errorf("authority: need 0 < default TTL (%s) <= max TTL (%s)", cfg.DefaultTTL, cfg.MaxTTL)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if s.Cert == nil || s.Key == nil || len(s.Roots) == 0 {
		return nil, errors.New("authority: signer needs a certificate, a key and at least one root")
	}
	a := &Authority{cfg: cfg, signer: s}
	if !isSelfSigned(s.Cert) {
		a.issuers = append([]*x509.Certificate{s.Cert}, s.Chain...)
	}
	return a, nil
}

// TrustDomain is the trust domain SVIDs are minted in.
func (a *Authority) TrustDomain() spiffeid.TrustDomain { return a.cfg.TrustDomain }

// Roots returns the trust bundle.
func (a *Authority) Roots() []*x509.Certificate { return a.signer.Roots }

// SigningCertExpiry is when the signing certificate (root or intermediate)
// expires; no SVID outlives it.
func (a *Authority) SigningCertExpiry() time.Time { return a.signer.Cert.NotAfter }

// SVID is a minted X509-SVID without its private key, which stays with the
// requester.
type SVID struct {
	ID spiffeid.ID
	// Chain is leaf first, then intermediates; never the root.
	Chain    []*x509.Certificate
	Serial   *big.Int
	NotAfter time.Time
}

// Mint signs an X509-SVID for id over pub. ttl 0 means the default TTL;
// longer than the maximum is capped. The SVID never outlives the signing
// certificate.
func (a *Authority) Mint(id spiffeid.ID, pub any, ttl time.Duration) (SVID, error) {
	if !id.MemberOf(a.cfg.TrustDomain) || id.Path() == "" {
		return SVID{}, fmt.Errorf("mint %q: %w", id, ErrBadSPIFFEID)
	}
	switch {
	case ttl <= 0:
		ttl = a.cfg.DefaultTTL
	case ttl > a.cfg.MaxTTL:
		ttl = a.cfg.MaxTTL
	}
	now := a.cfg.Now()
	notBefore := now.Add(-Backdate)
	if notBefore.Before(a.signer.Cert.NotBefore) {
		notBefore = a.signer.Cert.NotBefore
	}
	notAfter := now.Add(ttl)
	if notAfter.After(a.signer.Cert.NotAfter) {
		notAfter = a.signer.Cert.NotAfter
	}
	if !notAfter.After(now) {
		return SVID{}, fmt.Errorf("mint %q: signing certificate expired at %s", id, a.signer.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	serial, err := newSerial()
	if err != nil {
		return SVID{}, fmt.Errorf("mint %q: %w", id, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"Switchyard"}},
		URIs:                  []*url.URL{id.URL()},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  false,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.signer.Cert, pub, a.signer.Key)
	if err != nil {
		return SVID{}, fmt.Errorf("mint %q: sign: %w", id, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return SVID{}, fmt.Errorf("mint %q: parse minted certificate: %w", id, err)
	}
	chain := append([]*x509.Certificate{leaf}, a.issuers...)
	return SVID{ID: id, Chain: chain, Serial: serial, NotAfter: notAfter}, nil
}

// Verify checks that chain (leaf first) is a currently valid X509-SVID issued
// under this authority's roots and returns its SPIFFE ID. It is used to
// authenticate renewals.
func (a *Authority) Verify(chain []*x509.Certificate) (spiffeid.ID, error) {
	if len(chain) == 0 {
		return spiffeid.ID{}, errors.New("no certificate presented")
	}
	leaf := chain[0]
	now := a.cfg.Now()
	if now.After(leaf.NotAfter) {
		return spiffeid.ID{}, fmt.Errorf("certificate expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	roots := x509.NewCertPool()
	for _, r := range a.signer.Roots {
		roots.AddCert(r)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return spiffeid.ID{}, fmt.Errorf("certificate not issued by this CA: %w", err)
	}
	if len(leaf.URIs) != 1 {
		return spiffeid.ID{}, fmt.Errorf("certificate has %d URI SANs, want 1", len(leaf.URIs))
	}
	id, err := spiffeid.FromURI(leaf.URIs[0])
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("certificate SPIFFE ID: %w", err)
	}
	if !id.MemberOf(a.cfg.TrustDomain) {
		return spiffeid.ID{}, fmt.Errorf("certificate SPIFFE ID %q is not in trust domain %q", id, a.cfg.TrustDomain)
	}
	return id, nil
}

func newSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	n, err := rand.Int(rand.Reader, limit)
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

func isSelfSigned(c *x509.Certificate) bool {
	return c.CheckSignatureFrom(c) == nil
}
