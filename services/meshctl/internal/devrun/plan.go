// Package devrun runs the whole mesh as local processes for `make dev`: it
// starts each binary of a plan in order, waits for each to be ready before
// the next, prefixes their output with their names, and on Ctrl-C stops
// every process it started, newest first.
package devrun

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"

	"github.com/switchyard-mesh/switchyard/services/kit/config"
)

// Plan is the file deploy/dev/mesh.yaml: the processes of a local mesh and
// what to tell the person who started it.
type Plan struct {
	// StateDir holds what processes keep between runs (the CA root, Raft
	// data); relative paths in args are relative to the working directory.
	StateDir  string    `yaml:"state_dir"`
	Processes []Process `yaml:"processes"`
	// Links are printed once everything is ready.
	Links []Link `yaml:"links"`
}

// Process is one binary to start.
type Process struct {
	Name   string            `yaml:"name"`
	Binary string            `yaml:"binary"`
	Args   []string          `yaml:"args"`
	Env    map[string]string `yaml:"env"`
	// Ready is polled until it answers 200 before the next process starts.
	Ready string `yaml:"ready"`
}

// Link is a URL worth opening.
type Link struct {
	Title string `yaml:"title"`
	URL   string `yaml:"url"`
}

var namePattern = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

// Validate checks names are unique and usable as log prefixes, binaries are
// named and ready URLs parse.
func (p *Plan) Validate() error {
	var errs []error
	if p.StateDir == "" {
		errs = append(errs, config.Errorf("state_dir", "must name a directory"))
	}
	if len(p.Processes) == 0 {
		errs = append(errs, config.Errorf("processes", "must list at least one process"))
	}
	seen := map[string]bool{}
	for i, proc := range p.Processes {
		field := fmt.Sprintf("processes[%d]", i)
		switch {
		case !namePattern.MatchString(proc.Name):
			errs = append(errs, config.Errorf(field+".name", "want lower-case letters, digits and dashes, got %q", proc.Name))
		case seen[proc.Name]:
			errs = append(errs, config.Errorf(field+".name", "%q is used twice", proc.Name))
		}
		seen[proc.Name] = true
		if proc.Binary == "" {
			errs = append(errs, config.Errorf(field+".binary", "must name a binary in the bin directory"))
		}
		if proc.Ready != "" {
			if u, err := url.Parse(proc.Ready); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
				errs = append(errs, config.Errorf(field+".ready", "want an http(s) URL, got %q", proc.Ready))
			}
		}
	}
	return errors.Join(errs...)
}
