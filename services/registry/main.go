// Command registry is Switchyard's Raft-replicated service catalog and
// config store. See README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/switchyard-mesh/switchyard/services/kit/config"
	"github.com/switchyard-mesh/switchyard/services/kit/run"
	"github.com/switchyard-mesh/switchyard/services/registry/internal/server"
)

func main() {
	run.Main(func(ctx context.Context) error {
		cmd, args := config.Subcommand(os.Args[1:])
		cfg := server.DefaultConfig()
		switch cmd {
		case "":
			if err := config.Load(flag.NewFlagSet("registry", flag.ContinueOnError), args, &cfg); err != nil {
				return err
			}
			return server.Run(ctx, cfg)
		case "validate":
			if err := config.Load(flag.NewFlagSet("registry validate", flag.ContinueOnError), args, &cfg); err != nil {
				return err
			}
			fmt.Println("configuration is valid")
			return nil
		default:
			return fmt.Errorf("unknown command %q (commands: validate)", cmd)
		}
	})
}
