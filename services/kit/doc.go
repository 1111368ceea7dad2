// Package kit is the shared library every Switchyard binary is built from.
//
// Its subpackages each hold one concept: run (task groups and graceful
// shutdown), config (layered, strict configuration), logging (slog set-up),
// admin (the /metrics, /healthz, /readyz and pprof server), telemetry
// (OpenTelemetry tracing and RED metrics), grpcx (gRPC servers and clients),
// identity (SPIFFE SVIDs from the ca) and workloadapi (the SPIFFE Workload
// API for applications).
package kit
