package shop

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// shopServers runs the four real handlers on loopback HTTP servers wired to
// one another, and returns the frontend's URL.
func shopServers(t *testing.T) (frontend string, m *UpstreamMetrics) {
	t.Helper()
	m = NewUpstreamMetrics(prometheus.NewRegistry())
	serve := func(instance string, h http.Handler) *url.URL {
		srv := httptest.NewServer(ServedBy(instance, h))
		t.Cleanup(srv.Close)
		u, _ := url.Parse(srv.URL)
		return u
	}
	up := func(name string, u *url.URL) *Upstream {
		return NewUpstream(name, u, http.DefaultTransport, 5*time.Second, m)
	}
	users := serve("users-1", Users("users-1"))
	billing := serve("billing-1", Billing("billing-1"))
	orders := serve("orders-1", Orders("orders-1", up("billing", billing)))
	return serve("frontend-1", Frontend("frontend-1", up("users", users), up("orders", orders))).String(), m
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

func TestFrontendComposesUserWithOrders(t *testing.T) {
	frontend, m := shopServers(t)
	resp, body := get(t, frontend+"/api/users/42")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/users/42 = %d %s", resp.StatusCode, body)
	}
	if got := resp.Header.Get(ServedByHeader); got != "frontend-1" {
		t.Errorf("%s = %q", ServedByHeader, got)
	}
	var page FrontendAnswer
	if err := json.Unmarshal([]byte(body), &page); err != nil {
		t.Fatal(err)
	}
	if page.User.ID != 42 || page.User.ServedBy != "users-1" || page.ServedBy != "frontend-1" || page.OrdersServedBy != "orders-1" {
		t.Errorf("page = %+v", page)
	}
	if len(page.Orders) == 0 {
		t.Fatal("no orders")
	}
	for _, o := range page.Orders {
		if o.UserID != 42 || o.Invoice.OrderID != o.ID || o.Invoice.ServedBy != "billing-1" || o.Invoice.Status == "" {
			t.Errorf("order = %+v", o)
		}
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("billing", "200")); got != float64(len(page.Orders)) {
		t.Errorf("billing calls counted = %v, want %d", got, len(page.Orders))
	}
}

func TestFrontendErrors(t *testing.T) {
	frontend, _ := shopServers(t)
	for _, tc := range []struct {
		path string
		code int
		want string
	}{
		{"/api/users/9999", http.StatusNotFound, "user 9999 not found"},
		{"/api/users/abc", http.StatusBadRequest, `id: want a positive integer, got \"abc\"`},
		{"/api/users/0", http.StatusBadRequest, "id: want a positive integer"},
		{"/nope", http.StatusNotFound, ""},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp, body := get(t, frontend+tc.path)
			if resp.StatusCode != tc.code || !strings.Contains(body, tc.want) {
				t.Errorf("GET %s = %d %s, want %d with %q", tc.path, resp.StatusCode, body, tc.code, tc.want)
			}
			if resp.Header.Get(ServedByHeader) != "frontend-1" {
				t.Errorf("error answer lacks %s", ServedByHeader)
			}
		})
	}
}

func TestUpstreamDownIsBadGateway(t *testing.T) {
	m := NewUpstreamMetrics(prometheus.NewRegistry())
	dead, _ := url.Parse("http://127.0.0.1:1")
	users := NewUpstream("users", dead, http.DefaultTransport, time.Second, m)
	srv := httptest.NewServer(Frontend("frontend-1", users, users))
	defer srv.Close()
	resp, body := get(t, srv.URL+"/api/users/1")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "call users at") {
		t.Errorf("= %d %s, want 502 naming users", resp.StatusCode, body)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("users", "error")); got != 1 {
		t.Errorf("failed calls counted = %v", got)
	}
}

func TestUpstreamSendsServiceNameAsHost(t *testing.T) {
	var host string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host = r.Host
		_, _ = w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	base, _ := url.Parse(srv.URL + "/prefix")
	up := NewUpstream("billing", base, http.DefaultTransport, time.Second, NewUpstreamMetrics(prometheus.NewRegistry()))
	var v map[string]any
	if err := up.GetJSON(t.Context(), "/invoices/11", &v); err != nil {
		t.Fatal(err)
	}
	if host != "billing" {
		t.Errorf("Host = %q, want the service name", host)
	}
}

func TestHealthz(t *testing.T) {
	for name, h := range map[string]http.Handler{"users": Users("u"), "billing": Billing("u")} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"served_by":"u"`) {
			t.Errorf("%s /healthz = %d %s", name, rec.Code, rec.Body)
		}
	}
}
