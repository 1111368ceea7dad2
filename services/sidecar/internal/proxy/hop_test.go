package proxy

import (
	"maps"
	"net/http"
	"slices"
	"testing"
)

func TestRemoveHopHeaders(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   http.Header
		want []string // the names left
	}{
		{"none to remove", http.Header{"Host": {"users"}, "Accept": {"*/*"}}, []string{"Accept", "Host"}},
		{"every hop-by-hop field", http.Header{
			"Connection": {"close"}, "Proxy-Connection": {"keep-alive"}, "Keep-Alive": {"timeout=5"},
			"Proxy-Authenticate": {"Basic"}, "Proxy-Authorization": {"Basic eA=="}, "Te": {"trailers"},
			"Trailer": {"Grpc-Status"}, "Transfer-Encoding": {"chunked"}, "Upgrade": {"websocket"},
			"Content-Length": {"3"},
		}, []string{"Content-Length"}},
		{"names Connection lists, any case, with spaces", http.Header{
			"Connection": {"x-secret, X-Other ,", "keep-alive"}, "X-Secret": {"1"}, "X-Other": {"2"}, "X-Kept": {"3"},
		}, []string{"X-Kept"}},
		{"same length as a hop-by-hop name", http.Header{"Tx": {"1"}, "Content-Lenght": {"2"}, "Accept-Encoding": {"gzip"}, "X-Transfer-Encodin": {"3"}}, []string{"Accept-Encoding", "Content-Lenght", "Tx", "X-Transfer-Encodin"}},
		{"only the canonical form is a hop-by-hop name", http.Header{"te": {"trailers"}}, []string{"te"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			removeHopHeaders(tc.in)
			if got := slices.Sorted(maps.Keys(tc.in)); !slices.Equal(got, tc.want) {
				t.Fatalf("left %v, want %v", got, tc.want)
			}
		})
	}
}

// BenchmarkRemoveHopHeaders is the request and the response headers of a
// proxied call, as the pair benchmark sends them.
func BenchmarkRemoveHopHeaders(b *testing.B) {
	req := http.Header{"User-Agent": {"h1load"}, "Accept-Encoding": {"gzip"}, "X-Request-Id": {"3f0c"},
		"X-Forwarded-For": {"127.0.0.1"}, "X-Forwarded-Proto": {"http"}, "Traceparent": {"00-1-2-01"}}
	resp := http.Header{"Content-Length": {"1024"}, "Content-Type": {"text/plain"}, "Date": {"Tue, 01 Dec 2026 13:00:00 GMT"}}
	b.ReportAllocs()
	for b.Loop() {
		removeHopHeaders(req)
		removeHopHeaders(resp)
	}
}
