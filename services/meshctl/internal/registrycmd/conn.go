// Package registrycmd is meshctl's registry commands: services, instances,
// register, deregister and cluster (status, join, remove). They speak the
// registry's gRPC API over mTLS, with an SVID from the ca (join token) or
// from certificate files.
package registrycmd

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	registryv1 "github.com/switchyard-mesh/switchyard/proto/switchyard/registry/v1"
	"github.com/switchyard-mesh/switchyard/services/kit/grpcx"
	"github.com/switchyard-mesh/switchyard/services/kit/identity"
)

// conn holds the connection flags. Defaults come from the environment:
// SWITCHYARD_REGISTRY, SWITCHYARD_CA_ADDR, SWITCHYARD_JOIN_TOKEN,
// SWITCHYARD_TRUST_BUNDLE, SWITCHYARD_SPIFFE_ID, and for certificate files
// SWITCHYARD_TLS_CERT, SWITCHYARD_TLS_KEY, SWITCHYARD_TLS_CA.
type conn struct {
	registry string
	id       identity.Config
	cert     string
	key      string
	caFile   string
	output   string
}

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func newFlags(name string) (*flag.FlagSet, *conn) {
	fs := flag.NewFlagSet("meshctl "+name, flag.ContinueOnError)
	c := &conn{}
	fs.StringVar(&c.registry, "registry", env("SWITCHYARD_REGISTRY", "127.0.0.1:7100"), "registry gRPC address (any node)")
	fs.StringVar(&c.id.CAAddr, "ca", env("SWITCHYARD_CA_ADDR", "127.0.0.1:8200"), "ca gRPC address (meshctl gets its own SVID)")
	fs.StringVar(&c.id.JoinToken, "join-token", env("SWITCHYARD_JOIN_TOKEN", ""), "join token for meshctl's SVID")
	fs.StringVar(&c.id.TrustBundleFile, "trust-bundle", env("SWITCHYARD_TRUST_BUNDLE", ""), "PEM trust bundle written by the ca")
	fs.StringVar(&c.id.SPIFFEID, "spiffe-id", env("SWITCHYARD_SPIFFE_ID", "spiffe://switchyard.local/system/meshctl"), "SPIFFE ID meshctl asks for")
	fs.StringVar(&c.cert, "cert", env("SWITCHYARD_TLS_CERT", ""), "PEM SVID file (instead of -ca/-join-token)")
	fs.StringVar(&c.key, "key", env("SWITCHYARD_TLS_KEY", ""), "PEM key of -cert")
	fs.StringVar(&c.caFile, "ca-file", env("SWITCHYARD_TLS_CA", ""), "PEM trust bundle verifying the registry (with -cert)")
	fs.StringVar(&c.output, "o", "table", "output: table or json")
	return fs, c
}

// dial connects to the registry, accepting only a server holding the
// registry's SPIFFE ID.
func (c *conn) dial(ctx context.Context) (*grpc.ClientConn, error) {
	creds, err := c.credentials(ctx)
	if err != nil {
		return nil, err
	}
	return grpcx.Dial(c.registry, creds)
}

func (c *conn) credentials(ctx context.Context) (credentials.TransportCredentials, error) {
	registryID := identity.SystemID("registry")
	if c.cert != "" {
		tlsc, err := fileTLS(c.cert, c.key, c.caFile, registryID)
		if err != nil {
			return nil, err
		}
		return credentials.NewTLS(tlsc), nil
	}
	// Only problems go to stderr: stdout is the command's answer.
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	src, err := identity.New(ctx, c.id, identity.Options{Log: quiet})
	if err != nil {
		return nil, fmt.Errorf("get meshctl's SVID (flags -ca, -join-token, -trust-bundle, or -cert/-key/-ca-file): %w", err)
	}
	return src.ClientCredentials(registryID), nil
}

func (c *conn) registryClient(ctx context.Context) (registryv1.RegistryServiceClient, func(), error) {
	cc, err := c.dial(ctx)
	if err != nil {
		return nil, nil, err
	}
	return registryv1.NewRegistryServiceClient(cc), func() { _ = cc.Close() }, nil
}

func (c *conn) cluster(ctx context.Context) (registryv1.ClusterServiceClient, func(), error) {
	cc, err := c.dial(ctx)
	if err != nil {
		return nil, nil, err
	}
	return registryv1.NewClusterServiceClient(cc), func() { _ = cc.Close() }, nil
}
