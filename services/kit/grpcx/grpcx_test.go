package grpcx_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/switchyard-mesh/switchyard/services/kit/grpcx"
)

func TestServerHealthMetricsAndDrain(t *testing.T) {
	reg := prometheus.NewRegistry()
	srv := grpcx.NewServer(grpcx.ServerOptions{Binary: "unit", Registerer: reg})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln, time.Second)(ctx) }()

	conn, err := grpcx.Dial(ln.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v, %v", resp, err)
	}
	if n, err := testutil.GatherAndCount(reg, "switchyard_unit_grpc_server_handled_total"); err != nil || n != 1 {
		t.Fatalf("handled series = %d, %v", n, err)
	}
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve = %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}
