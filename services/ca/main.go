// Command ca is Switchyard's certificate authority: it mints short-lived
// X509-SVIDs from CSRs and serves the trust bundle. See README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/switchyard-mesh/switchyard/services/ca/internal/app"
	"github.com/switchyard-mesh/switchyard/services/kit/config"
	"github.com/switchyard-mesh/switchyard/services/kit/run"
)

func main() {
	sub, args := config.Subcommand(os.Args[1:])
	cfg := app.DefaultConfig()
	switch sub {
	case "":
		if err := config.Load(flag.NewFlagSet("ca", flag.ExitOnError), args, &cfg); err != nil {
			fmt.Fprintln(os.Stderr, "ca:", err)
			os.Exit(2)
		}
		run.Main(func(ctx context.Context) error { return app.Run(ctx, cfg) })
	case "validate":
		if err := config.Load(flag.NewFlagSet("ca validate", flag.ExitOnError), args, &cfg); err != nil {
			fmt.Fprintln(os.Stderr, "ca:", err)
			os.Exit(1)
		}
		fmt.Println("configuration ok")
	default:
		fmt.Fprintf(os.Stderr, "ca: unknown subcommand %q (want none or \"validate\")\n", sub)
		os.Exit(2)
	}
}
