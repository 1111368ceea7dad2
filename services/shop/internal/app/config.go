// Package app wires one demo shop app — frontend, users, orders or billing —
// from its configuration: the shared service base (logging, metrics, admin,
// tracing), the app's HTTP handlers, its upstream clients and fault
// injection.
package app

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/switchyard-mesh/switchyard/services/kit/config"
	"github.com/switchyard-mesh/switchyard/services/kit/logging"
	"github.com/switchyard-mesh/switchyard/services/kit/service"
	"github.com/switchyard-mesh/switchyard/services/shop/internal/fault"
	"github.com/switchyard-mesh/switchyard/services/shop/internal/shop"
)

// Config is a shop app's settings. The listen addresses default per app (see
// DefaultPorts) so the four apps run side by side on one host unconfigured.
type Config struct {
	service.Config `yaml:",inline"`

	App      string `yaml:"app" help:"which app to run: frontend, users, orders or billing (required)"`
	Instance string `yaml:"instance" help:"name reported in X-Served-By and served_by (default <app>-<hostname>)"`
	HTTP     HTTP   `yaml:"http"`
	// Upstreams are base URLs of the apps this one calls: the app itself
	// or a sidecar's outbound listener, which routes by the Host header
	// (always the service name).
	Upstreams Upstreams      `yaml:"upstreams"`
	Fault     fault.Settings `yaml:"fault"`
}

// HTTP places the app's API listener.
type HTTP struct {
	Addr    string        `yaml:"addr" help:"API listen address (default :<app port>, see README)"`
	Timeout time.Duration `yaml:"timeout" help:"how long to wait for each upstream call"`
}

// Upstreams are the base URLs of the apps a shop app calls.
type Upstreams struct {
	Users   string `yaml:"users" help:"base URL of users (frontend needs it)"`
	Orders  string `yaml:"orders" help:"base URL of orders (frontend needs it)"`
	Billing string `yaml:"billing" help:"base URL of billing (orders needs it)"`
}

// Ports is where an app listens when its addresses are not set.
type Ports struct{ HTTP, Admin int }

// DefaultPorts are each app's default API and admin ports.
var DefaultPorts = map[string]Ports{
	"frontend": {8090, 8190},
	"users":    {8091, 8191},
	"orders":   {8092, 8192},
	"billing":  {8093, 8193},
}

// needs lists, per app, which upstreams it calls.
var needs = map[string][]string{
	"frontend": {"users", "orders"},
	"orders":   {"billing"},
}

// DefaultConfig is a shop app's configuration before any file, environment
// or flag: no app chosen, JSON logs, no injected faults.
func DefaultConfig() Config {
	return Config{
		Config: service.Config{Log: logging.DefaultConfig()},
		HTTP:   HTTP{Timeout: 5 * time.Second},
	}
}

func (u Upstreams) byName() map[string]string {
	return map[string]string{"users": u.Users, "orders": u.Orders, "billing": u.Billing}
}

// Validate reports every invalid setting, named by its YAML path.
func (c Config) Validate() error {
	var errs []error
	if _, ok := DefaultPorts[c.App]; !ok {
		errs = append(errs, config.Errorf("app", "want one of %s, got %q", strings.Join(shop.Apps, ", "), c.App))
	}
	errs = append(errs, config.Nest("log", c.Log.Validate()))
	if c.Admin.Addr != "" {
		errs = append(errs, config.Nest("admin", c.Admin.Validate()))
	}
	if c.HTTP.Addr != "" {
		if _, _, err := net.SplitHostPort(c.HTTP.Addr); err != nil {
			errs = append(errs, config.Errorf("http.addr", "want host:port, got %q", c.HTTP.Addr))
		}
	}
	if c.HTTP.Timeout <= 0 {
		errs = append(errs, config.Errorf("http.timeout", "want a positive duration, got %s", c.HTTP.Timeout))
	}
	errs = append(errs, config.Nest("fault", c.Fault.Validate()))
	for _, name := range []string{"users", "orders", "billing"} {
		raw := c.Upstreams.byName()[name]
		field := "upstreams." + name
		needed := slices.Contains(needs[c.App], name)
		switch {
		case raw == "" && needed:
			errs = append(errs, config.Errorf(field, "required: %s calls %s", c.App, name))
		case raw != "" && !needed && c.App != "":
			errs = append(errs, config.Errorf(field, "%s does not call %s; remove the setting", c.App, name))
		case raw != "":
			if _, err := parseUpstream(raw); err != nil {
				errs = append(errs, config.Errorf(field, "%v", err))
			}
		}
	}
	return errors.Join(errs...)
}

func parseUpstream(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("want an http:// or https:// base URL such as http://127.0.0.1:15001, got %q", raw)
	}
	return u, nil
}

// resolved fills the per-app defaults left empty: listen addresses and the
// instance name. It is called on a valid config.
func (c Config) resolved() Config {
	ports := DefaultPorts[c.App]
	if c.HTTP.Addr == "" {
		c.HTTP.Addr = fmt.Sprintf(":%d", ports.HTTP)
	}
	if c.Admin.Addr == "" {
		c.Admin.Addr = fmt.Sprintf(":%d", ports.Admin)
	}
	if c.Instance == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "local"
		}
		c.Instance = c.App + "-" + host
	}
	return c
}
