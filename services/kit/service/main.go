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
// validate is the settings' Validate method, e.g. (*app.Config).Validate
// (see package config for why it is passed rather than called through an
// interface).
func Main[C any](name string, defaults C, validate func(*C) error, runFn func(context.Context, C) error) {
	os.Exit(dispatch(name, defaults, validate, os.Args[1:], runFn))
}

func dispatch[C any](name string, cfg C, validate func(*C) error, argv []string, runFn func(context.Context, C) error) int {
	sub, args := config.Subcommand(argv)
	switch sub {
	case "", "validate":
	default:
		fmt.Fprintf(os.Stderr, "%s: unknown subcommand %q (want none or \"validate\")\n", name, sub)
		return 2
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	if err := config.Load(fs, args, &cfg, func() error { return validate(&cfg) }); err != nil {
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
