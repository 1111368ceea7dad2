// Package logging builds the log/slog logger every binary uses, from a small
// config: level and format (JSON in containers, text for a terminal).
package logging

import (
	"io"
	"log/slog"
	"strings"

	"github.com/switchyard-mesh/switchyard/services/kit/config"
)

// Attribute keys used across binaries, so logs can be searched by one name.
const (
	KeyComponent = "component"
	KeyError     = "err"
	KeyPeer      = "peer"
	KeyRoute     = "route"
	KeyService   = "service"
)

// Config chooses how a binary logs.
type Config struct {
	Level  string `yaml:"level" help:"minimum level: debug, info, warn or error"`
	Format string `yaml:"format" help:"json or text"`
}

// DefaultConfig logs at info as JSON.
func DefaultConfig() Config { return Config{Level: "info", Format: "json"} }

// Validate reports an unknown level or format.
func (c Config) Validate() error {
	if _, ok := parseLevel(c.Level); !ok {
		return config.Errorf("level", "want debug, info, warn or error, got %q", c.Level)
	}
	if c.Format != "json" && c.Format != "text" {
		return config.Errorf("format", "want json or text, got %q", c.Format)
	}
	return nil
}

// New returns a logger writing to w as the config says.
func New(c Config, w io.Writer) *slog.Logger {
	level, _ := parseLevel(c.Level)
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func parseLevel(s string) (slog.Level, bool) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, true
	case "info", "":
		return slog.LevelInfo, true
	case "warn", "warning":
		return slog.LevelWarn, true
	case "error":
		return slog.LevelError, true
	}
	return 0, false
}
