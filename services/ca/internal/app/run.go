// Package app wires the ca binary: it loads or creates the signing key,
// writes the trust bundle file, and serves the CA gRPC API and the admin
// endpoints until cancelled.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/credentials"

	cav1 "github.com/switchyard-mesh/switchyard/proto/switchyard/ca/v1"
	"github.com/switchyard-mesh/switchyard/services/ca/internal/authority"
	"github.com/switchyard-mesh/switchyard/services/ca/internal/jointoken"
	"github.com/switchyard-mesh/switchyard/services/ca/internal/server"
	"github.com/switchyard-mesh/switchyard/services/kit/grpcx"
	"github.com/switchyard-mesh/switchyard/services/kit/run"
	"github.com/switchyard-mesh/switchyard/services/kit/service"
)

// servingTTL is the lifetime of the ca's own serving SVID.
const servingTTL = time.Hour

// drain is how long in-flight calls get on shutdown.
const drain = 5 * time.Second

// Run serves the ca until ctx is cancelled.
func Run(ctx context.Context, cfg Config) error {
	b, err := service.Start(ctx, "ca", cfg.Config)
	if err != nil {
		return err
	}
	auth, tokens, err := open(cfg, b.Log)
	if err != nil {
		return err
	}
	defer tokens.Close()

	api, err := server.New(b.Log, auth, tokens, time.Now, b.Metrics)
	if err != nil {
		return fmt.Errorf("ca api: %w", err)
	}
	serving, err := server.NewServingSource(auth, min(servingTTL, cfg.MaxSVIDTTL), time.Now)
	if err != nil {
		return err
	}
	b.Admin.AddReadiness("signing_cert", func(context.Context) error {
		if exp := auth.SigningCertExpiry(); time.Now().After(exp) {
			return fmt.Errorf("signing certificate expired at %s", exp.UTC().Format(time.RFC3339))
		}
		return nil
	})
	srv := grpcx.NewServer(grpcx.ServerOptions{Binary: "ca", Registerer: b.Metrics, Creds: credentials.NewTLS(serving.TLSConfig())})
	cav1.RegisterCAServiceServer(srv.Server, api)
	ln, err := run.Listen("grpc_addr", cfg.GRPCAddr)
	if err != nil {
		return err
	}
	b.Log.Info("serving CA API", "grpc_addr", ln.Addr().String(), "bundle_file", cfg.bundleFile(),
		"signing_cert_expires", auth.SigningCertExpiry().UTC().Format(time.RFC3339), "join_tokens", len(cfg.JoinTokens))
	return b.Run(ctx, srv.Serve(ln, drain))
}

// open loads the signing material (creating a root on first start), writes
// the trust bundle file and opens the join-token store.
func open(cfg Config, log *slog.Logger) (*authority.Authority, *jointoken.Store, error) {
	td := spiffeid.RequireTrustDomainFromString(cfg.TrustDomain)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("data_dir: %w", err)
	}
	var signer authority.Signer
	var err error
	if cfg.Upstream.CertFile != "" {
		signer, err = authority.LoadSigner(cfg.Upstream.CertFile, cfg.Upstream.KeyFile, cfg.Upstream.BundleFile)
		if err != nil {
			return nil, nil, fmt.Errorf("upstream: %w", err)
		}
		log.Info("signing with operator-supplied CA", "subject", signer.Cert.Subject.String(), "roots", len(signer.Roots))
	} else {
		var created bool
		signer, created, err = authority.LoadOrCreateRoot(cfg.DataDir, td, cfg.RootTTL, time.Now())
		if err != nil {
			return nil, nil, fmt.Errorf("root in data_dir %s: %w", cfg.DataDir, err)
		}
		if created {
			log.Info("created root CA", "data_dir", cfg.DataDir, "expires", signer.Cert.NotAfter.UTC().Format(time.RFC3339))
		} else {
			log.Info("loaded root CA", "data_dir", cfg.DataDir, "expires", signer.Cert.NotAfter.UTC().Format(time.RFC3339))
		}
	}
	if cfg.ExtraRootsFile != "" {
		if signer, err = signer.WithExtraRoots(cfg.ExtraRootsFile); err != nil {
			return nil, nil, fmt.Errorf("extra_roots_file: %w", err)
		}
	}
	auth, err := authority.New(authority.Config{TrustDomain: td, DefaultTTL: cfg.SVIDTTL, MaxTTL: cfg.MaxSVIDTTL, Now: time.Now}, signer)
	if err != nil {
		return nil, nil, err
	}
	if err := authority.WriteBundle(cfg.bundleFile(), auth.Roots()); err != nil {
		return nil, nil, fmt.Errorf("bundle_file: %w", err)
	}
	toks, err := cfg.tokens()
	if err != nil {
		return nil, nil, err
	}
	store, err := jointoken.NewStore(toks, filepath.Join(cfg.DataDir, "used_tokens"))
	if err != nil {
		return nil, nil, fmt.Errorf("join tokens: %w", err)
	}
	for _, t := range toks {
		log.Info("join token configured", "token", jointoken.Fingerprint(t.Value), "spiffe_id", t.ID.String(), "single_use", t.SingleUse)
	}
	return auth, store, nil
}
