// Command shop runs one app of the demo shop the mesh carries: frontend,
// users, orders or billing, chosen with -app. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/switchyard-mesh/switchyard/services/kit/config"
	"github.com/switchyard-mesh/switchyard/services/kit/run"
	"github.com/switchyard-mesh/switchyard/services/shop/internal/app"
)

func main() {
	run.Main(func(ctx context.Context) error {
		args := os.Args[1:]
		cfg := app.DefaultConfig()
		if cmd, rest := config.Subcommand(args); cmd == "validate" {
			fs := flag.NewFlagSet("shop validate", flag.ContinueOnError)
			if err := config.Load(fs, rest, &cfg); err != nil {
				return err
			}
			fmt.Println("configuration is valid")
			return nil
		} else if cmd != "" {
			return fmt.Errorf("unknown subcommand %q (known: validate)", cmd)
		}
		if err := config.Load(flag.NewFlagSet("shop", flag.ContinueOnError), args, &cfg); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return err
		}
		return app.Run(ctx, cfg)
	})
}
