package proxy

import (
	"net/http"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
)

// isGRPC reports whether a request is gRPC by Envoy's rule: a content type
// of exactly application/grpc or one starting application/grpc+
// (application/grpc-web is not gRPC; it has its own framing of errors).
func isGRPC(h http.Header) bool {
	ct := h["Content-Type"] // by the canonical key: Get would canonicalise it on every call
	if len(ct) == 0 {
		return false
	}
	rest, ok := strings.CutPrefix(ct[0], "application/grpc")
	return ok && (rest == "" || rest[0] == '+')
}

// httpStatusForGRPC maps a gRPC status code to the HTTP status it stands
// for, as Envoy's Grpc::Utility::grpcToHttpStatus does.
func httpStatusForGRPC(code codes.Code) int {
	switch code {
	case codes.OK:
		return http.StatusOK
	case codes.Canceled:
		return 499
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unimplemented:
		return http.StatusNotImplemented
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	}
	return http.StatusInternalServerError // Unknown, Internal, DataLoss, and codes not in the spec
}

// trailersOnlyStatus is the grpc-status of a trailers-only gRPC response
// (how a server answers a call that fails before any message: HTTP 200
// with the status in its headers); false for any other response, or none.
func trailersOnlyStatus(resp *http.Response) (codes.Code, bool) {
	if resp == nil {
		return 0, false
	}
	v := resp.Header["Grpc-Status"]
	if len(v) != 1 || !isGRPC(resp.Header) {
		return 0, false
	}
	code, err := strconv.ParseUint(v[0], 10, 32)
	if err != nil {
		return 0, false
	}
	return codes.Code(code), true
}

// grpcStatusFor maps an HTTP status to a gRPC status code as gRPC's
// "HTTP to gRPC Status Code Mapping" and Envoy do.
func grpcStatusFor(httpStatus int) codes.Code {
	switch httpStatus {
	case http.StatusBadRequest:
		return codes.Internal
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusForbidden:
		return codes.PermissionDenied
	case http.StatusNotFound:
		return codes.Unimplemented
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return codes.Unavailable
	}
	return codes.Unknown
}

// encodeGRPCMessage percent-encodes a grpc-message value as the gRPC
// HTTP/2 protocol says: '%' and every byte outside printable ASCII become
// %XX, so UTF-8 text survives a header.
func encodeGRPCMessage(msg string) string {
	plain := func(c byte) bool { return c >= ' ' && c <= '~' && c != '%' }
	i := 0
	for i < len(msg) && plain(msg[i]) {
		i++
	}
	if i == len(msg) {
		return msg
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(msg) + 2*(len(msg)-i))
	b.WriteString(msg[:i])
	for ; i < len(msg); i++ {
		if c := msg[i]; plain(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}
