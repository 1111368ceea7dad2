package proxy

import (
	"net/http"
	"strconv"
	"testing"

	"google.golang.org/grpc/codes"
)

func TestIsGRPC(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/grpc":       true,
		"application/grpc+proto": true,
		"application/grpc+json":  true,
		"application/grpc-web":   false, // its own framing of errors
		"application/grpcx":      false,
		"application/json":       false,
		"":                       false,
	} {
		h := http.Header{}
		if ct != "" {
			h.Set("Content-Type", ct)
		}
		if got := isGRPC(h); got != want {
			t.Errorf("isGRPC(%q) = %v, want %v", ct, got, want)
		}
	}
}

func TestGRPCStatusFor(t *testing.T) {
	// gRPC's doc/http-grpc-status-mapping.md.
	for status, want := range map[int]codes.Code{
		400: codes.Internal,
		401: codes.Unauthenticated,
		403: codes.PermissionDenied,
		404: codes.Unimplemented,
		429: codes.Unavailable,
		502: codes.Unavailable,
		503: codes.Unavailable,
		504: codes.Unavailable,
		500: codes.Unknown,
		418: codes.Unknown,
	} {
		if got := grpcStatusFor(status); got != want {
			t.Errorf("grpcStatusFor(%d) = %d, want %d", status, got, want)
		}
	}
}

func TestHTTPStatusForGRPC(t *testing.T) {
	// Envoy's Grpc::Utility::grpcToHttpStatus.
	for code, want := range map[codes.Code]int{
		codes.OK: 200, codes.Canceled: 499, codes.Unknown: 500, codes.InvalidArgument: 400,
		codes.DeadlineExceeded: 504, codes.NotFound: 404, codes.AlreadyExists: 409, codes.PermissionDenied: 403,
		codes.ResourceExhausted: 429, codes.FailedPrecondition: 400, codes.Aborted: 409, codes.OutOfRange: 400,
		codes.Unimplemented: 501, codes.Internal: 500, codes.Unavailable: 503, codes.DataLoss: 500,
		codes.Unauthenticated: 401, 17: 500, 1 << 31: 500,
	} {
		if got := httpStatusForGRPC(code); got != want {
			t.Errorf("httpStatusForGRPC(%d) = %d, want %d", code, got, want)
		}
	}
}

func TestTrailersOnlyStatus(t *testing.T) {
	grpcResp := func(status string) *http.Response {
		h := http.Header{"Content-Type": {"application/grpc"}}
		if status != "" {
			h["Grpc-Status"] = []string{status}
		}
		return &http.Response{StatusCode: 200, Header: h}
	}
	for _, tc := range []struct {
		name string
		resp *http.Response
		code codes.Code
		ok   bool
	}{
		{"no response", nil, 0, false},
		{"HTTP", &http.Response{StatusCode: 503, Header: http.Header{"Grpc-Status": {"0"}}}, 0, false},
		{"gRPC trailers-only UNAVAILABLE", grpcResp("14"), codes.Unavailable, true},
		{"gRPC trailers-only OK", grpcResp("0"), codes.OK, true},
		{"gRPC with its status still to come in trailers", grpcResp(""), 0, false},
		{"gRPC with a malformed status", grpcResp("x"), 0, false},
		{"gRPC with a negative status", grpcResp("-14"), 0, false},
		{"gRPC error behind an HTTP error", func() *http.Response { r := grpcResp("14"); r.StatusCode = 502; return r }(), codes.Unavailable, true},
	} {
		if code, ok := trailersOnlyStatus(tc.resp); code != tc.code || ok != tc.ok {
			t.Errorf("%s: %v %v, want %v %v", tc.name, code, ok, tc.code, tc.ok)
		}
	}
}

func TestGRPCStatusLabel(t *testing.T) {
	for v, want := range map[string]string{
		"0": "OK", "1": "Canceled", "14": "Unavailable", "16": "Unauthenticated",
		"17": "invalid", "255": "invalid", "256": "invalid", "-1": "invalid", "x": "invalid", "": "invalid", " 0": "invalid",
	} {
		if got := grpcStatusLabel(v); got != want {
			t.Errorf("grpcStatusLabel(%q) = %q, want %q", v, got, want)
		}
	}
}

func TestEncodeGRPCMessage(t *testing.T) {
	for in, want := range map[string]string{
		"":                   "",
		"no route for users": "no route for users",
		"100%":               "100%25",
		"tab\there":          "tab%09here",
		"crlf\r\n":           "crlf%0D%0A",
		"日本":                 "%E6%97%A5%E6%9C%AC",
		"del\x7f":            "del%7F",
	} {
		if got := encodeGRPCMessage(in); got != want {
			t.Errorf("encodeGRPCMessage(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzEncodeGRPCMessage checks that every message becomes a valid header
// value (printable ASCII only) that a gRPC client decodes back to it.
func FuzzEncodeGRPCMessage(f *testing.F) {
	for _, s := range []string{"", "plain", "100%", "%%", "日本", "\x00\xff", "a%2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, msg string) {
		enc := encodeGRPCMessage(msg)
		for i := 0; i < len(enc); i++ {
			if enc[i] < ' ' || enc[i] > '~' {
				t.Fatalf("encoded %q has byte %#x", enc, enc[i])
			}
		}
		if dec := decodeGRPCMessage(t, enc); dec != msg {
			t.Fatalf("%q encoded as %q decodes to %q", msg, enc, dec)
		}
		escaped := 0
		for i := 0; i < len(msg); i++ {
			if msg[i] < ' ' || msg[i] > '~' || msg[i] == '%' {
				escaped++
			}
		}
		if len(enc) != len(msg)+2*escaped {
			t.Fatalf("%q encoded as %q: %d bytes, want %d (3 per escaped byte)", msg, enc, len(enc), len(msg)+2*escaped)
		}
	})
}

// decodeGRPCMessage is the receiving side of the gRPC spec's
// percent-encoding: %XX (hex, either case) is a byte, anything else itself.
func decodeGRPCMessage(t *testing.T, s string) string {
	var out []byte
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			out = append(out, s[i])
			continue
		}
		if i+2 >= len(s) {
			t.Fatalf("truncated escape in %q", s)
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			t.Fatalf("bad escape in %q: %v", s, err)
		}
		out = append(out, byte(v))
		i += 2
	}
	return string(out)
}
