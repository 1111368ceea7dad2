// Command controlplane compiles the registry's catalog and config documents
// into Envoy v3 xDS resources and streams them to every proxy over ADS. See
// README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/switchyard-mesh/switchyard/services/controlplane/internal/app"
	"github.com/switchyard-mesh/switchyard/services/kit/config"
	"github.com/switchyard-mesh/switchyard/services/kit/run"
)

func main() {
	sub, args := config.Subcommand(os.Args[1:])
	cfg := app.DefaultConfig()
	switch sub {
	case "":
		if err := config.Load(flag.NewFlagSet("controlplane", flag.ExitOnError), args, &cfg); err != nil {
			fmt.Fprintln(os.Stderr, "controlplane:", err)
			os.Exit(2)
		}
		run.Main(func(ctx context.Context) error { return app.Run(ctx, cfg) })
	case "validate":
		if err := config.Load(flag.NewFlagSet("controlplane validate", flag.ExitOnError), args, &cfg); err != nil {
			fmt.Fprintln(os.Stderr, "controlplane:", err)
			os.Exit(1)
		}
		fmt.Println("configuration ok")
	default:
		fmt.Fprintf(os.Stderr, "controlplane: unknown subcommand %q (want none or \"validate\")\n", sub)
		os.Exit(2)
	}
}
