package run_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-mesh/switchyard/services/kit/run"
)

func TestGroupFirstErrorCancelsOthers(t *testing.T) {
	boom := errors.New("boom")
	stopped := make(chan struct{})
	err := run.Group(context.Background(),
		func(ctx context.Context) error { <-ctx.Done(); close(stopped); return ctx.Err() },
		func(context.Context) error { return boom },
	)
	if !errors.Is(err, boom) {
		t.Fatalf("Group = %v, want boom", err)
	}
	select {
	case <-stopped:
	default:
		t.Fatal("the other task was not cancelled")
	}
}

func TestGroupCancelIsClean(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := run.Group(ctx, func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	if err != nil {
		t.Fatalf("Group after cancel = %v, want nil", err)
	}
}

func TestHTTPServerDrainsInFlight(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(200 * time.Millisecond)
		_, _ = io.WriteString(w, "done")
	})}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- run.HTTPServer(srv, ln, 5*time.Second)(ctx) }()

	got := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String())
		if err != nil {
			got <- err.Error()
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		got <- string(body)
	}()
	<-started
	cancel()
	if body := <-got; body != "done" {
		t.Fatalf("in-flight request got %q, want it to finish", body)
	}
	if err := <-served; err != nil {
		t.Fatalf("HTTPServer = %v", err)
	}
	if _, err := http.Get("http://" + ln.Addr().String()); err == nil {
		t.Fatal("server still accepts after shutdown")
	}
}

func TestListenNamesTheField(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := run.Listen("admin.addr", ln.Addr().String()); err == nil || !strings.Contains(err.Error(), "admin.addr") {
		t.Fatalf("Listen on a used port = %v", err)
	}
}
