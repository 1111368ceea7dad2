// Package service holds what every Switchyard binary sets up the same way
// before its own parts: the logger, the metrics registry, the admin server
// and tracing. A binary's Run starts a Base, builds its parts with the
// Base's logger and registry, and hands their tasks to Base.Run.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-mesh/switchyard/services/kit/admin"
	"github.com/switchyard-mesh/switchyard/services/kit/config"
	"github.com/switchyard-mesh/switchyard/services/kit/logging"
	"github.com/switchyard-mesh/switchyard/services/kit/run"
	"github.com/switchyard-mesh/switchyard/services/kit/telemetry"
)

// Config is the part of every binary's configuration that is the same
// everywhere. A binary's config embeds it tagged `yaml:",inline"`, so its
// settings read log.level and admin.addr at the top level.
type Config struct {
	Log   logging.Config `yaml:"log"`
	Admin admin.Config   `yaml:"admin"`
}

// DefaultConfig logs JSON at info and serves admin on adminAddr.
func DefaultConfig(adminAddr string) Config {
	return Config{Log: logging.DefaultConfig(), Admin: admin.Config{Addr: adminAddr}}
}

// Validate reports invalid log or admin settings, named log.* and admin.*.
func (c Config) Validate() error {
	return errors.Join(config.Nest("log", c.Log.Validate()), config.Nest("admin", c.Admin.Validate()))
}

// Base is a started binary's shared equipment.
type Base struct {
	Name    string
	Log     *slog.Logger
	Metrics *prometheus.Registry
	Admin   *admin.Server

	adminAddr    string
	flushTracing func(context.Context) error
}

// Start builds the logger, metrics registry, admin server and tracing for
// the binary called name.
func Start(ctx context.Context, name string, c Config) (*Base, error) {
	log := logging.New(c.Log, os.Stderr).With("binary", name)
	flush, err := telemetry.Setup(ctx, name, log)
	if err != nil {
		return nil, fmt.Errorf("set up tracing: %w", err)
	}
	reg := admin.NewRegistry()
	return &Base{
		Name: name, Log: log, Metrics: reg, Admin: admin.New(log, reg),
		adminAddr: c.Admin.Addr, flushTracing: flush,
	}, nil
}

// Run serves the admin endpoints beside tasks until ctx is cancelled or a
// task fails, then flushes buffered spans.
func (b *Base) Run(ctx context.Context, tasks ...run.Task) error {
	ln, err := run.Listen("admin.addr", b.adminAddr)
	if err != nil {
		return err
	}
	b.Log.Info("started")
	err = run.Group(ctx, append([]run.Task{b.Admin.Run(ln)}, tasks...)...)
	flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if flushErr := b.flushTracing(flushCtx); flushErr != nil {
		b.Log.Warn("flush traces on shutdown", "err", flushErr)
	}
	if err != nil {
		return err
	}
	b.Log.Info("stopped")
	return nil
}
