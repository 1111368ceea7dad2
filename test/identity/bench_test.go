package identity_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc/credentials"

	cav1 "github.com/switchyard-mesh/switchyard/proto/switchyard/ca/v1"
	"github.com/switchyard-mesh/switchyard/services/kit/grpcx"
	"github.com/switchyard-mesh/switchyard/services/kit/identity"
)

// BenchmarkSignSVID measures SVID signings per second end to end: CSRs sent
// over gRPC (one TLS connection, many concurrent calls) to the real ca
// binary, which authenticates the join token, validates the CSR, signs the
// SVID and writes its audit line.
func BenchmarkSignSVID(b *testing.B) {
	c := startCA(b, time.Hour)
	bundle, err := x509bundle.Load(identity.TrustDomain, c.bundleFile)
	if err != nil {
		b.Fatal(err)
	}
	creds := credentials.NewTLS(tlsconfig.TLSClientConfig(bundle, tlsconfig.AuthorizeID(identity.SystemID("ca"))))
	conn, err := grpcx.Dial(c.addr, creds)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	client := cav1.NewCAServiceClient(conn)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{idRegistry.URL()}}, key)
	if err != nil {
		b.Fatal(err)
	}
	req := &cav1.SignSVIDRequest{Csr: csr, JoinToken: tokenFor(idRegistry)}
	if _, err := client.SignSVID(context.Background(), req); err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := client.SignSVID(context.Background(), req); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "signings/s")
}

// BenchmarkHandshake compares a full TLS 1.3 handshake where only the server
// presents an SVID with a mutual one where both do and the server verifies
// and authorizes the client's SPIFFE ID, and with a mutual one resumed from
// a session ticket (as the sidecar's upstream pools do), which both ends
// verify again. Each iteration is one connection over loopback, done when
// the client has read a byte the server writes after its side of the
// handshake (so the server's verification of the client is included, and
// the client takes in the session ticket).
func BenchmarkHandshake(b *testing.B) {
	c := startCA(b, time.Hour)
	server := newSource(b, c, idRegistry, 0)
	client := newSource(b, c, idControlplane, 0)
	for _, tc := range []struct {
		name      string
		serverCfg *tls.Config
		clientCfg *tls.Config
		resume    bool
	}{
		{"TLS", tlsconfig.TLSServerConfig(server), tlsconfig.TLSClientConfig(client, tlsconfig.AuthorizeID(idRegistry)), false},
		{"mTLS", server.ServerTLSConfig(idControlplane), client.ClientTLSConfig(idRegistry), false},
		{"mTLS_resumed", server.ServerTLSConfig(idControlplane), client.ClientTLSConfig(idRegistry), true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			tc.serverCfg.MinVersion, tc.clientCfg.MinVersion = tls.VersionTLS13, tls.VersionTLS13
			tc.serverCfg.SessionTicketsDisabled = !tc.resume
			if tc.resume {
				tc.clientCfg.ClientSessionCache = tls.NewLRUClientSessionCache(1)
			}
			ln, err := tls.Listen("tcp", "127.0.0.1:0", tc.serverCfg)
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			go func() {
				for {
					conn, err := ln.Accept()
					if err != nil {
						return
					}
					go func() {
						defer conn.Close()
						if conn.(*tls.Conn).Handshake() == nil {
							_, _ = conn.Write([]byte{1})
						}
					}()
				}
			}()
			connect := func() bool {
				raw, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				conn := tls.Client(raw, tc.clientCfg)
				defer conn.Close()
				if _, err := conn.Read(make([]byte, 1)); err != nil {
					b.Fatal(err)
				}
				return conn.ConnectionState().DidResume
			}
			connect() // the first session, for the resumed case
			for b.Loop() {
				if connect() != tc.resume {
					b.Fatalf("%s: resumed %v", tc.name, !tc.resume)
				}
			}
		})
	}
}
