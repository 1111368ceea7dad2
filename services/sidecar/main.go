// Command sidecar is Switchyard's data-plane proxy beside each workload,
// configured only by xDS from the control plane. See README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/switchyard-mesh/switchyard/services/kit/config"
	"github.com/switchyard-mesh/switchyard/services/kit/run"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/app"
)

func main() {
	sub, args := config.Subcommand(os.Args[1:])
	cfg := app.DefaultConfig()
	switch sub {
	case "":
		if err := config.Load(flag.NewFlagSet("sidecar", flag.ExitOnError), args, &cfg); err != nil {
			fmt.Fprintln(os.Stderr, "sidecar:", err)
			os.Exit(2)
		}
		run.Main(func(ctx context.Context) error { return app.Run(ctx, cfg) })
	case "validate":
		if err := config.Load(flag.NewFlagSet("sidecar validate", flag.ExitOnError), args, &cfg); err != nil {
			fmt.Fprintln(os.Stderr, "sidecar:", err)
			os.Exit(1)
		}
		fmt.Println("configuration ok")
	default:
		fmt.Fprintf(os.Stderr, "sidecar: unknown subcommand %q (want none or \"validate\")\n", sub)
		os.Exit(2)
	}
}
