// Command meshctl is Switchyard's operator CLI: the registry's catalog and
// cluster, config documents, the control plane's view, and the local dev
// runner. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/switchyard-mesh/switchyard/services/kit/config"
	"github.com/switchyard-mesh/switchyard/services/kit/run"
	"github.com/switchyard-mesh/switchyard/services/meshctl/internal/configcmd"
	"github.com/switchyard-mesh/switchyard/services/meshctl/internal/devrun"
	"github.com/switchyard-mesh/switchyard/services/meshctl/internal/registrycmd"
)

// command is one subcommand of the table below.
type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout io.Writer) error
}

// commands is every meshctl subcommand, in the order help lists them.
// Adding a command is one line here.
func commands() []command {
	var out []command
	for _, c := range registrycmd.Commands() {
		out = append(out, command{c.Name, c.Summary, c.Run})
	}
	for _, c := range configcmd.Commands() {
		out = append(out, command{c.Name, c.Summary, c.Run})
	}
	out = append(out, command{"dev", "dev -f deploy/dev/mesh.yaml -bin ./bin: run the local mesh as processes", dev})
	return out
}

func main() {
	run.Main(func(ctx context.Context) error {
		return dispatch(ctx, os.Args[1:], os.Stdout)
	})
}

func dispatch(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(ctx, args[1:], stdout)
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return err
		}
	}
	usage(os.Stderr)
	return fmt.Errorf("unknown command %q", args[0])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: meshctl COMMAND [flags]   (meshctl COMMAND -h for its flags)")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-13s %s\n", c.name, c.summary)
	}
}

// dev runs the processes of a devrun plan until Ctrl-C.
func dev(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("meshctl dev", flag.ContinueOnError)
	file := fs.String("f", "deploy/dev/mesh.yaml", "plan of processes to run")
	bin := fs.String("bin", "./bin", "directory holding the binaries")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var plan devrun.Plan
	if err := config.LoadFile(*file, &plan, plan.Validate); err != nil {
		return err
	}
	r := &devrun.Runner{Plan: &plan, BinDir: *bin, Out: stdout, ReadyTimeout: time.Minute, StopTimeout: 10 * time.Second}
	return r.Run(ctx)
}
