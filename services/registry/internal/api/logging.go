package api

import (
	"context"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// LogInterceptors log one line per call at debug, and refused or failed
// calls (anything but OK, NotFound, InvalidArgument and
// FailedPrecondition, which are the caller's business) at warn, with the
// caller's SPIFFE ID.
func LogInterceptors(log *slog.Logger) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	record := func(ctx context.Context, method string, start time.Time, err error) {
		code := status.Code(err)
		level := slog.LevelDebug
		switch code.String() {
		case "OK", "NotFound", "InvalidArgument", "FailedPrecondition", "Canceled":
		default:
			level = slog.LevelWarn
		}
		if !log.Enabled(ctx, level) {
			return
		}
		id, _ := callerID(ctx)
		attrs := []any{"method", method, "code", code.String(), "duration", time.Since(start), "peer", id}
		if err != nil {
			attrs = append(attrs, "err", status.Convert(err).Message())
		}
		log.Log(ctx, level, "grpc call", attrs...)
	}
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := h(ctx, req)
		record(ctx, info.FullMethod, start, err)
		return resp, err
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		start := time.Now()
		err := h(srv, ss)
		record(ss.Context(), info.FullMethod, start, err)
		return err
	}
	return unary, stream
}
