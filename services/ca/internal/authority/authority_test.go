package authority

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

var (
	td     = spiffeid.RequireTrustDomainFromString("switchyard.local")
	idOrd  = spiffeid.RequireFromString("spiffe://switchyard.local/ns/shop/sa/orders")
	t0     = time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	p256   = mustECKey(elliptic.P256())
	rsa1k  *rsa.PrivateKey
	rsa2k  *rsa.PrivateKey
	edKey  ed25519.PrivateKey
	p224   = mustECKey(elliptic.P224())
	noSANs []*url.URL
)

func init() {
	var err error
	if rsa1k, err = rsa.GenerateKey(rand.Reader, 1024); err != nil {
		panic(err)
	}
	if rsa2k, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if _, edKey, err = ed25519.GenerateKey(rand.Reader); err != nil {
		panic(err)
	}
}

func mustECKey(c elliptic.Curve) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

func uris(ss ...string) []*url.URL {
	var out []*url.URL
	for _, s := range ss {
		u, err := url.Parse(s)
		if err != nil {
			panic(err)
		}
		out = append(out, u)
	}
	return out
}

func csr(t testing.TB, key crypto.Signer, mutate func(*x509.CertificateRequest)) []byte {
	t.Helper()
	tmpl := &x509.CertificateRequest{URIs: []*url.URL{idOrd.URL()}}
	if mutate != nil {
		mutate(tmpl)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatalf("create CSR: %v", err)
	}
	return der
}

func ext(t testing.TB, oid asn1.ObjectIdentifier, v any) pkix.Extension {
	t.Helper()
	b, err := asn1.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: oid, Value: b}
}

func TestParseCSR(t *testing.T) {
	good := csr(t, p256, nil)
	badSig := append([]byte(nil), good...)
	badSig[len(badSig)-3] ^= 0xff

	tests := []struct {
		name    string
		der     []byte
		wantErr error
	}{
		{"valid P-256", good, nil},
		{"valid RSA 2048", csr(t, rsa2k, nil), nil},
		{"valid Ed25519", csr(t, edKey, nil), nil},
		{"empty", nil, ErrMalformedCSR},
		{"garbage", []byte("not a csr"), ErrMalformedCSR},
		{"truncated", good[:len(good)/2], ErrMalformedCSR},
		{"bad signature", badSig, ErrMalformedCSR},
		{"RSA 1024", csr(t, rsa1k, nil), ErrWeakKey},
		{"P-224", csr(t, p224, nil), ErrWeakKey},
		{"no URI SAN", csr(t, p256, func(r *x509.CertificateRequest) { r.URIs = noSANs }), ErrSANs},
		{"two URI SANs", csr(t, p256, func(r *x509.CertificateRequest) {
			r.URIs = uris(idOrd.String(), "spiffe://switchyard.local/ns/shop/sa/billing")
		}), ErrSANs},
		{"extra DNS SAN", csr(t, p256, func(r *x509.CertificateRequest) { r.DNSNames = []string{"orders.local"} }), ErrSANs},
		{"extra IP SAN", csr(t, p256, func(r *x509.CertificateRequest) { r.IPAddresses = []net.IP{net.IPv4(10, 0, 0, 1)} }), ErrSANs},
		{"extra email SAN", csr(t, p256, func(r *x509.CertificateRequest) { r.EmailAddresses = []string{"a@b.c"} }), ErrSANs},
		{"not spiffe scheme", csr(t, p256, func(r *x509.CertificateRequest) { r.URIs = uris("https://switchyard.local/x") }), ErrBadSPIFFEID},
		{"wildcard", csr(t, p256, func(r *x509.CertificateRequest) { r.URIs = uris("spiffe://switchyard.local/ns/*/sa/x") }), ErrBadSPIFFEID},
		{"root path", csr(t, p256, func(r *x509.CertificateRequest) { r.URIs = uris("spiffe://switchyard.local") }), ErrBadSPIFFEID},
		{"foreign trust domain", csr(t, p256, func(r *x509.CertificateRequest) { r.URIs = uris("spiffe://evil.example/ns/a/sa/b") }), ErrBadSPIFFEID},
		{"CA requested", csr(t, p256, func(r *x509.CertificateRequest) {
			r.ExtraExtensions = []pkix.Extension{ext(t, oidBasicConstraints, basicConstraints{IsCA: true, MaxPathLen: -1})}
		}), ErrCARequested},
		{"keyCertSign requested", csr(t, p256, func(r *x509.CertificateRequest) {
			r.ExtraExtensions = []pkix.Extension{ext(t, oidKeyUsage, asn1.BitString{Bytes: []byte{0x04}, BitLength: 6})}
		}), ErrCARequested},
		{"non-CA basic constraints are fine", csr(t, p256, func(r *x509.CertificateRequest) {
			r.ExtraExtensions = []pkix.Extension{ext(t, oidBasicConstraints, basicConstraints{MaxPathLen: -1})}
		}), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseCSR(tc.der, td)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("ParseCSR error = %v, want %v", err, tc.wantErr)
			}
			if err == nil && got.ID != idOrd {
				t.Fatalf("ID = %s, want %s", got.ID, idOrd)
			}
		})
	}
}

func TestCheckAllowed(t *testing.T) {
	c, err := ParseCSR(csr(t, p256, nil), td)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckAllowed(c, idOrd); err != nil {
		t.Fatalf("own ID refused: %v", err)
	}
	other := spiffeid.RequireFromString("spiffe://switchyard.local/ns/shop/sa/billing")
	if err := CheckAllowed(c, other); !errors.Is(err, ErrIDNotAllowed) {
		t.Fatalf("foreign ID: err = %v, want ErrIDNotAllowed", err)
	}
}

// FuzzParseCSR checks that no input panics and that whatever is accepted is
// something Mint turns into a spec-valid X509-SVID.
func FuzzParseCSR(f *testing.F) {
	f.Add(csr(f, p256, nil))
	f.Add(csr(f, edKey, func(r *x509.CertificateRequest) { r.DNSNames = []string{"x"} }))
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00})
	a := newTestAuthority(f, t0)
	f.Fuzz(func(t *testing.T, der []byte) {
		c, err := ParseCSR(der, td)
		if err != nil {
			return
		}
		if _, err := a.Mint(c.ID, c.PublicKey, 0); err != nil {
			t.Fatalf("accepted CSR for %s but Mint failed: %v", c.ID, err)
		}
	})
}

func newTestAuthority(t testing.TB, now time.Time) *Authority {
	t.Helper()
	s, _, err := LoadOrCreateRoot(t.TempDir(), td, 24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{TrustDomain: td, DefaultTTL: time.Hour, MaxTTL: 2 * time.Hour, Now: func() time.Time { return now }}, s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestMintIsSpecValidSVID(t *testing.T) {
	a := newTestAuthority(t, t0)
	for _, tc := range []struct {
		name    string
		key     crypto.Signer
		ttl     time.Duration
		wantTTL time.Duration
	}{
		{"default TTL", p256, 0, time.Hour},
		{"short TTL", p256, 10 * time.Second, 10 * time.Second},
		{"capped TTL", p256, 48 * time.Hour, 2 * time.Hour},
		{"RSA key", rsa2k, 0, time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svid, err := a.Mint(idOrd, tc.key.Public(), tc.ttl)
			if err != nil {
				t.Fatal(err)
			}
			if got := svid.NotAfter.Sub(t0); got != tc.wantTTL {
				t.Fatalf("lifetime = %s, want %s", got, tc.wantTTL)
			}
			var certDER []byte
			for _, c := range svid.Chain {
				certDER = append(certDER, c.Raw...)
			}
			keyDER, err := x509.MarshalPKCS8PrivateKey(tc.key)
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := x509svid.ParseRaw(certDER, keyDER)
			if err != nil {
				t.Fatalf("go-spiffe rejects minted SVID: %v", err)
			}
			if parsed.ID != idOrd {
				t.Fatalf("ID = %s", parsed.ID)
			}
			leaf := svid.Chain[0]
			if leaf.IsCA || len(leaf.URIs) != 1 || len(leaf.DNSNames) != 0 || leaf.KeyUsage != x509.KeyUsageDigitalSignature {
				t.Fatalf("leaf not a spec SVID: isCA=%v uris=%v dns=%v ku=%v", leaf.IsCA, leaf.URIs, leaf.DNSNames, leaf.KeyUsage)
			}
			if _, _, err := x509svid.Verify(svid.Chain, bundleOf(a), x509svid.WithTime(t0)); err != nil {
				t.Fatalf("verify against bundle: %v", err)
			}
		})
	}
}

func TestMintNeverOutlivesSigner(t *testing.T) {
	a := newTestAuthority(t, t0)
	a.cfg.Now = func() time.Time { return t0.Add(23*time.Hour + 30*time.Minute) }
	svid, err := a.Mint(idOrd, p256.Public(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !svid.NotAfter.Equal(a.SigningCertExpiry()) {
		t.Fatalf("NotAfter = %s, want signer expiry %s", svid.NotAfter, a.SigningCertExpiry())
	}
	a.cfg.Now = func() time.Time { return t0.Add(25 * time.Hour) }
	if _, err := a.Mint(idOrd, p256.Public(), 0); err == nil {
		t.Fatal("minted with an expired signer")
	}
}

func TestVerify(t *testing.T) {
	a := newTestAuthority(t, t0)
	other := newTestAuthority(t, t0)
	svid, err := a.Mint(idOrd, p256.Public(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := other.Mint(idOrd, p256.Public(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := a.Verify(svid.Chain); err != nil || id != idOrd {
		t.Fatalf("Verify = %s, %v", id, err)
	}
	if _, err := a.Verify(foreign.Chain); err == nil {
		t.Fatal("accepted SVID from another CA")
	}
	if _, err := a.Verify(nil); err == nil {
		t.Fatal("accepted empty chain")
	}
	a.cfg.Now = func() time.Time { return t0.Add(11 * time.Second) }
	if _, err := a.Verify(svid.Chain); err == nil {
		t.Fatal("accepted expired SVID")
	}
}

func TestRootPersistence(t *testing.T) {
	dir := t.TempDir()
	s1, created, err := LoadOrCreateRoot(dir, td, time.Hour, t0)
	if err != nil || !created {
		t.Fatalf("first start: created=%v err=%v", created, err)
	}
	if s1.Cert.PublicKeyAlgorithm != x509.ECDSA {
		t.Fatalf("root key algorithm %s", s1.Cert.PublicKeyAlgorithm)
	}
	for _, f := range []string{RootCertFile, RootKeyFile} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Fatalf("%s mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	s2, created, err := LoadOrCreateRoot(dir, td, time.Hour, t0)
	if err != nil || created {
		t.Fatalf("restart: created=%v err=%v", created, err)
	}
	if !s1.Cert.Equal(s2.Cert) {
		t.Fatal("restart made a new root")
	}
	if err := os.Remove(filepath.Join(dir, RootCertFile)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateRoot(dir, td, time.Hour, t0); err == nil {
		t.Fatal("lone key silently replaced")
	}
}

func TestUpstreamIntermediate(t *testing.T) {
	dir := t.TempDir()
	root, _, err := LoadOrCreateRoot(dir, td, 48*time.Hour, t0)
	if err != nil {
		t.Fatal(err)
	}
	// The operator's PKI issues an intermediate for Switchyard.
	interKey := mustECKey(elliptic.P256())
	tmpl := &x509.Certificate{
		SerialNumber: newSerialT(t), Subject: pkix.Name{CommonName: "switchyard intermediate"},
		NotBefore: t0.Add(-time.Minute), NotAfter: t0.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root.Cert, interKey.Public(), root.Key)
	if err != nil {
		t.Fatal(err)
	}
	inter, _ := x509.ParseCertificate(der)
	up := t.TempDir()
	keyDER, _ := x509.MarshalPKCS8PrivateKey(interKey)
	mustWrite(t, filepath.Join(up, "inter.crt"), EncodeBundle([]*x509.Certificate{inter}))
	mustWrite(t, filepath.Join(up, "inter.key"), pemBlock("PRIVATE KEY", keyDER))
	mustWrite(t, filepath.Join(up, "bundle.crt"), EncodeBundle(root.Roots))

	if _, err := LoadSigner(filepath.Join(up, "inter.crt"), filepath.Join(up, "inter.key"), ""); err == nil {
		t.Fatal("intermediate without bundle accepted")
	}
	s, err := LoadSigner(filepath.Join(up, "inter.crt"), filepath.Join(up, "inter.key"), filepath.Join(up, "bundle.crt"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{TrustDomain: td, DefaultTTL: time.Hour, MaxTTL: time.Hour, Now: func() time.Time { return t0 }}, s)
	if err != nil {
		t.Fatal(err)
	}
	svid, err := a.Mint(idOrd, p256.Public(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(svid.Chain) != 2 || !svid.Chain[1].Equal(inter) {
		t.Fatalf("chain has %d certs, want leaf + intermediate", len(svid.Chain))
	}
	if _, _, err := x509svid.Verify(svid.Chain, bundleOf(a), x509svid.WithTime(t0)); err != nil {
		t.Fatalf("verify via intermediate: %v", err)
	}
	if _, err := a.Verify(svid.Chain); err != nil {
		t.Fatalf("authority.Verify via intermediate: %v", err)
	}
	// Wrong key for the certificate.
	otherKey, _ := x509.MarshalPKCS8PrivateKey(mustECKey(elliptic.P256()))
	mustWrite(t, filepath.Join(up, "wrong.key"), pemBlock("PRIVATE KEY", otherKey))
	if _, err := LoadSigner(filepath.Join(up, "inter.crt"), filepath.Join(up, "wrong.key"), filepath.Join(up, "bundle.crt")); err == nil {
		t.Fatal("mismatched key accepted")
	}
}

func TestWithExtraRoots(t *testing.T) {
	s, _, err := LoadOrCreateRoot(t.TempDir(), td, time.Hour, t0)
	if err != nil {
		t.Fatal(err)
	}
	next, _, err := LoadOrCreateRoot(t.TempDir(), td, time.Hour, t0)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "extra.pem")
	mustWrite(t, path, EncodeBundle([]*x509.Certificate{next.Cert, s.Cert}))
	got, err := s.WithExtraRoots(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Roots) != 2 || !got.Roots[0].Equal(s.Cert) || !got.Roots[1].Equal(next.Cert) || !got.Cert.Equal(s.Cert) {
		t.Fatalf("roots = %d, signing with %s", len(got.Roots), got.Cert.Subject)
	}
	if _, err := s.WithExtraRoots(filepath.Join(t.TempDir(), "missing.pem")); err == nil {
		t.Fatal("missing file accepted")
	}
}

func TestWriteBundleCreatesDirectory(t *testing.T) {
	s, _, err := LoadOrCreateRoot(t.TempDir(), td, time.Hour, t0)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "trust", "bundle.pem")
	if err := WriteBundle(path, s.Roots); err != nil {
		t.Fatal(err)
	}
	b, err := x509bundle.Load(td, path)
	if err != nil || !b.HasX509Authority(s.Cert) {
		t.Fatalf("bundle file: %v", err)
	}
}
