package identity_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffegrpc/grpccredentials"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	spiffewl "github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/switchyard-mesh/switchyard/services/kit/identity"
	"github.com/switchyard-mesh/switchyard/services/kit/workloadapi"
)

// TestWorkloadAPIApp is the sidecar's Workload API path: a source holding the
// workload's SVID from the real ca is served on a unix socket, and an "app"
// that knows only go-spiffe fetches its identity there and uses it for mTLS
// to a Switchyard process.
func TestWorkloadAPIApp(t *testing.T) {
	c := startCA(t, time.Hour)
	orders := identity.WorkloadID("shop", "orders")
	server := startPeer(t, c, idRegistry, orders)

	src := newSource(t, c, orders, 0)
	runSource(t, src)
	socket := filepath.Join(t.TempDir(), "workload.sock")
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- workloadapi.New(src, slog.New(slog.DiscardHandler)).Serve(socket)(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("workload API: %v", err)
		}
	})

	fetchCtx, fetchCancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer fetchCancel()
	var app *spiffewl.X509Source
	var err error
	for app, err = spiffewl.NewX509Source(fetchCtx, spiffewl.WithClientOptions(spiffewl.WithAddr("unix://"+socket))); err != nil && fetchCtx.Err() == nil; app, err = spiffewl.NewX509Source(fetchCtx, spiffewl.WithClientOptions(spiffewl.WithAddr("unix://"+socket))) {
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("go-spiffe X509Source over the Workload API: %v", err)
	}
	defer app.Close()
	svid, err := app.GetX509SVID()
	if err != nil || svid.ID != orders {
		t.Fatalf("app got %v, %v; want %s", svid, err, orders)
	}
	creds := grpccredentials.MTLSClientCredentials(app, app, tlsconfig.AuthorizeID(idRegistry))
	if err := check(dial(t, server.addr, creds)); err != nil {
		t.Fatalf("app's mTLS call with its Workload API SVID: %v", err)
	}
}
