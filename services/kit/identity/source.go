package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	cav1 "github.com/switchyard-mesh/switchyard/proto/switchyard/ca/v1"
	"github.com/switchyard-mesh/switchyard/services/kit/grpcx"
)

// fetchTimeout bounds one SignSVID call, dial included.
const fetchTimeout = 10 * time.Second

// Clock is the time source renewals are scheduled on.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Options are a Source's collaborators. All are optional.
type Options struct {
	// Log receives fetch, renewal and handshake-refusal lines. Default:
	// slog.Default().
	Log *slog.Logger
	// Registerer receives switchyard_identity_* metrics. Nil: not exported.
	Registerer prometheus.Registerer
	// Clock schedules renewals. Default: the wall clock.
	Clock Clock
	// Rand returns uniform numbers in [0,1) for jitter. Default: math/rand.
	Rand func() float64
}

// Source holds this process's current X509-SVID and trust bundle, fetched
// from the ca and renewed in the background by Run. It satisfies go-spiffe's
// x509svid.Source and x509bundle.Source, so go-spiffe's tlsconfig helpers
// (and this package's) pick up a renewed SVID at the next handshake while
// established connections carry on untouched.
type Source struct {
	cfg     Config
	id      spiffeid.ID
	caID    spiffeid.ID
	log     *slog.Logger
	clock   Clock
	rand    func() float64
	metrics *metrics

	mu   sync.RWMutex
	svid *x509svid.SVID
	// received is when svid arrived. Renewal is scheduled from it rather
	// than from NotBefore, which the ca backdates for clock skew.
	received time.Time
	bundle   *x509bundle.Bundle
	changed  chan struct{}
}

var (
	_ x509svid.Source   = (*Source)(nil)
	_ x509bundle.Source = (*Source)(nil)
)

// New validates cfg and obtains the first SVID from the ca with the join
// token. While the ca is unreachable (or has not yet written the trust
// bundle file) it retries with backoff until ctx ends; a refusal (unknown
// token, wrong SPIFFE ID, …) fails at once. Call Run to keep it renewed.
func New(ctx context.Context, cfg Config, opts Options) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("identity config: %w", err)
	}
	id := spiffeid.RequireFromString(cfg.SPIFFEID)
	s := &Source{
		cfg:     cfg,
		id:      id,
		caID:    spiffeid.RequireFromSegments(id.TrustDomain(), "system", "ca"),
		log:     opts.Log,
		clock:   opts.Clock,
		rand:    opts.Rand,
		changed: make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("component", "identity", "spiffe_id", id.String())
	if s.clock == nil {
		s.clock = realClock{}
	}
	if s.rand == nil {
		s.rand = mrand.Float64
	}
	m, err := newMetrics(opts.Registerer, id)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	for attempt := 0; ; attempt++ {
		err := s.renew(ctx)
		if err == nil {
			return s, nil
		}
		if !retryable(err) {
			return nil, fmt.Errorf("first SVID for %s from %s: %w", id, cfg.CAAddr, err)
		}
		wait := retryDelay(attempt, 0, s.rand())
		s.log.Warn("first SVID not yet available; retrying", "ca_addr", cfg.CAAddr, "retry_in", wait, "err", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("first SVID for %s from %s: %w (last error: %w)", id, cfg.CAAddr, ctx.Err(), err)
		case <-s.clock.After(wait):
		}
	}
}

// Run renews the SVID at about half its lifetime until ctx ends. A failed
// renewal is retried with backoff and jitter while the current SVID keeps
// being served; once it has expired the join token is used again. Run only
// returns nil, on cancellation: a CA outage is not fatal to the process.
func (s *Source) Run(ctx context.Context) error {
	attempt := 0
	for {
		leaf, received := s.current()
		now := s.clock.Now()
		var wait time.Duration
		if attempt == 0 {
			wait = renewAt(received, leaf.NotAfter, s.rand()).Sub(now)
		} else {
			wait = retryDelay(attempt-1, leaf.NotAfter.Sub(now), s.rand())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.clock.After(wait):
		}
		if err := s.renew(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			attempt++
			s.log.Warn("SVID renewal failed; serving the current SVID", "attempt", attempt,
				"expires", leaf.NotAfter.UTC().Format(time.RFC3339), "err", err)
			continue
		}
		attempt = 0
	}
}

// Ready reports an error once the current SVID has expired (renewal has
// failed for its whole second half-life). Its signature fits
// admin.Server.AddReadiness, so /readyz turns 503 while peers would refuse
// this process's handshakes.
func (s *Source) Ready(context.Context) error {
	leaf, _ := s.current()
	if now := s.clock.Now(); !now.Before(leaf.NotAfter) {
		return fmt.Errorf("SVID for %s expired at %s and could not be renewed", s.id, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// ID is the SPIFFE ID this source holds an SVID for.
func (s *Source) ID() spiffeid.ID { return s.id }

// GetX509SVID returns the current SVID. It implements x509svid.Source.
func (s *Source) GetX509SVID() (*x509svid.SVID, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.svid == nil {
		return nil, errors.New("identity: no SVID yet")
	}
	return s.svid, nil
}

// GetX509BundleForTrustDomain returns the trust bundle of this process's
// trust domain. It implements x509bundle.Source.
func (s *Source) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if td != s.id.TrustDomain() {
		return nil, fmt.Errorf("identity: no bundle for trust domain %q (only %q)", td, s.id.TrustDomain())
	}
	if s.bundle == nil {
		return nil, errors.New("identity: no trust bundle yet")
	}
	return s.bundle, nil
}

// Changed returns a channel that is closed at the next SVID or bundle
// update. Call it again after each update for the one after.
func (s *Source) Changed() <-chan struct{} {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.changed
}

func (s *Source) current() (leaf *x509.Certificate, received time.Time) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.svid.Certificates[0], s.received
}

// renew renews over mTLS with the current SVID while it is valid, falling
// back to the join token when there is none or the ca refuses it.
func (s *Source) renew(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	s.mu.RLock()
	cur := s.svid
	s.mu.RUnlock()
	if cur != nil && s.clock.Now().Before(cur.Certificates[0].NotAfter) {
		err := s.fetch(ctx, false)
		if err == nil {
			return nil
		}
		if code := status.Code(err); code != codes.Unauthenticated && code != codes.PermissionDenied {
			return err
		}
		s.log.Warn("ca refused renewal with the current SVID; trying the join token", "err", err)
	}
	return s.fetch(ctx, true)
}

// fetch asks the ca for a new SVID over a fresh connection: server-auth TLS
// with the join token, or mTLS with the current SVID.
func (s *Source) fetch(ctx context.Context, withToken bool) (err error) {
	mode := "renewal"
	if withToken {
		mode = "join_token"
	}
	defer func() { s.metrics.fetched(mode, err) }()
	bundle, err := s.caBundle(withToken)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{s.id.URL()}}, key)
	if err != nil {
		return fmt.Errorf("create CSR: %w", err)
	}
	authz := tlsconfig.AuthorizeID(s.caID)
	req := &cav1.SignSVIDRequest{Csr: csr, TtlSeconds: int64(s.cfg.TTL / time.Second)}
	var creds credentials.TransportCredentials
	if withToken {
		req.JoinToken = s.cfg.JoinToken
		creds = credentials.NewTLS(tlsconfig.TLSClientConfig(bundle, authz))
	} else {
		creds = credentials.NewTLS(tlsconfig.MTLSClientConfig(s, bundle, authz))
	}
	conn, err := grpcx.Dial(s.cfg.CAAddr, creds)
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := cav1.NewCAServiceClient(conn).SignSVID(ctx, req)
	if err != nil {
		return fmt.Errorf("SignSVID (%s): %w", mode, err)
	}
	svid, newBundle, err := s.parseResponse(resp, key)
	if err != nil {
		return fmt.Errorf("SignSVID (%s) response: %w", mode, err)
	}
	s.mu.Lock()
	s.svid, s.bundle, s.received = svid, newBundle, s.clock.Now()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	leaf := svid.Certificates[0]
	s.metrics.expiry.Set(float64(leaf.NotAfter.Unix()))
	s.log.Info("SVID updated", "via", mode, "serial", leaf.SerialNumber.Text(16),
		"expires", leaf.NotAfter.UTC().Format(time.RFC3339))
	return nil
}

// caBundle is the bundle to verify the ca with. Renewals use the latest one
// the ca sent. Join-token requests also read the trust bundle file again and
// add its roots, so a process recovers even if the ca's root was replaced
// (say its data volume was lost) while the process was running.
func (s *Source) caBundle(withToken bool) (*x509bundle.Bundle, error) {
	s.mu.RLock()
	current := s.bundle
	s.mu.RUnlock()
	if current != nil && !withToken {
		return current, nil
	}
	fromFile, err := x509bundle.Load(s.id.TrustDomain(), s.cfg.TrustBundleFile)
	switch {
	case err != nil && current == nil:
		return nil, fmt.Errorf("trust_bundle_file: %w", err)
	case err != nil:
		s.log.Warn("trust_bundle_file unreadable; verifying the ca with the last bundle it sent", "err", err)
		return current, nil
	case current == nil:
		return fromFile, nil
	}
	merged := current.Clone()
	for _, root := range fromFile.X509Authorities() {
		merged.AddX509Authority(root)
	}
	return merged, nil
}

func (s *Source) parseResponse(resp *cav1.SignSVIDResponse, key *ecdsa.PrivateKey) (*x509svid.SVID, *x509bundle.Bundle, error) {
	if len(resp.GetCertChain()) == 0 || len(resp.GetBundle()) == 0 {
		return nil, nil, errors.New("empty certificate chain or bundle")
	}
	certs := make([]*x509.Certificate, 0, len(resp.GetCertChain()))
	for i, der := range resp.GetCertChain() {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, nil, fmt.Errorf("cert_chain[%d]: %w", i, err)
		}
		certs = append(certs, c)
	}
	roots := make([]*x509.Certificate, 0, len(resp.GetBundle()))
	for i, der := range resp.GetBundle() {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, nil, fmt.Errorf("bundle[%d]: %w", i, err)
		}
		roots = append(roots, c)
	}
	bundle := x509bundle.FromX509Authorities(s.id.TrustDomain(), roots)
	id, _, err := x509svid.Verify(certs, bundle, x509svid.WithTime(s.clock.Now()))
	if err != nil {
		return nil, nil, fmt.Errorf("SVID does not verify against the bundle: %w", err)
	}
	if id != s.id {
		return nil, nil, fmt.Errorf("SVID is for %s, asked for %s", id, s.id)
	}
	return &x509svid.SVID{ID: id, Certificates: certs, PrivateKey: key}, bundle, nil
}

// retryable reports errors worth retrying at start-up: the ca being
// unreachable or not yet having written the bundle, as opposed to a refusal.
func retryable(err error) bool {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.Unauthenticated, codes.PermissionDenied, codes.FailedPrecondition:
		return false
	}
	return true
}

type metrics struct {
	expiry   prometheus.Gauge
	fetch    *prometheus.CounterVec
	refusals *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, id spiffeid.ID) (*metrics, error) {
	expiry := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "switchyard_identity_svid_expiry_seconds",
		Help: "Expiry (NotAfter) of the current X509-SVID, Unix seconds.",
	}, []string{"spiffe_id"})
	fetch := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_identity_svid_fetches_total",
		Help: "SVID requests to the ca by mode (join_token, renewal) and result (success, failure).",
	}, []string{"spiffe_id", "mode", "result"})
	refusals := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_identity_handshake_refusals_total",
		Help: "TLS handshakes refused because the peer's certificate failed SPIFFE verification or authorization, by peer role.",
	}, []string{"spiffe_id", "peer_role"})
	if reg != nil {
		var err error
		if refusals, err = register(reg, refusals); err != nil {
			return nil, err
		}
		if expiry, err = register(reg, expiry); err != nil {
			return nil, err
		}
		if fetch, err = register(reg, fetch); err != nil {
			return nil, err
		}
	}
	m := &metrics{
		expiry:   expiry.WithLabelValues(id.String()),
		fetch:    fetch.MustCurryWith(prometheus.Labels{"spiffe_id": id.String()}),
		refusals: refusals.MustCurryWith(prometheus.Labels{"spiffe_id": id.String()}),
	}
	// Export every known series from the start, so rates and alerts see a
	// zero before the first failure rather than no series at all.
	for _, mode := range []string{"join_token", "renewal"} {
		for _, result := range []string{"success", "failure"} {
			m.fetch.WithLabelValues(mode, result)
		}
	}
	for _, role := range []string{"client", "server"} {
		m.refusals.WithLabelValues(role)
	}
	return m, nil
}

// register registers c, or returns the collector already registered under
// its name, so several Sources in one process (a sidecar's own and its
// workload's) share the metric.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, fmt.Errorf("register identity metrics: %w", err)
	}
	return c, nil
}

func (m *metrics) fetched(mode string, err error) {
	result := "success"
	if err != nil {
		result = "failure"
	}
	m.fetch.WithLabelValues(mode, result).Inc()
}
