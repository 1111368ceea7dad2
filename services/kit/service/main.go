package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/switchyard-mesh/switchyard/services/kit/config"
	"github.com/switchyard-mesh/switchyard/services/kit/run"
)

// Main is the whole main function of a binary called name:
//
//	name [flags]           load settings (defaults, -config file, SWITCHYARD_* env, flags), validate, run
//	name validate [flags]  load and validate only, for CI and config reviews
//
// A settings error exits 2 with a message naming the field; an error from
// runFn exits 1; -h lists every setting with its default.
func Main[C any, P interface {
	*C
	config.Validator
}](name string, defaults C, runFn func(context.Context, C) error) {
	os.Exit(dispatch[C, P](name, defaults, os.Args[1:], runFn))
}

func dispatch[C any, P interface {
	*C
	config.Validator
}](name string, cfg C, argv []string, runFn func(context.Context, C) error) int {
	sub, args := config.Subcommand(argv)
	switch sub {
	case "", "validate":
	default:
		fmt.Fprintf(os.Stderr, "%s: unknown subcommand %q (want none or \"validate\")\n", name, sub)
		return 2
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	if err := config.Load(fs, args, P(&cfg)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 2
	}
	if sub == "validate" {
		fmt.Println("configuration ok")
		return 0
	}
	run.Main(func(ctx context.Context) error { return runFn(ctx, cfg) })
	return 0
}
