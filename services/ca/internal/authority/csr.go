package authority

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Sentinel errors for CSR validation. The gRPC layer maps them to status
// codes; callers branch on them with errors.Is.
var (
	// ErrMalformedCSR: the bytes are not a DER PKCS#10 CSR or its self
	// signature does not verify.
	ErrMalformedCSR = errors.New("malformed CSR")
	// ErrWeakKey: the CSR's public key is too weak or of an unsupported type.
	ErrWeakKey = errors.New("weak or unsupported key")
	// ErrCARequested: the CSR asks for a CA certificate or certificate-signing
	// key usage.
	ErrCARequested = errors.New("CSR requests a CA certificate")
	// ErrSANs: the CSR does not carry exactly one URI SAN and nothing else.
	ErrSANs = errors.New("CSR must carry exactly one URI SAN (the SPIFFE ID) and no other SANs")
	// ErrBadSPIFFEID: the URI SAN is not a valid SPIFFE ID of this trust
	// domain with a non-root path.
	ErrBadSPIFFEID = errors.New("invalid SPIFFE ID")
	// ErrIDNotAllowed: the CSR asks for a SPIFFE ID other than the one the
	// caller's credential (join token or current SVID) allows.
	ErrIDNotAllowed = errors.New("SPIFFE ID not allowed for this caller")
)

// MinRSABits is the smallest RSA modulus accepted in a CSR.
const MinRSABits = 2048

var (
	oidBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidKeyUsage         = asn1.ObjectIdentifier{2, 5, 29, 15}
)

// CSR is a validated certificate signing request.
type CSR struct {
	// ID is the SPIFFE ID carried in the CSR's only URI SAN.
	ID spiffeid.ID
	// PublicKey is the key the SVID will certify.
	PublicKey any
}

// ParseCSR validates a DER-encoded CSR for an X509-SVID in trust domain td and
// returns the SPIFFE ID it asks for. It does not decide whether the caller may
// have that ID; see CheckAllowed.
func ParseCSR(der []byte, td spiffeid.TrustDomain) (CSR, error) {
	if len(der) == 0 {
		return CSR{}, fmt.Errorf("%w: empty", ErrMalformedCSR)
	}
	req, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return CSR{}, fmt.Errorf("%w: %v", ErrMalformedCSR, err)
	}
	if err := req.CheckSignature(); err != nil {
		return CSR{}, fmt.Errorf("%w: signature: %v", ErrMalformedCSR, err)
	}
	if err := checkKey(req.PublicKey); err != nil {
		return CSR{}, err
	}
	if err := checkNoCA(req); err != nil {
		return CSR{}, err
	}
	if n := len(req.DNSNames) + len(req.EmailAddresses) + len(req.IPAddresses); n > 0 {
		return CSR{}, fmt.Errorf("%w: found %d DNS/email/IP SANs", ErrSANs, n)
	}
	if len(req.URIs) != 1 {
		return CSR{}, fmt.Errorf("%w: found %d URI SANs", ErrSANs, len(req.URIs))
	}
	id, err := spiffeid.FromURI(req.URIs[0])
	if err != nil {
		return CSR{}, fmt.Errorf("%w: %q: %v", ErrBadSPIFFEID, req.URIs[0].String(), err)
	}
	if id.Path() == "" {
		return CSR{}, fmt.Errorf("%w: %q has no path", ErrBadSPIFFEID, id)
	}
	if !id.MemberOf(td) {
		return CSR{}, fmt.Errorf("%w: %q is not in trust domain %q", ErrBadSPIFFEID, id, td)
	}
	return CSR{ID: id, PublicKey: req.PublicKey}, nil
}

// CheckAllowed refuses a CSR whose SPIFFE ID differs from the one the
// caller's credential allows.
func CheckAllowed(csr CSR, allowed spiffeid.ID) error {
	if csr.ID != allowed {
		return fmt.Errorf("%w: CSR asks for %q, caller may only obtain %q", ErrIDNotAllowed, csr.ID, allowed)
	}
	return nil
}

func checkKey(pub any) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < MinRSABits {
			return fmt.Errorf("%w: RSA key has %d bits, need at least %d", ErrWeakKey, bits, MinRSABits)
		}
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return fmt.Errorf("%w: ECDSA curve %s", ErrWeakKey, k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	default:
		return fmt.Errorf("%w: key type %T", ErrWeakKey, pub)
	}
	return nil
}

// basicConstraints mirrors the ASN.1 BasicConstraints extension (RFC 5280).
type basicConstraints struct {
	IsCA       bool `asn1:"optional"`
	MaxPathLen int  `asn1:"optional,default:-1"`
}

func checkNoCA(req *x509.CertificateRequest) error {
	for _, ext := range req.Extensions {
		switch {
		case ext.Id.Equal(oidBasicConstraints):
			var bc basicConstraints
			if _, err := asn1.Unmarshal(ext.Value, &bc); err != nil {
				return fmt.Errorf("%w: basicConstraints extension: %v", ErrMalformedCSR, err)
			}
			if bc.IsCA {
				return fmt.Errorf("%w: basicConstraints cA=true", ErrCARequested)
			}
		case ext.Id.Equal(oidKeyUsage):
			var usage asn1.BitString
			if _, err := asn1.Unmarshal(ext.Value, &usage); err != nil {
				return fmt.Errorf("%w: keyUsage extension: %v", ErrMalformedCSR, err)
			}
			// Bit 5 is keyCertSign, bit 6 cRLSign (RFC 5280 4.2.1.3).
			if usage.At(5) == 1 || usage.At(6) == 1 {
				return fmt.Errorf("%w: keyUsage asks for keyCertSign or cRLSign", ErrCARequested)
			}
		}
	}
	return nil
}
