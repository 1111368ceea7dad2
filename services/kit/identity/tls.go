package identity

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// TrustDomain is Switchyard's trust domain.
var TrustDomain = spiffeid.RequireTrustDomainFromString("switchyard.local")

// SystemID is the SPIFFE ID of a Switchyard binary:
// spiffe://switchyard.local/system/<binary>.
func SystemID(binary string) spiffeid.ID {
	return spiffeid.RequireFromSegments(TrustDomain, "system", binary)
}

// WorkloadID is the SPIFFE ID of a workload:
// spiffe://switchyard.local/ns/<namespace>/sa/<service>.
func WorkloadID(namespace, service string) spiffeid.ID {
	return spiffeid.RequireFromSegments(TrustDomain, "ns", namespace, "sa", service)
}

// ParseIDs parses a configured list of allowed peer SPIFFE IDs; field names
// the setting in the error.
func ParseIDs(field string, ids []string) ([]spiffeid.ID, error) {
	out := make([]spiffeid.ID, 0, len(ids))
	for i, s := range ids {
		id, err := spiffeid.FromString(s)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %q is not a SPIFFE ID: %w", field, i, s, err)
		}
		out = append(out, id)
	}
	return out, nil
}

// ServerTLSConfig returns a TLS config that presents the current SVID and
// requires the client to present an SVID from this trust domain whose ID is
// one of allowed. With no IDs every client is refused.
func (s *Source) ServerTLSConfig(allowed ...spiffeid.ID) *tls.Config {
	return s.ServerTLSConfigWith(tlsconfig.AuthorizeOneOf(allowed...))
}

// ServerTLSConfigWith is ServerTLSConfig with a custom authorizer, e.g.
// tlsconfig.AuthorizeMemberOf(identity.TrustDomain) for a sidecar's inbound
// port that authorizes per request.
func (s *Source) ServerTLSConfigWith(authz tlsconfig.Authorizer) *tls.Config {
	cfg := tlsconfig.MTLSServerConfig(s, s, authz)
	// Request rather than require a certificate so that a client presenting
	// none reaches the verifier below and its refusal is logged like the
	// others; the verifier still refuses it.
	cfg.ClientAuth = tls.RequestClientCert
	cfg.VerifyPeerCertificate = s.logRefusals("client", cfg.VerifyPeerCertificate) //nolint:gosec // SPIFFE verification, as go-spiffe does
	cfg.VerifyConnection = s.logResumedRefusals("client", VerifyResumed(s, authz))
	cfg.MinVersion = tls.VersionTLS13
	return cfg
}

// ClientTLSConfig returns a TLS config that presents the current SVID and
// accepts only a server whose SVID ID is one of allowed.
func (s *Source) ClientTLSConfig(allowed ...spiffeid.ID) *tls.Config {
	return s.ClientTLSConfigWith(tlsconfig.AuthorizeOneOf(allowed...))
}

// ClientTLSConfigWith is ClientTLSConfig with a custom authorizer.
func (s *Source) ClientTLSConfigWith(authz tlsconfig.Authorizer) *tls.Config {
	cfg := tlsconfig.MTLSClientConfig(s, s, authz)
	cfg.VerifyPeerCertificate = s.logRefusals("server", cfg.VerifyPeerCertificate) //nolint:gosec // SPIFFE verification, as go-spiffe does
	cfg.VerifyConnection = s.logResumedRefusals("server", VerifyResumed(s, authz))
	cfg.MinVersion = tls.VersionTLS13
	return cfg
}

// VerifyResumed is a tls.Config.VerifyConnection that verifies the peer of
// a resumed session again. Go does not call VerifyPeerCertificate (where
// the SPIFFE verification and the authorizer run) when a session is
// resumed from a ticket: the peer's chain was verified when the session
// was made. Since then the trust bundle may have changed, the certificate
// may have expired, or the authorizer may no longer accept the ID (a
// listener's accepted peers are configuration): the chain stored in the
// session is checked against the bundle of now and authorized again. Full
// handshakes pass through; VerifyPeerCertificate has checked them.
func VerifyResumed(bundles x509bundle.Source, authz tlsconfig.Authorizer) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if !cs.DidResume {
			return nil
		}
		if len(cs.PeerCertificates) == 0 {
			return errors.New("resumed session has no peer certificate")
		}
		id, chains, err := x509svid.Verify(cs.PeerCertificates, bundles)
		if err != nil {
			return fmt.Errorf("resumed session: %w", err)
		}
		if err := authz(id, chains); err != nil {
			return fmt.Errorf("resumed session: %w", err)
		}
		return nil
	}
}

// ServerCredentials are gRPC server credentials from ServerTLSConfig.
func (s *Source) ServerCredentials(allowed ...spiffeid.ID) credentials.TransportCredentials {
	return credentials.NewTLS(s.ServerTLSConfig(allowed...))
}

// ClientCredentials are gRPC client credentials from ClientTLSConfig.
func (s *Source) ClientCredentials(allowed ...spiffeid.ID) credentials.TransportCredentials {
	return credentials.NewTLS(s.ClientTLSConfig(allowed...))
}

// PeerID returns the SPIFFE ID of the peer of a gRPC call received or made
// over credentials from this package.
func PeerID(ctx context.Context) (spiffeid.ID, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return spiffeid.ID{}, false
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return spiffeid.ID{}, false
	}
	id, err := x509svid.IDFromCert(info.State.PeerCertificates[0])
	return id, err == nil
}

// logRefusals wraps a peer verifier so every refused handshake is logged
// with the identity the peer presented, and counted.
func (s *Source) logRefusals(peerRole string, verify func([][]byte, [][]*x509.Certificate) error) func([][]byte, [][]*x509.Certificate) error {
	return func(raw [][]byte, chains [][]*x509.Certificate) error {
		err := verify(raw, chains)
		if err != nil {
			s.metrics.refusals.WithLabelValues(peerRole).Inc()
			s.log.Warn("TLS handshake refused", "peer_role", peerRole, slog.Group("peer", presented(raw)...), "err", err)
		}
		return err
	}
}

// logResumedRefusals is logRefusals for a VerifyConnection check.
func (s *Source) logResumedRefusals(peerRole string, verify func(tls.ConnectionState) error) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		err := verify(cs)
		if err != nil {
			raw := make([][]byte, len(cs.PeerCertificates))
			for i, c := range cs.PeerCertificates {
				raw[i] = c.Raw
			}
			s.metrics.refusals.WithLabelValues(peerRole).Inc()
			s.log.Warn("TLS handshake refused", "peer_role", peerRole, slog.Group("peer", presented(raw)...), "err", err)
		}
		return err
	}
}

// presented describes the certificate a peer presented, for logs.
func presented(raw [][]byte) []any {
	if len(raw) == 0 {
		return []any{"certificate", "none"}
	}
	leaf, err := x509.ParseCertificate(raw[0])
	if err != nil {
		return []any{"certificate", "unparseable"}
	}
	id := "none"
	if len(leaf.URIs) > 0 {
		id = leaf.URIs[0].String()
	}
	return []any{
		"spiffe_id", id,
		"subject", leaf.Subject.String(),
		"issuer", leaf.Issuer.String(),
		"serial", leaf.SerialNumber.Text(16),
		"not_after", leaf.NotAfter.UTC().Format(time.RFC3339),
	}
}
