package service_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-mesh/switchyard/services/kit/service"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestBaseServesAdminUntilCancelled(t *testing.T) {
	cfg := service.DefaultConfig(freeAddr(t))
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	base, err := service.Start(ctx, "unit", cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- base.Run(ctx, func(ctx context.Context) error { <-ctx.Done(); return nil })
	}()
	var resp *http.Response
	for range 50 {
		if resp, err = http.Get("http://" + cfg.Admin.Addr + "/readyz"); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/readyz = %v, %v", resp, err)
	}
	resp.Body.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop")
	}
}

func TestValidateNamesNestedField(t *testing.T) {
	cfg := service.DefaultConfig("nope")
	cfg.Log.Level = "loud"
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "log.level") || !strings.Contains(err.Error(), "admin.addr") {
		t.Fatalf("Validate = %v", err)
	}
}
