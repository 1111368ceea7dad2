package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/switchyard-mesh/switchyard/services/registry/internal/catalog"
)

// Prober runs one active check against an instance. A nil error passes.
type Prober interface {
	Probe(ctx context.Context, in *catalog.Instance) error
}

// NetProber probes over the network: HTTP GET (2xx passes), a TCP connect,
// or grpc.health.v1 Check (SERVING passes). Probes go to the workload's own
// port in plaintext, as Consul's and Kubernetes' probes do.
type NetProber struct {
	HTTP *http.Client
}

var _ Prober = NetProber{}

// Probe implements Prober.
func (p NetProber) Probe(ctx context.Context, in *catalog.Instance) error {
	ctx, cancel := context.WithTimeout(ctx, in.Check.Timeout)
	defer cancel()
	addr := net.JoinHostPort(in.Address, strconv.FormatUint(uint64(in.Port), 10))
	switch in.Check.Type {
	case catalog.CheckTCP:
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return fmt.Errorf("tcp connect %s: %w", addr, err)
		}
		return c.Close()
	case catalog.CheckHTTP:
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+in.Check.HTTPPath, nil)
		if err != nil {
			return fmt.Errorf("http check %s: %w", addr, err)
		}
		client := p.HTTP
		if client == nil {
			client = http.DefaultClient
		}
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("http GET %s%s: %w", addr, in.Check.HTTPPath, err)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return fmt.Errorf("http GET %s%s: status %d", addr, in.Check.HTTPPath, resp.StatusCode)
		}
		return nil
	case catalog.CheckGRPC:
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return fmt.Errorf("grpc health %s: %w", addr, err)
		}
		defer conn.Close()
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: in.Check.GRPCService})
		if err != nil {
			return fmt.Errorf("grpc health %s: %w", addr, err)
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("grpc health %s: %s", addr, resp.GetStatus())
		}
		return nil
	default:
		return errors.New("not an active check")
	}
}
