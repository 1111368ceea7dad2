package identity_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/switchyard-mesh/switchyard/services/kit/identity"
)

// TestUpstreamIntermediate chains Switchyard to an existing PKI: the ca signs
// with an intermediate issued by the operator's root, the bundle carries only
// that root, and processes talk mTLS with SVIDs whose chain includes the
// intermediate.
func TestUpstreamIntermediate(t *testing.T) {
	dir := t.TempDir()
	rootKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rootTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Example Corp Root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(48 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(rootDER)
	interKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	interTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "Switchyard issuing CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true}
	interDER, err := x509.CreateCertificate(rand.Reader, interTmpl, root, interKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	interKeyDER, _ := x509.MarshalPKCS8PrivateKey(interKey)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	upstream := fmt.Sprintf("upstream:\n  cert_file: %s\n  key_file: %s\n  bundle_file: %s",
		write("inter.crt", "CERTIFICATE", interDER), write("inter.key", "PRIVATE KEY", interKeyDER), write("root.crt", "CERTIFICATE", rootDER))

	c := startCA(t, time.Hour, upstream)
	bundle, err := x509bundle.Load(identity.TrustDomain, c.bundleFile)
	if err != nil {
		t.Fatal(err)
	}
	if roots := bundle.X509Authorities(); len(roots) != 1 || !roots[0].Equal(root) {
		t.Fatalf("bundle file holds %d roots, want only the operator's root", len(roots))
	}
	server := startPeer(t, c, idRegistry, idControlplane)
	client := newSource(t, c, idControlplane, 0)
	svid, _ := client.GetX509SVID()
	if len(svid.Certificates) != 2 || svid.Certificates[1].Subject.CommonName != "Switchyard issuing CA" {
		t.Fatalf("SVID chain has %d certificates, want leaf + intermediate", len(svid.Certificates))
	}
	if _, _, err := x509svid.Verify(svid.Certificates, bundle); err != nil {
		t.Fatalf("SVID does not chain to the operator root: %v", err)
	}
	if err := check(dial(t, server.addr, client.ClientCredentials(idRegistry))); err != nil {
		t.Fatalf("mTLS through the intermediate: %v", err)
	}
}
