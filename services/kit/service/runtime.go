package service

import (
	"errors"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"

	"github.com/switchyard-mesh/switchyard/services/kit/config"
)

// RuntimeConfig sets the Go runtime's cores and garbage collector
// (GOMAXPROCS, GOGC and GOMEMLIMIT) as settings: proxies and the rate
// limiter share a few cores with their peers, and their live heap is small
// and steady, so the garbage per request, not the live heap, sets how
// often they collect. The environment variables win when set. A binary's
// config embeds it tagged `yaml:",inline"`.
type RuntimeConfig struct {
	Concurrency   int `yaml:"concurrency" help:"cores that run Go code (GOMAXPROCS); 0: all; the GOMAXPROCS env var wins"`
	GCPercent     int `yaml:"gc_percent" help:"GC target: heap growth in % of the live heap before a collection (GOGC); -1: off (then set memory_limit_mb); the GOGC env var wins"`
	MemoryLimitMB int `yaml:"memory_limit_mb" help:"soft limit in MiB on the Go runtime's memory (GOMEMLIMIT): collect harder near it; 0: none; the GOMEMLIMIT env var wins"`
}

// Validate names concurrency, gc_percent or memory_limit_mb when invalid.
func (c RuntimeConfig) Validate() error {
	var errs []error
	if c.Concurrency < 0 {
		errs = append(errs, config.Errorf("concurrency", "must be 0 (all cores) or more, got %d", c.Concurrency))
	}
	if c.GCPercent < -1 {
		errs = append(errs, config.Errorf("gc_percent", "must be -1 (off) or more, got %d", c.GCPercent))
	}
	if c.MemoryLimitMB < 0 {
		errs = append(errs, config.Errorf("memory_limit_mb", "must be 0 (none) or more, got %d", c.MemoryLimitMB))
	}
	if c.GCPercent == -1 && c.MemoryLimitMB == 0 {
		errs = append(errs, config.Errorf("gc_percent", "-1 (GC off) needs memory_limit_mb, or the heap grows without bound"))
	}
	return errors.Join(errs...)
}

// Apply sets the runtime from c where the environment has not, and
// returns the GOGC and memory limit (bytes) the process now runs with.
func (c RuntimeConfig) Apply() (gcPercent int, memoryLimit int64) {
	if c.Concurrency > 0 && os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(c.Concurrency)
	}
	gcPercent = c.GCPercent
	if v := os.Getenv("GOGC"); v != "" {
		// The runtime read it at start; report what it read.
		if v == "off" {
			gcPercent = -1
		} else if n, err := strconv.Atoi(v); err == nil {
			gcPercent = n
		}
	} else {
		debug.SetGCPercent(c.GCPercent)
	}
	if c.MemoryLimitMB > 0 && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(int64(c.MemoryLimitMB) << 20)
	}
	return gcPercent, debug.SetMemoryLimit(-1) // a negative limit only reads it
}
