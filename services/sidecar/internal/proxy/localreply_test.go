package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

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
	reply(&statusWriter{ResponseWriter: rec}, r, http.StatusForbidden, "rbac_denied", "denied")
	if rec.Code != http.StatusForbidden || rec.Body.String() != "denied\n" || rec.Header().Get("Grpc-Status") != "" {
		t.Fatalf("HTTP local reply: %d %v %q", rec.Code, rec.Header(), rec.Body)
	}
}
