// Package workloadapi serves the SPIFFE Workload API (X.509 part) on a unix
// socket, so an application beside a sidecar gets its SVID and trust bundle
// with any SPIFFE library — go-spiffe's workloadapi client, SPIRE's helpers —
// without knowing Switchyard. Updates are streamed as the Source rotates.
//
// FetchX509SVID and FetchX509Bundles are implemented; the JWT methods answer
// Unimplemented. Anyone who can connect to the socket receives the SVID and
// its private key, so Serve creates the socket with mode 0600 and it belongs
// in a directory shared only by the workload and its sidecar (run both as
// the same user, or loosen the mode of that directory, not of the socket).
package workloadapi

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/switchyard-mesh/switchyard/services/kit/run"
)

// Source is what the server hands out. *identity.Source satisfies it.
type Source interface {
	x509svid.Source
	x509bundle.Source
	// Changed returns a channel closed at the next SVID or bundle update.
	Changed() <-chan struct{}
}

// securityHeader must be present on every Workload API call (SPIFFE Workload
// API spec), so a browser or proxy cannot be tricked into calling it.
const securityHeader = "workload.spiffe.io"

// Server implements the Workload API over a Source.
type Server struct {
	workload.UnimplementedSpiffeWorkloadAPIServer
	src Source
	log *slog.Logger
}

// New returns a Workload API server for src.
func New(src Source, log *slog.Logger) *Server {
	return &Server{src: src, log: log.With("component", "workloadapi")}
}

// Serve listens on the unix socket at path (replacing a stale socket file,
// mode 0600) and serves until ctx is cancelled.
func (s *Server) Serve(path string) run.Task {
	return func(ctx context.Context) error {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("workload api socket %s: remove stale: %w", path, err)
		}
		ln, err := net.Listen("unix", path)
		if err != nil {
			return fmt.Errorf("workload api socket %s: %w", path, err)
		}
		if err := os.Chmod(path, 0o600); err != nil {
			ln.Close()
			return fmt.Errorf("workload api socket %s: chmod: %w", path, err)
		}
		srv := grpc.NewServer()
		workload.RegisterSpiffeWorkloadAPIServer(srv, s)
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve(ln) }()
		s.log.Info("serving SPIFFE Workload API", "socket", path)
		select {
		case err := <-errc:
			return fmt.Errorf("workload api socket %s: %w", path, err)
		case <-ctx.Done():
			// Streams are open-ended watches: stop rather than drain.
			srv.Stop()
			return nil
		}
	}
}

// FetchX509SVID streams the workload's SVID, key and bundle, and again on
// every rotation.
func (s *Server) FetchX509SVID(_ *workload.X509SVIDRequest, stream grpc.ServerStreamingServer[workload.X509SVIDResponse]) error {
	return s.watch(stream.Context(), func() error {
		resp, err := s.x509SVIDResponse()
		if err != nil {
			return err
		}
		return stream.Send(resp)
	})
}

// FetchX509Bundles streams the trust bundle, and again on every update.
func (s *Server) FetchX509Bundles(_ *workload.X509BundlesRequest, stream grpc.ServerStreamingServer[workload.X509BundlesResponse]) error {
	return s.watch(stream.Context(), func() error {
		svid, err := s.src.GetX509SVID()
		if err != nil {
			return status.Errorf(codes.Unavailable, "no SVID yet: %v", err)
		}
		b, err := s.src.GetX509BundleForTrustDomain(svid.ID.TrustDomain())
		if err != nil {
			return status.Errorf(codes.Unavailable, "no bundle yet: %v", err)
		}
		return stream.Send(&workload.X509BundlesResponse{Bundles: map[string][]byte{svid.ID.TrustDomain().IDString(): concatDER(b.X509Authorities())}})
	})
}

// watch checks the security header, then calls send now and after each
// change of the source until the client goes away.
func (s *Server) watch(ctx context.Context, send func() error) error {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(securityHeader); len(v) != 1 || v[0] != "true" {
		return status.Errorf(codes.InvalidArgument, "security header %q missing", securityHeader)
	}
	for {
		changed := s.src.Changed()
		if err := send(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

func (s *Server) x509SVIDResponse() (*workload.X509SVIDResponse, error) {
	svid, err := s.src.GetX509SVID()
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "no SVID yet: %v", err)
	}
	b, err := s.src.GetX509BundleForTrustDomain(svid.ID.TrustDomain())
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "no bundle yet: %v", err)
	}
	key, err := x509.MarshalPKCS8PrivateKey(svid.PrivateKey)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "marshal SVID key: %v", err)
	}
	return &workload.X509SVIDResponse{Svids: []*workload.X509SVID{{
		SpiffeId:    svid.ID.String(),
		X509Svid:    concatDER(svid.Certificates),
		X509SvidKey: key,
		Bundle:      concatDER(b.X509Authorities()),
	}}}, nil
}

func concatDER(certs []*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, c.Raw...)
	}
	return out
}
