package registrycmd

import (
	"crypto/tls"
	"fmt"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// fileTLS builds an mTLS client config from an SVID and a bundle on disk,
// verifying the server by its SPIFFE ID as go-spiffe does.
func fileTLS(certFile, keyFile, bundleFile string, server spiffeid.ID) (*tls.Config, error) {
	svid, err := x509svid.Load(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("-cert/-key: %w", err)
	}
	bundle, err := x509bundle.Load(server.TrustDomain(), bundleFile)
	if err != nil {
		return nil, fmt.Errorf("-ca-file: %w", err)
	}
	cfg := tlsconfig.MTLSClientConfig(svid, bundle, tlsconfig.AuthorizeID(server))
	cfg.MinVersion = tls.VersionTLS13
	return cfg, nil
}
