// Package identity gives a Switchyard process its SPIFFE identity: an
// X509-SVID obtained from the ca binary and kept fresh, plus the mutual-TLS
// configs and gRPC credentials built on it.
//
// The process generates its own key and sends only a CSR. The first SVID is
// authenticated by a join token (Config.JoinToken, mapped to one SPIFFE ID in
// the ca's configuration); Run then renews at about half the SVID's lifetime
// over mTLS with the current SVID, with backoff and jitter on failure. While
// the ca is down the current SVID keeps being served until it expires.
// Renewed SVIDs are picked up at the next TLS handshake; established
// connections are not disturbed.
//
// Trust in the ca on first contact comes from Config.TrustBundleFile, the
// PEM bundle the ca writes on start (in compose: a shared read-only volume).
// After the first SVID the bundle travels with every SVID the ca returns.
//
// Source implements go-spiffe's x509svid.Source and x509bundle.Source, so
// go-spiffe's tlsconfig and spiffegrpc helpers work on it directly. The
// helpers here add an explicit allowed-peer list and log every refused
// handshake with the identity the peer presented.
//
// Wiring in a binary (cfg.Identity is an identity.Config, b a service.Base):
//
//	src, err := identity.New(ctx, cfg.Identity, identity.Options{Log: b.Log, Registerer: b.Metrics})
//	if err != nil {
//		return err
//	}
//	srv := grpcx.NewServer(grpcx.ServerOptions{Binary: "registry", Registerer: b.Metrics,
//		Creds: src.ServerCredentials(identity.SystemID("controlplane"), identity.SystemID("meshctl"))})
//	conn, err := grpcx.Dial(cfg.RegistryAddr, src.ClientCredentials(identity.SystemID("registry")))
//	return b.Run(ctx, src.Run, srv.Serve(ln, drain))
//
// For plain net/http or raw TLS use ServerTLSConfig / ClientTLSConfig, and
// PeerID(ctx) gives the caller's SPIFFE ID inside a gRPC handler. Add
// b.Admin.AddReadiness("svid", src.Ready) so /readyz fails once the SVID has
// expired without renewal.
package identity
