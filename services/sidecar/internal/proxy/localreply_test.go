package proxy

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
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
	for status, want := range map[int]int{
		400: 13, // INTERNAL
		401: 16, // UNAUTHENTICATED
		403: 7,  // PERMISSION_DENIED
		404: 12, // UNIMPLEMENTED
		429: 14, // UNAVAILABLE
		502: 14,
		503: 14,
		504: 14,
		500: 2, // UNKNOWN
		418: 2,
	} {
		if got := grpcStatusFor(status); got != want {
			t.Errorf("grpcStatusFor(%d) = %d, want %d", status, got, want)
		}
	}
}

func TestReplyToGRPCIsTrailersOnly(t *testing.T) {
	r := httptest.NewRequest("POST", "/grpc.health.v1.Health/Check", nil)
	r.Header.Set("Content-Type", "application/grpc")
	rec := httptest.NewRecorder()
	sw := &statusWriter{ResponseWriter: rec}
	reply(sw, r, http.StatusForbidden, "rbac_denied", "RBAC: access denied: 100% süre")
	h := rec.Result().Header
	if rec.Code != http.StatusOK || h.Get("Content-Type") != "application/grpc" || h.Get("Grpc-Status") != "7" ||
		h.Get("Grpc-Message") != "RBAC: access denied: 100%25 s%C3%BCre" || h.Get(ReasonHeader) != "rbac_denied" || rec.Body.Len() != 0 {
		t.Fatalf("gRPC local reply: %d %v body %q", rec.Code, h, rec.Body)
	}
	if sw.status != http.StatusForbidden {
		t.Fatalf("metrics see status %d, want the 403 it stands for", sw.status)
	}

	r.Header.Set("Content-Type", "application/json")
	rec = httptest.NewRecorder()
	reply(rec, r, http.StatusForbidden, "rbac_denied", "denied")
	if rec.Code != http.StatusForbidden || rec.Body.String() != "denied\n" || rec.Header().Get("Grpc-Status") != "" {
		t.Fatalf("HTTP local reply: %d %v %q", rec.Code, rec.Header(), rec.Body)
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
