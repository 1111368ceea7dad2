package authority

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// File names inside the CA's data directory.
const (
	RootCertFile = "root.crt"
	RootKeyFile  = "root.key"
)

// LoadOrCreateRoot loads the self-signed root from dir, or on first start
// creates an ECDSA P-256 root valid for ttl and persists it with 0600
// permissions. created reports whether a new root was made.
func LoadOrCreateRoot(dir string, td spiffeid.TrustDomain, ttl time.Duration, now time.Time) (s Signer, created bool, err error) {
	certPath := filepath.Join(dir, RootCertFile)
	keyPath := filepath.Join(dir, RootKeyFile)
	_, certErr := os.Stat(certPath)
	_, keyErr := os.Stat(keyPath)
	switch {
	case certErr == nil && keyErr == nil:
		s, err = LoadSigner(certPath, keyPath, "")
		return s, false, err
	case errors.Is(certErr, fs.ErrNotExist) && errors.Is(keyErr, fs.ErrNotExist):
	case certErr != nil && !errors.Is(certErr, fs.ErrNotExist):
		return Signer{}, false, fmt.Errorf("stat root certificate: %w", certErr)
	case keyErr != nil && !errors.Is(keyErr, fs.ErrNotExist):
		return Signer{}, false, fmt.Errorf("stat root key: %w", keyErr)
	default:
		return Signer{}, false, fmt.Errorf("data dir %s holds only one of %s and %s; refusing to overwrite", dir, RootCertFile, RootKeyFile)
	}

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Signer{}, false, fmt.Errorf("create data dir: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Signer{}, false, fmt.Errorf("generate root key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return Signer{}, false, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"Switchyard"}, CommonName: "Switchyard root CA " + td.Name()},
		URIs:                  []*url.URL{td.ID().URL()},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(ttl),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return Signer{}, false, fmt.Errorf("self-sign root: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return Signer{}, false, fmt.Errorf("parse root: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Signer{}, false, fmt.Errorf("marshal root key: %w", err)
	}
	// Key first: a crash between the two writes leaves a lone key, which the
	// next start refuses loudly instead of silently minting a new root.
	if err := writeFile0600(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})); err != nil {
		return Signer{}, false, err
	}
	if err := writeFile0600(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})); err != nil {
		return Signer{}, false, err
	}
	return Signer{Cert: cert, Key: key, Roots: []*x509.Certificate{cert}}, true, nil
}

// LoadSigner loads operator-supplied key material: certPath holds the
// signing CA certificate followed by any intermediates up to (not including)
// the root; keyPath its PKCS#8, EC or PKCS#1 private key; bundlePath the
// root certificates. With bundlePath empty the signing certificate must be a
// self-signed root. The signing certificate must be a CA allowed to sign
// certificates, match the key, and chain to the bundle.
func LoadSigner(certPath, keyPath, bundlePath string) (Signer, error) {
	certs, err := readCerts(certPath)
	if err != nil {
		return Signer{}, err
	}
	key, err := readKey(keyPath)
	if err != nil {
		return Signer{}, err
	}
	s := Signer{Cert: certs[0], Key: key, Chain: certs[1:]}
	if !s.Cert.IsCA || s.Cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return Signer{}, fmt.Errorf("%s: signing certificate must be a CA with keyCertSign usage", certPath)
	}
	if !publicKeysEqual(s.Cert.PublicKey, key.Public()) {
		return Signer{}, fmt.Errorf("%s does not match the key in %s", certPath, keyPath)
	}
	if bundlePath == "" {
		if !isSelfSigned(s.Cert) {
			return Signer{}, fmt.Errorf("%s: signing certificate is not self-signed; set the upstream bundle file to its root(s)", certPath)
		}
		s.Roots = []*x509.Certificate{s.Cert}
		return s, nil
	}
	if s.Roots, err = readCerts(bundlePath); err != nil {
		return Signer{}, err
	}
	roots := x509.NewCertPool()
	for _, r := range s.Roots {
		roots.AddCert(r)
	}
	inter := x509.NewCertPool()
	for _, c := range s.Chain {
		inter.AddCert(c)
	}
	if _, err := s.Cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: s.Cert.NotBefore.Add(time.Second), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return Signer{}, fmt.Errorf("%s does not chain to the roots in %s: %w", certPath, bundlePath, err)
	}
	return s, nil
}

// EncodeBundle PEM-encodes roots.
func EncodeBundle(roots []*x509.Certificate) []byte {
	var buf bytes.Buffer
	for _, r := range roots {
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: r.Raw})
	}
	return buf.Bytes()
}

// WriteBundle writes the PEM trust bundle to path atomically (0644: it is
// public), so components can bootstrap trust in the CA from it.
func WriteBundle(path string, roots []*x509.Certificate) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write trust bundle: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, EncodeBundle(roots), 0o644); err != nil {
		return fmt.Errorf("write trust bundle: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write trust bundle: %w", err)
	}
	return nil
}

func writeFile0600(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	return nil
}

func readCerts(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read certificates: %w", err)
	}
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: parse certificate: %w", path, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s: no PEM CERTIFICATE blocks", path)
	}
	return certs, nil
}

func readKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	var key any
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("%s: unsupported PEM block %q", path, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: parse key: %w", path, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: key type %T cannot sign", path, key)
	}
	return signer, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ak, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ak.Equal(b)
}

// WithExtraRoots adds the root certificates in the PEM file at path to the
// published trust bundle without signing with them: a new root is rolled out
// to every peer ahead of the switch to it.
func (s Signer) WithExtraRoots(path string) (Signer, error) {
	extra, err := readCerts(path)
	if err != nil {
		return Signer{}, err
	}
	roots := append([]*x509.Certificate(nil), s.Roots...)
	for _, c := range extra {
		if !c.IsCA {
			return Signer{}, fmt.Errorf("%s: %q is not a CA certificate", path, c.Subject)
		}
		if !slices.ContainsFunc(roots, c.Equal) {
			roots = append(roots, c)
		}
	}
	s.Roots = roots
	return s, nil
}
