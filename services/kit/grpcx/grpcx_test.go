package grpcx_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"

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

// A comma-separated target is one connection over several members: when
// the member it uses stops, calls go on through another.
func TestDialFailsOverBetweenMembers(t *testing.T) {
	var addrs []string
	stops := map[string]context.CancelFunc{}
	for range 2 {
		srv := grpcx.NewServer(grpcx.ServerOptions{Binary: "unit", Registerer: prometheus.NewRegistry()})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { _ = srv.Serve(ln, 0)(ctx); close(done) }()
		addr := ln.Addr().String()
		addrs = append(addrs, addr)
		stops[addr] = func() { cancel(); <-done }
		t.Cleanup(stops[addr])
	}
	conn, err := grpcx.Dial(addrs[0]+", "+addrs[1], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	check := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := client.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
		return err
	}
	if err := check(); err != nil {
		t.Fatalf("first call: %v", err)
	}
	var p peer.Peer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p)); err != nil {
		t.Fatal(err)
	}
	stops[p.Addr.String()]()
	// A call racing the close may fail once; the channel must then carry
	// calls through the other member.
	deadline := time.Now().Add(5 * time.Second)
	for err := check(); err != nil; err = check() {
		if time.Now().After(deadline) {
			t.Fatalf("no call succeeded after stopping %s: %v", p.Addr, err)
		}
	}
}
