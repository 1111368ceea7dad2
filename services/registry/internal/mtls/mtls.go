// Package mtls builds the registry's mutual-TLS configurations: X.509-SVIDs
// verified against a trust bundle, with peers authorized by their SPIFFE ID
// (the URI SAN) rather than by host name, as SPIFFE prescribes.
//
// The material comes from files (certificate, key, bundle) until the mesh's
// identity package hands it over from the ca; either way the rest of the
// registry only sees *tls.Config values.
package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
)

// TrustDomain is the mesh's SPIFFE trust domain.
const TrustDomain = "switchyard.local"

// RegistryID is the SPIFFE ID every registry node holds; only it may take
// part in Raft or receive forwarded writes.
const RegistryID = "spiffe://" + TrustDomain + "/system/registry"

// Authorizer decides whether a verified peer SPIFFE ID may connect.
type Authorizer func(id string) error

// AllowIDs authorizes exactly the given SPIFFE IDs.
func AllowIDs(ids ...string) Authorizer {
	return func(id string) error {
		for _, ok := range ids {
			if id == ok {
				return nil
			}
		}
		return fmt.Errorf("peer %q is not one of %v", id, ids)
	}
}

// AllowTrustDomain authorizes any SPIFFE ID in the trust domain.
func AllowTrustDomain(td string) Authorizer {
	prefix := "spiffe://" + td + "/"
	return func(id string) error {
		if strings.HasPrefix(id, prefix) {
			return nil
		}
		return fmt.Errorf("peer %q is outside trust domain %s", id, td)
	}
}

// Material is a certificate with its key and the bundle that verifies peers.
type Material struct {
	Cert   tls.Certificate
	Bundle *x509.CertPool
}

// LoadFiles reads a PEM certificate chain, its key and a PEM trust bundle.
// The errors name the setting that pointed at the file.
func LoadFiles(certFile, keyFile, bundleFile string) (*Material, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls.cert_file/tls.key_file: %w", err)
	}
	pem, err := os.ReadFile(bundleFile)
	if err != nil {
		return nil, fmt.Errorf("tls.ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls.ca_file: %s holds no PEM certificate", bundleFile)
	}
	return &Material{Cert: cert, Bundle: pool}, nil
}

// SPIFFEID returns the single spiffe:// URI SAN of a certificate.
func SPIFFEID(cert *x509.Certificate) (string, error) {
	var ids []string
	for _, u := range cert.URIs {
		if u.Scheme == "spiffe" {
			ids = append(ids, u.String())
		}
	}
	if len(ids) != 1 {
		return "", fmt.Errorf("certificate %q has %d SPIFFE IDs, want exactly one", cert.Subject, len(ids))
	}
	return ids[0], nil
}

// verify checks the peer chain against the bundle, then authorizes its ID.
func (m *Material) verify(authorize Authorizer, usage x509.ExtKeyUsage) func([][]byte, [][]*x509.Certificate) error {
	return func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return errors.New("peer presented no certificate")
		}
		certs := make([]*x509.Certificate, len(raw))
		for i, b := range raw {
			c, err := x509.ParseCertificate(b)
			if err != nil {
				return fmt.Errorf("parse peer certificate: %w", err)
			}
			certs[i] = c
		}
		inter := x509.NewCertPool()
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
		if _, err := certs[0].Verify(x509.VerifyOptions{Roots: m.Bundle, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			return fmt.Errorf("verify peer certificate: %w", err)
		}
		id, err := SPIFFEID(certs[0])
		if err != nil {
			return err
		}
		return authorize(id)
	}
}

// ServerConfig requires and verifies client certificates, accepting the
// peers authorize allows.
func (m *Material) ServerConfig(authorize Authorizer) *tls.Config {
	return &tls.Config{
		MinVersion:            tls.VersionTLS13,
		Certificates:          []tls.Certificate{m.Cert},
		ClientAuth:            tls.RequireAnyClientCert,
		VerifyPeerCertificate: m.verify(authorize, x509.ExtKeyUsageClientAuth),
		NextProtos:            []string{"h2"},
	}
}

// ClientConfig presents the certificate and verifies the server by its
// SPIFFE ID instead of its host name.
func (m *Material) ClientConfig(authorize Authorizer) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{m.Cert},
		// Host names are not what SPIFFE verifies: VerifyPeerCertificate
		// checks the chain against the bundle and the URI SAN instead.
		InsecureSkipVerify:    true, //nolint:gosec // verified in VerifyPeerCertificate
		VerifyPeerCertificate: m.verify(authorize, x509.ExtKeyUsageServerAuth),
		NextProtos:            []string{"h2"},
	}
}
