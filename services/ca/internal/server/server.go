// Package server is the ca's gRPC API: it authenticates SignSVID callers
// (a join token for the first SVID, the caller's current SVID over mTLS for
// renewals), hands the CSR to the authority, writes one audit line per
// decision and counts it.
package server

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	cav1 "github.com/switchyard-mesh/switchyard/proto/switchyard/ca/v1"
	"github.com/switchyard-mesh/switchyard/services/ca/internal/authority"
	"github.com/switchyard-mesh/switchyard/services/ca/internal/jointoken"
)

// Results label switchyard_ca_svids_issued_total.
const (
	resultIssued           = "issued"
	resultInvalidCSR       = "invalid_csr"
	resultUnauthenticated  = "unauthenticated"
	resultPermissionDenied = "permission_denied"
	resultError            = "error"
)

// Server implements cav1.CAServiceServer.
type Server struct {
	cav1.UnimplementedCAServiceServer

	log     *slog.Logger
	auth    *authority.Authority
	tokens  *jointoken.Store
	now     func() time.Time
	issued  *prometheus.CounterVec
	latency prometheus.Histogram
}

var _ cav1.CAServiceServer = (*Server)(nil)

// New returns the API over auth and tokens, registering its metrics on reg.
func New(log *slog.Logger, auth *authority.Authority, tokens *jointoken.Store, now func() time.Time, reg prometheus.Registerer) (*Server, error) {
	s := &Server{
		log:    log.With("component", "api"),
		auth:   auth,
		tokens: tokens,
		now:    now,
		issued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_ca_svids_issued_total",
			Help: "SignSVID outcomes by result (issued, invalid_csr, unauthenticated, permission_denied, error).",
		}, []string{"result"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "switchyard_ca_svid_issuance_duration_seconds",
			Help:    "Time to authenticate, validate and sign one SVID.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1},
		}),
	}
	rootExpiry := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "switchyard_ca_signing_cert_expiry_seconds",
		Help: "Expiry (NotAfter) of the CA's signing certificate (root or intermediate), Unix seconds.",
	}, func() float64 { return float64(auth.SigningCertExpiry().Unix()) })
	for _, c := range []prometheus.Collector{s.issued, s.latency, rootExpiry} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, r := range []string{resultIssued, resultInvalidCSR, resultUnauthenticated, resultPermissionDenied, resultError} {
		s.issued.WithLabelValues(r)
	}
	return s, nil
}

// SignSVID authenticates the caller, validates the CSR and signs an SVID.
func (s *Server) SignSVID(ctx context.Context, req *cav1.SignSVIDRequest) (*cav1.SignSVIDResponse, error) {
	start := time.Now()
	defer func() { s.latency.Observe(time.Since(start).Seconds()) }()

	caller, svid, err := s.sign(ctx, req)
	if err != nil {
		st := status.Convert(err)
		s.issued.WithLabelValues(resultFor(st.Code())).Inc()
		s.log.Warn("svid refused", "caller", caller, "code", st.Code().String(), "reason", st.Message())
		return nil, err
	}
	s.issued.WithLabelValues(resultIssued).Inc()
	s.log.Info("svid issued", "caller", caller, "spiffe_id", svid.ID.String(),
		"serial", svid.Serial.Text(16), "expires", svid.NotAfter.UTC().Format(time.RFC3339))
	resp := &cav1.SignSVIDResponse{
		ExpiresAtUnix: svid.NotAfter.Unix(),
		SpiffeId:      svid.ID.String(),
	}
	for _, c := range svid.Chain {
		resp.CertChain = append(resp.CertChain, c.Raw)
	}
	for _, r := range s.auth.Roots() {
		resp.Bundle = append(resp.Bundle, r.Raw)
	}
	return resp, nil
}

// sign returns, besides the SVID, a description of the caller for the audit
// line: the token's fingerprint or the SPIFFE ID of the renewing SVID.
func (s *Server) sign(ctx context.Context, req *cav1.SignSVIDRequest) (string, authority.SVID, error) {
	caller := "unauthenticated"
	if req.GetTtlSeconds() < 0 {
		return caller, authority.SVID{}, status.Errorf(codes.InvalidArgument, "ttl_seconds must not be negative, got %d", req.GetTtlSeconds())
	}
	csr, err := authority.ParseCSR(req.GetCsr(), s.auth.TrustDomain())
	if err != nil {
		return caller, authority.SVID{}, status.Errorf(codes.InvalidArgument, "csr: %v", err)
	}
	if tok := req.GetJoinToken(); tok != "" {
		caller = "join_token:" + jointoken.Fingerprint(tok)
		_, err := s.tokens.Redeem(tok, s.now(), func(allowed spiffeid.ID) error { return authority.CheckAllowed(csr, allowed) })
		switch {
		case errors.Is(err, authority.ErrIDNotAllowed):
			return caller, authority.SVID{}, status.Errorf(codes.PermissionDenied, "%v", err)
		case err != nil:
			return caller, authority.SVID{}, status.Errorf(codes.Unauthenticated, "%v", err)
		}
	} else {
		chain := peerChain(ctx)
		if len(chain) == 0 {
			return caller, authority.SVID{}, status.Error(codes.Unauthenticated, "no join token and no client certificate: first issuance needs a join token, renewal an mTLS connection with the current SVID")
		}
		id, err := s.auth.Verify(chain)
		if err != nil {
			return "presented:" + describe(chain[0]), authority.SVID{}, status.Errorf(codes.Unauthenticated, "renewal: %v", err)
		}
		caller = "svid:" + id.String()
		if err := authority.CheckAllowed(csr, id); err != nil {
			return caller, authority.SVID{}, status.Errorf(codes.PermissionDenied, "renewal: %v", err)
		}
	}
	svid, err := s.auth.Mint(csr.ID, csr.PublicKey, time.Duration(req.GetTtlSeconds())*time.Second)
	if err != nil {
		return caller, authority.SVID{}, status.Errorf(codes.Internal, "%v", err)
	}
	return caller, svid, nil
}

// GetTrustBundle returns the roots peers should trust.
func (s *Server) GetTrustBundle(context.Context, *cav1.GetTrustBundleRequest) (*cav1.GetTrustBundleResponse, error) {
	resp := &cav1.GetTrustBundleResponse{TrustDomain: s.auth.TrustDomain().Name()}
	for _, r := range s.auth.Roots() {
		resp.Roots = append(resp.Roots, r.Raw)
	}
	return resp, nil
}

func peerChain(ctx context.Context) []*x509.Certificate {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return nil
	}
	return info.State.PeerCertificates
}

func describe(c *x509.Certificate) string {
	if len(c.URIs) > 0 {
		return c.URIs[0].String()
	}
	return c.Subject.String()
}

func resultFor(c codes.Code) string {
	switch c {
	case codes.InvalidArgument:
		return resultInvalidCSR
	case codes.Unauthenticated:
		return resultUnauthenticated
	case codes.PermissionDenied:
		return resultPermissionDenied
	}
	return resultError
}
