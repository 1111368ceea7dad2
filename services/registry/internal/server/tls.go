package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"

	"github.com/switchyard-mesh/switchyard/services/kit/identity"
	"github.com/switchyard-mesh/switchyard/services/kit/run"
	"github.com/switchyard-mesh/switchyard/services/registry/internal/mtls"
)

// TLSConfigs are the four mTLS roles of a node.
type TLSConfigs struct {
	// API serves RegistryService and ClusterService to any SPIFFE ID of
	// the trust domain (control plane, GeoDNS, meshctl, other nodes).
	API *tls.Config
	// RaftServer and RaftClient carry Raft; only registry peers pass.
	RaftServer, RaftClient *tls.Config
	// Peer dials other nodes' APIs (forwarding, status); the server must
	// be a registry.
	Peer *tls.Config
}

// FilesTLS builds the configs from certificate files.
func FilesTLS(c TLSConfig) (TLSConfigs, error) {
	m, err := mtls.LoadFiles(c.CertFile, c.KeyFile, c.CAFile)
	if err != nil {
		return TLSConfigs{}, err
	}
	onlyRegistry := mtls.AllowIDs(mtls.RegistryID)
	return TLSConfigs{
		API:        m.ServerConfig(mtls.AllowTrustDomain(mtls.TrustDomain)),
		RaftServer: m.ServerConfig(onlyRegistry),
		RaftClient: m.ClientConfig(onlyRegistry),
		Peer:       m.ClientConfig(onlyRegistry),
	}, nil
}

// identityTLS obtains an SVID from the ca and builds the configs on it;
// the returned task keeps the SVID renewed.
func identityTLS(ctx context.Context, c identity.Config, log *slog.Logger, reg prometheus.Registerer) (TLSConfigs, run.Task, error) {
	src, err := identity.New(ctx, c, identity.Options{Log: log, Registerer: reg})
	if err != nil {
		return TLSConfigs{}, nil, fmt.Errorf("identity: %w", err)
	}
	self := identity.SystemID("registry")
	return TLSConfigs{
		API:        src.ServerTLSConfigWith(tlsconfig.AuthorizeMemberOf(identity.TrustDomain)),
		RaftServer: src.ServerTLSConfig(self),
		RaftClient: src.ClientTLSConfig(self),
		Peer:       src.ClientTLSConfig(self),
	}, src.Run, nil
}
