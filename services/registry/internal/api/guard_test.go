package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestGuardWrites(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	tests := []struct {
		name, token, method, remote, auth string
		want                              int
	}{
		{"read from anywhere", "", http.MethodGet, "10.0.0.9:4000", "", http.StatusOK},
		{"write from loopback", "", http.MethodPost, "127.0.0.1:4000", "", http.StatusOK},
		{"write from ipv6 loopback", "", http.MethodPost, "[::1]:4000", "", http.StatusOK},
		{"write from another host", "", http.MethodPost, "10.0.0.9:4000", "", http.StatusForbidden},
		{"token required even on loopback", "s3cret", http.MethodPost, "127.0.0.1:4000", "", http.StatusUnauthorized},
		{"wrong token", "s3cret", http.MethodPost, "10.0.0.9:4000", "Bearer nope", http.StatusUnauthorized},
		{"not a bearer header", "s3cret", http.MethodPost, "10.0.0.9:4000", "s3cret", http.StatusUnauthorized},
		{"right token from another host", "s3cret", http.MethodPost, "10.0.0.9:4000", "Bearer s3cret", http.StatusOK},
		{"reads need no token", "s3cret", http.MethodGet, "10.0.0.9:4000", "", http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, "/v1/register", strings.NewReader("{}"))
			req.RemoteAddr = tc.remote
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			rec := httptest.NewRecorder()
			guardWrites(tc.token)(ok).ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Errorf("status %d (%s), want %d", rec.Code, rec.Body, tc.want)
			}
			if rec.Code != http.StatusOK && !strings.Contains(rec.Body.String(), "write_token") {
				t.Errorf("refusal %q does not say how to write", rec.Body)
			}
		})
	}
}
