// Package rules keeps the rate-limit rules in force up to date: it reads
// them from one or more sources, polls the sources for changes, and swaps
// in a new configuration only when all of it is valid. A bad change is
// logged and counted, and the running rules stay.
package rules

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/limits"
)

// Source is somewhere domains come from. The file source is the first;
// RateLimitPolicy documents from the registry can be another, as long as
// each source can tell cheaply whether it changed and add its domains to a
// Builder (which refuses a domain defined twice across sources).
type Source interface {
	// Name identifies the source in logs.
	Name() string
	// Fingerprint changes whenever the content may have changed.
	Fingerprint() (string, error)
	// AddTo adds the source's domains to b.
	AddTo(b *limits.Builder) error
}

// File reads domains from a YAML file or a directory of them.
type File struct{ Path string }

var _ Source = File{}

// Name implements Source.
func (f File) Name() string { return "file " + f.Path }

// Fingerprint hashes the names and contents of the files, so a rewrite
// that keeps the modification time, or a directory swapped by symlink (as
// Kubernetes ConfigMaps are), is still noticed.
func (f File) Fingerprint() (string, error) {
	files, err := limits.Files(f.Path)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			return "", fmt.Errorf("read rate limit config: %w", err)
		}
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(data))
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// AddTo implements Source. An empty file is refused rather than read as
// "no limits": it is what a reload sees in the middle of a non-atomic
// rewrite, and it would lift every limit until the next reload.
func (f File) AddTo(b *limits.Builder) error {
	files, err := limits.Files(f.Path)
	if err != nil {
		return err
	}
	for _, name := range files {
		if st, err := os.Stat(name); err == nil && st.Size() == 0 {
			return fmt.Errorf("rate limit config %s is empty (write rules files atomically: a new file renamed into place)", name)
		}
	}
	return b.AddPath(f.Path)
}

// Load reads every source into one configuration.
func Load(sources ...Source) (*limits.Config, error) {
	b := limits.NewBuilder()
	for _, s := range sources {
		if err := s.AddTo(b); err != nil {
			return nil, err
		}
	}
	return b.Config(), nil
}

// Metrics are the reloader's series.
type Metrics struct {
	reloads     *prometheus.CounterVec
	lastSuccess prometheus.Gauge
	rules       prometheus.Gauge
}

// NewMetrics registers the reloader's series on reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_ratelimit_config_reloads_total",
			Help: "Rate limit configuration loads by result (success, failure); a failure keeps the running rules.",
		}, []string{"result"}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchyard_ratelimit_config_last_reload_success_timestamp_seconds",
			Help: "When the rules in force were loaded.",
		}),
		rules: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchyard_ratelimit_config_rules",
			Help: "Configured descriptors with a limit (or unlimited) in the rules in force.",
		}),
	}
	m.reloads.WithLabelValues("success")
	m.reloads.WithLabelValues("failure")
	if reg != nil {
		reg.MustRegister(m.reloads, m.lastSuccess, m.rules)
	}
	return m
}

// Reloader polls sources and applies a new configuration when they change.
type Reloader struct {
	sources  []Source
	apply    func(*limits.Config)
	interval time.Duration
	log      *slog.Logger
	m        *Metrics
	last     string
	lastErr  string
}

// NewReloader loads the sources once, failing if they are invalid, and
// returns the configuration and a Reloader that will call apply with every
// valid change.
func NewReloader(log *slog.Logger, m *Metrics, interval time.Duration, apply func(*limits.Config), sources ...Source) (*Reloader, *limits.Config, error) {
	if m == nil {
		m = NewMetrics(nil)
	}
	r := &Reloader{sources: sources, apply: apply, interval: interval, log: log, m: m}
	fp, err := r.fingerprint()
	if err != nil {
		m.reloads.WithLabelValues("failure").Inc()
		return nil, nil, err
	}
	cfg, err := Load(sources...)
	if err != nil {
		m.reloads.WithLabelValues("failure").Inc()
		return nil, nil, err
	}
	r.last = fp
	r.loaded(cfg)
	return r, cfg, nil
}

func (r *Reloader) fingerprint() (string, error) {
	h := sha256.New()
	for _, s := range r.sources {
		fp, err := s.Fingerprint()
		if err != nil {
			return "", fmt.Errorf("%s: %w", s.Name(), err)
		}
		fmt.Fprintf(h, "%s\x00%s\x00", s.Name(), fp)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (r *Reloader) loaded(cfg *limits.Config) {
	n := 0
	cfg.Walk(func(limits.Rule) { n++ })
	r.m.reloads.WithLabelValues("success").Inc()
	r.m.lastSuccess.SetToCurrentTime()
	r.m.rules.Set(float64(n))
}

// Check looks for a change once and applies it if valid. It returns the
// error that kept the running rules, or nil.
func (r *Reloader) Check() error {
	fp, err := r.fingerprint()
	if err == nil && fp == r.last {
		return nil
	}
	var cfg *limits.Config
	if err == nil {
		cfg, err = Load(r.sources...)
	}
	if err != nil {
		// A bad change is reported once, not at every poll.
		if err.Error() != r.lastErr {
			r.m.reloads.WithLabelValues("failure").Inc()
			r.log.Error("rate limit config refused; keeping the running rules", "err", err)
			r.lastErr = err.Error()
		}
		return err
	}
	r.last, r.lastErr = fp, ""
	r.apply(cfg)
	r.loaded(cfg)
	r.log.Info("rate limit config reloaded", "domains", cfg.Domains())
	return nil
}

// Run polls until ctx ends.
func (r *Reloader) Run(ctx context.Context) error {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := r.Check(); err != nil && errors.Is(err, context.Canceled) {
				return nil
			}
		}
	}
}
