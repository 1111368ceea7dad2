// Command ratelimit answers global rate-limit questions over the Envoy Rate
// Limit Service v3 API from counters shared in Redis. See README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/switchyard-mesh/switchyard/services/kit/config"
	"github.com/switchyard-mesh/switchyard/services/kit/run"
	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/app"
	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/limits"
	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/rules"
)

func main() {
	sub, args := config.Subcommand(os.Args[1:])
	cfg := app.DefaultConfig()
	switch sub {
	case "":
		if err := config.Load(flag.NewFlagSet("ratelimit", flag.ExitOnError), args, &cfg, func() error { return cfg.Validate() }); err != nil {
			fmt.Fprintln(os.Stderr, "ratelimit:", err)
			os.Exit(2)
		}
		run.Main(func(ctx context.Context) error { return app.Run(ctx, cfg) })
	case "validate":
		if len(args) > 0 && strings.HasPrefix(strings.TrimLeft(args[0], "-"), "rules") {
			// validate -rules f.yaml: the rules alone, without settings.
			fs := flag.NewFlagSet("ratelimit validate", flag.ExitOnError)
			path := fs.String("rules", "", "rate limit rules file or directory to check")
			_ = fs.Parse(args)
			report(rules.Load(rules.File{Path: *path}))
			return
		}
		if err := config.Load(flag.NewFlagSet("ratelimit validate", flag.ExitOnError), args, &cfg, func() error { return cfg.Validate() }); err != nil {
			fmt.Fprintln(os.Stderr, "ratelimit:", err)
			os.Exit(1)
		}
		report(app.Validate(cfg))
	default:
		fmt.Fprintf(os.Stderr, "ratelimit: unknown subcommand %q (want none or \"validate\")\n", sub)
		os.Exit(2)
	}
}

// report prints the outcome of validating rules and exits non-zero on error.
func report(r *limits.Config, err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "ratelimit:", err)
		os.Exit(1)
	}
	n := 0
	r.Walk(func(limits.Rule) { n++ })
	fmt.Printf("configuration ok: %d domains, %d rules\n", len(r.Domains()), n)
}
