// Package run runs a binary's long-lived parts as one group of tasks under a
// single cancellation, and shuts them down gracefully.
//
// A binary's Run function builds its parts and hands their Run methods to
// Group; the first task to fail cancels the rest, and a signal cancels all.
package run

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
)

// Task is one long-lived part of a binary. It runs until ctx is cancelled or
// it fails, and returns nil when it stopped because ctx was cancelled.
type Task func(ctx context.Context) error

// Group runs every task concurrently. The first task to return an error
// cancels the others; Group waits for all of them and returns that first
// error. A task returning nil does not stop the group.
func Group(ctx context.Context, tasks ...Task) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, task := range tasks {
		g.Go(func() error {
			err := task(ctx)
			if errors.Is(err, context.Canceled) && ctx.Err() != nil {
				return nil
			}
			return err
		})
	}
	return g.Wait()
}

// Main runs fn with a context that is cancelled on SIGINT or SIGTERM. If fn
// fails, Main prints the error and exits with status 1. It is meant to be the
// only statement of a binary's main function.
func Main(fn func(ctx context.Context) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := fn(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", binaryName(), err)
		stop()
		os.Exit(1)
	}
}

func binaryName() string {
	if len(os.Args) == 0 {
		return "switchyard"
	}
	name := os.Args[0]
	for i := len(name) - 1; i >= 0; i-- {
		if name[i] == '/' {
			return name[i+1:]
		}
	}
	return name
}

// HTTPServer serves srv on ln until ctx is cancelled, then stops accepting
// connections and lets in-flight requests finish for up to drain before
// closing what is left.
func HTTPServer(srv *http.Server, ln net.Listener, drain time.Duration) Task {
	return func(ctx context.Context) error {
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve(ln) }()
		select {
		case err := <-errc:
			return fmt.Errorf("serve http on %s: %w", ln.Addr(), err)
		case <-ctx.Done():
		}
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drain)
		defer cancel()
		if err := srv.Shutdown(shutdownCtx); err != nil {
			_ = srv.Close()
			return fmt.Errorf("drain http on %s within %s: %w", ln.Addr(), drain, err)
		}
		return nil
	}
}

// Listen opens a TCP listener and names the address in its error, so that a
// port already in use is reported with the setting that chose it.
func Listen(field, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s (%s): %w", addr, field, err)
	}
	return ln, nil
}
