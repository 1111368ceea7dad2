// Package telemetry sets up OpenTelemetry tracing from the standard OTEL_*
// environment variables and provides the RED (rate, errors, duration)
// metrics middleware shared by every HTTP and gRPC server.
//
// Tracing exports over OTLP gRPC when OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set and is a no-op otherwise; W3C
// trace-context and baggage are propagated either way, so a hop without an
// exporter still passes the trace on.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Setup installs the global tracer provider and propagator for a binary
// named service (OTEL_SERVICE_NAME overrides it). The returned shutdown
// flushes buffered spans; call it on the way out.
func Setup(ctx context.Context, service string, log *slog.Logger) (shutdown func(context.Context) error, err error) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	if !exporterConfigured() {
		log.Debug("tracing export off: OTEL_EXPORTER_OTLP_ENDPOINT is not set")
		return func(context.Context) error { return nil }, nil
	}
	exporter, err := otlptracegrpc.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("create OTLP trace exporter: %w", err)
	}
	// One resource.New call, env last so OTEL_SERVICE_NAME and
	// OTEL_RESOURCE_ATTRIBUTES win. Merging resource.Default() with a
	// resource built from a different semconv version fails on conflicting
	// schema URLs, so the service name is set without a schema of its own.
	res, err := resource.New(ctx,
		resource.WithTelemetrySDK(),
		resource.WithAttributes(attribute.String("service.name", service)),
		resource.WithFromEnv(),
	)
	if err != nil {
		return nil, fmt.Errorf("build trace resource: %w", err)
	}
	provider := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter), sdktrace.WithResource(res))
	otel.SetTracerProvider(provider)
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("opentelemetry error", "err", err)
	}))
	log.Info("tracing export on", "service", service)
	return func(ctx context.Context) error {
		return errors.Join(provider.Shutdown(ctx))
	}, nil
}

func exporterConfigured() bool {
	if os.Getenv("OTEL_SDK_DISABLED") == "true" || os.Getenv("OTEL_TRACES_EXPORTER") == "none" {
		return false
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}
