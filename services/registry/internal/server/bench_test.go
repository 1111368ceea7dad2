package server_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	registryv1 "github.com/switchyard-mesh/switchyard/proto/switchyard/registry/v1"
)

// benchCluster starts a 3-node cluster for a benchmark; b.N loops reuse
// it through the testing.T of a sub-test-free helper.
func benchCluster(b *testing.B) (*cluster, *node) {
	b.Helper()
	c := newClusterTB(b, 3, nil)
	return c, c.leader(10 * time.Second)
}

// runConcurrent runs total operations from `clients` goroutines, each
// using its own node connection round-robin, and returns ops/s.
func runConcurrent(b *testing.B, c *cluster, clients int, op func(ctx context.Context, nd *node, i int) error) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Int64
	b.ResetTimer()
	start := time.Now()
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nd := c.nodes[w%len(c.nodes)]
			for {
				i := int(next.Add(1))
				if i > b.N {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				if err := op(ctx, nd, i); err != nil {
					failed.Add(1)
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	if failed.Load() > 0 {
		b.Fatalf("%d of %d operations failed", failed.Load(), b.N)
	}
	b.ReportMetric(float64(b.N)/el.Seconds(), "ops/s")
}

// BenchmarkRegister: registrations through Raft, clients spread over all
// three nodes (followers forward) or all on the leader.
func BenchmarkRegister(b *testing.B) {
	for _, via := range []string{"any", "leader"} {
		for _, clients := range []int{1, 100} {
			b.Run(fmt.Sprintf("via=%s/clients=%d", via, clients), func(b *testing.B) {
				c, leader := benchCluster(b)
				runConcurrent(b, c, clients, func(ctx context.Context, nd *node, i int) error {
					if via == "leader" {
						nd = leader
					}
					_, err := nd.client().Register(ctx, &registryv1.RegisterRequest{Instance: orders(fmt.Sprintf("b-%d", i), 8080)})
					return err
				})
			})
		}
	}
}

func BenchmarkRead(b *testing.B) {
	for _, stale := range []bool{false, true} {
		b.Run(fmt.Sprintf("stale=%v", stale), func(b *testing.B) {
			c, leader := benchCluster(b)
			ctx := context.Background()
			for i := range 50 {
				if _, err := leader.client().Register(ctx, &registryv1.RegisterRequest{Instance: orders(fmt.Sprintf("r-%d", i), 8080)}); err != nil {
					b.Fatal(err)
				}
			}
			runConcurrent(b, c, 32, func(ctx context.Context, nd *node, i int) error {
				_, err := nd.client().GetService(ctx, &registryv1.GetServiceRequest{Service: "orders", Read: &registryv1.ReadOptions{Stale: stale}})
				return err
			})
		})
	}
}
