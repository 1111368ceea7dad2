package server

import (
	"context"
	"testing"

	cav1 "github.com/switchyard-mesh/switchyard/proto/switchyard/ca/v1"
)

// BenchmarkSignSVIDOverGRPC is the ca's hot path over a real loopback TLS
// gRPC connection: join-token authentication, CSR validation, signing,
// audit line. The end-to-end figure against the ca binary is
// test/identity's BenchmarkSignSVID.
func BenchmarkSignSVIDOverGRPC(b *testing.B) {
	ca := startCA(b)
	client := ca.client(b, nil)
	req := &cav1.SignSVIDRequest{Csr: newCSR(b, ecKey(b), idReg.String()), JoinToken: tokReg}
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := client.SignSVID(context.Background(), req); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "signings/s")
}
