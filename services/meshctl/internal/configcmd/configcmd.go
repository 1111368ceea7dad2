// Package configcmd is meshctl's config commands: apply, get, delete and
// diff talk to the registry (the store of config documents), status and
// proxy-config to the control plane's admin port. Documents are parsed and
// validated with kit/meshconfig before anything is sent, so a bad file
// changes nothing and the error names the field.
package configcmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	registryv1 "github.com/switchyard-mesh/switchyard/proto/switchyard/registry/v1"
	"github.com/switchyard-mesh/switchyard/services/kit/grpcx"
	"github.com/switchyard-mesh/switchyard/services/kit/identity"
)

// Command is one meshctl subcommand.
type Command struct {
	Name    string
	Summary string
	Run     func(ctx context.Context, args []string, stdout io.Writer) error
}

// Commands lists the config commands for meshctl's command table.
func Commands() []Command {
	return []Command{
		{"apply", "apply -f FILE...: validate config documents and store them in the registry", Apply},
		{"get", "get [KIND [NAME]]: show stored config documents as YAML", Get},
		{"delete", "delete KIND NAME | -f FILE: remove config documents", Delete},
		{"diff", "diff -f FILE: compare documents in FILE with what the registry stores", Diff},
		{"status", "status: connected proxies, last ACKed version per type, NACKs", Status},
		{"proxy-config", "proxy-config PROXY [-type lds|rds|cds|eds]: the config the control plane holds for a proxy", ProxyConfig},
	}
}

// conn holds the connection flags every command shares. Defaults come from
// the environment (SWITCHYARD_REGISTRY, SWITCHYARD_CONTROLPLANE,
// SWITCHYARD_CA_ADDR, SWITCHYARD_JOIN_TOKEN, SWITCHYARD_TRUST_BUNDLE,
// SWITCHYARD_SPIFFE_ID).
type conn struct {
	registry     string
	controlplane string
	id           identity.Config
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
	fs.StringVar(&c.registry, "registry", env("SWITCHYARD_REGISTRY", "127.0.0.1:7100"), "registry gRPC address")
	fs.StringVar(&c.controlplane, "controlplane", env("SWITCHYARD_CONTROLPLANE", "127.0.0.1:18001"), "control plane admin address")
	fs.StringVar(&c.id.CAAddr, "ca", env("SWITCHYARD_CA_ADDR", "127.0.0.1:8200"), "ca gRPC address (meshctl gets its own SVID)")
	fs.StringVar(&c.id.JoinToken, "join-token", env("SWITCHYARD_JOIN_TOKEN", ""), "join token for meshctl's SVID")
	fs.StringVar(&c.id.TrustBundleFile, "trust-bundle", env("SWITCHYARD_TRUST_BUNDLE", ""), "PEM trust bundle written by the ca")
	fs.StringVar(&c.id.SPIFFEID, "spiffe-id", env("SWITCHYARD_SPIFFE_ID", "spiffe://switchyard.local/system/meshctl"), "SPIFFE ID meshctl asks for")
	return fs, c
}

// registryClient dials the registry over mTLS with an SVID obtained for
// this invocation.
func (c *conn) registryClient(ctx context.Context) (registryv1.RegistryServiceClient, func(), error) {
	// Warnings only: an SVID per invocation is routine, not news.
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	src, err := identity.New(ctx, c.id, identity.Options{Log: quiet})
	if err != nil {
		return nil, nil, fmt.Errorf("get meshctl's SVID (flags -ca, -join-token, -trust-bundle): %w", err)
	}
	td := src.ID().TrustDomain()
	registryID, err := spiffeid.FromPath(td, "/system/registry")
	if err != nil {
		return nil, nil, err
	}
	cc, err := grpcx.Dial(c.registry, src.ClientCredentials(registryID))
	if err != nil {
		return nil, nil, err
	}
	return registryv1.NewRegistryServiceClient(cc), func() { _ = cc.Close() }, nil
}

// fileList collects repeated -f flags.
type fileList []string

func (f *fileList) String() string     { return strings.Join(*f, ",") }
func (f *fileList) Set(v string) error { *f = append(*f, v); return nil }

// readFiles concatenates documents from files ("-" is stdin).
func readFiles(files []string, stdin io.Reader) (string, error) {
	if len(files) == 0 {
		return "", errors.New("no documents: give -f FILE (or -f - for stdin)")
	}
	var parts []string
	for _, f := range files {
		var b []byte
		var err error
		if f == "-" {
			b, err = io.ReadAll(stdin)
		} else {
			b, err = os.ReadFile(f)
		}
		if err != nil {
			return "", fmt.Errorf("read %s: %w", f, err)
		}
		parts = append(parts, string(b))
	}
	return strings.Join(parts, "\n---\n"), nil
}
