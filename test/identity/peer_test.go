package identity_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/switchyard-mesh/switchyard/services/kit/config"
	"github.com/switchyard-mesh/switchyard/services/kit/grpcx"
	"github.com/switchyard-mesh/switchyard/services/kit/identity"
	"github.com/switchyard-mesh/switchyard/services/kit/run"
	"github.com/switchyard-mesh/switchyard/services/kit/service"
)

// peerEnv makes the test binary run as the peer process instead of tests.
const peerEnv = "IDENTITY_E2E_PEER"

// TestMain lets the test binary double as "idpeer": a minimal Switchyard
// process wired exactly as the issue tells binaries to wire kit/identity
// (SVID from the ca by join token, renewal, gRPC server with an allowed-ID
// list). The tests start it as a separate process with the harness.
func TestMain(m *testing.M) {
	if os.Getenv(peerEnv) == "1" {
		os.Exit(runPeer(os.Args[1:]))
	}
	os.Exit(m.Run())
}

type peerConfig struct {
	service.Config `yaml:",inline"`
	Identity       identity.Config `yaml:"identity"`
	GRPCAddr       string          `yaml:"grpc_addr"`
	Allow          []string        `yaml:"allow"`
}

func (c *peerConfig) Validate() error { return c.Config.Validate() }

func runPeer(args []string) int {
	cfg := peerConfig{Config: service.DefaultConfig("127.0.0.1:0")}
	if err := config.Load(flag.NewFlagSet("idpeer", flag.ContinueOnError), args, &cfg, cfg.Validate); err != nil {
		fmt.Fprintln(os.Stderr, "idpeer:", err)
		return 2
	}
	run.Main(func(ctx context.Context) error {
		b, err := service.Start(ctx, "idpeer", cfg.Config)
		if err != nil {
			return err
		}
		src, err := identity.New(ctx, cfg.Identity, identity.Options{Log: b.Log, Registerer: b.Metrics})
		if err != nil {
			return err
		}
		allowed, err := identity.ParseIDs("allow", cfg.Allow)
		if err != nil {
			return err
		}
		srv := grpcx.NewServer(grpcx.ServerOptions{Binary: "idpeer", Registerer: b.Metrics, Creds: src.ServerCredentials(allowed...)})
		ln, err := run.Listen("grpc_addr", cfg.GRPCAddr)
		if err != nil {
			return err
		}
		return b.Run(ctx, src.Run, srv.Serve(ln, time.Second))
	})
	return 0
}
