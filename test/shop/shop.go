// Package shop starts the demo shop's four apps (frontend, users, orders,
// billing) as real processes on loopback for end-to-end tests, wired directly
// to one another or through whatever the test slots in between.
package shop

import (
	"fmt"
	"testing"

	"github.com/switchyard-mesh/switchyard/test/harness"
)

// Apps are the shop's apps, in start order (dependencies first).
var Apps = []string{"billing", "users", "orders", "frontend"}

// App is one running shop app.
type App struct {
	Proc *harness.Proc
	// URL is the API base URL, "http://127.0.0.1:port".
	URL string
	// AdminURL is the admin base URL (/metrics, /readyz, /admin/fault).
	AdminURL string
}

// Options change how the shop is started.
type Options struct {
	// Env is added to every app's environment (for example a trace
	// receiver's Env).
	Env []string
	// Args adds flags per app name.
	Args map[string][]string
}

// Shop is the running shop.
type Shop map[string]*App

// Start runs the four apps, each waiting for the previous one to be ready,
// and returns them by name. The processes stop when the test ends.
func Start(t testing.TB, opts Options) Shop {
	t.Helper()
	bin := harness.Binary(t, "shop")
	s := Shop{}
	for _, name := range Apps {
		api, admin := harness.FreeAddr(t), harness.FreeAddr(t)
		args := []string{
			"-app", name,
			"-instance", name + "-1",
			"-http.addr", api,
			"-admin.addr", admin,
			"-log.format", "text",
		}
		switch name {
		case "orders":
			args = append(args, "-upstreams.billing", s["billing"].URL)
		case "frontend":
			args = append(args, "-upstreams.users", s["users"].URL, "-upstreams.orders", s["orders"].URL)
		}
		args = append(args, opts.Args[name]...)
		p := harness.Start(t, harness.Process{
			Name:     name,
			Binary:   bin,
			Args:     args,
			Env:      opts.Env,
			ReadyURL: fmt.Sprintf("http://%s/readyz", admin),
		})
		s[name] = &App{Proc: p, URL: "http://" + api, AdminURL: "http://" + admin}
	}
	return s
}
