package fault

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestUpdate(t *testing.T) {
	cur := Settings{Latency: 10 * time.Millisecond, ErrorRate: 0.5}
	for _, tc := range []struct {
		name    string
		query   string
		want    Settings
		wantErr string
	}{
		{"both", "latency=50ms&error_rate=0.1", Settings{50 * time.Millisecond, 0.1}, ""},
		{"latency only keeps rate", "latency=0s", Settings{0, 0.5}, ""},
		{"rate only keeps latency", "error_rate=1", Settings{10 * time.Millisecond, 1}, ""},
		{"nothing", "", cur, ""},
		{"bad duration", "latency=fast", cur, "latency: want a duration"},
		{"negative latency", "latency=-1s", cur, "latency: want 0 to"},
		{"huge latency", "latency=2h", cur, "latency: want 0 to"},
		{"rate above one", "error_rate=1.5", cur, "error_rate: want 0 to 1"},
		{"rate NaN", "error_rate=NaN", cur, "error_rate: want 0 to 1"},
		{"rate not a number", "error_rate=lots", cur, "error_rate: want a number"},
		{"unknown", "jitter=5ms", cur, "jitter: unknown parameter"},
		{"repeated", "latency=1ms&latency=2ms", cur, "latency: give it once"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Update(cur, q)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Update(%q) error = %v, want %q", tc.query, err, tc.wantErr)
				}
			} else if err != nil {
				t.Fatalf("Update(%q): %v", tc.query, err)
			}
			if got != tc.want {
				t.Errorf("Update(%q) = %+v, want %+v", tc.query, got, tc.want)
			}
		})
	}
}

func FuzzUpdate(f *testing.F) {
	for _, s := range []string{"latency=50ms&error_rate=0.1", "error_rate=NaN", "latency=-1h", "x=%zz", "error_rate=1e309"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		got, err := Update(Settings{}, q)
		if err != nil {
			if got != (Settings{}) {
				t.Fatalf("failed Update changed settings to %+v", got)
			}
			return
		}
		if got.Validate() != nil || math.IsNaN(got.ErrorRate) {
			t.Fatalf("Update(%q) accepted invalid %+v", raw, got)
		}
	})
}

func TestMiddleware(t *testing.T) {
	reg := prometheus.NewRegistry()
	var slept time.Duration
	draws := []float64{0.05, 0.5}
	inj := New("users-1", Settings{Latency: 30 * time.Millisecond, ErrorRate: 0.1}, reg,
		WithRand(func() float64 { d := draws[0]; draws = draws[1:]; return d }),
		WithSleep(func(_ context.Context, d time.Duration) error { slept += d; return nil }))
	h := inj.Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) }))

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), `"served_by":"users-1"`) {
		t.Errorf("draw 0.05 < 0.1: got %d %s, want an injected 503 naming the instance", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusTeapot {
		t.Errorf("draw 0.5 >= 0.1: got %d, want the handler's answer", rec.Code)
	}
	if slept != 60*time.Millisecond {
		t.Errorf("slept %s, want 60ms over two requests", slept)
	}
	if got := testutil.ToFloat64(inj.injected.WithLabelValues("error")); got != 1 {
		t.Errorf("errors injected = %v, want 1", got)
	}
	if got := testutil.ToFloat64(inj.injected.WithLabelValues("latency")); got != 2 {
		t.Errorf("latencies injected = %v, want 2", got)
	}
}

func TestMiddlewareStopsWhenClientLeaves(t *testing.T) {
	inj := New("a", Settings{Latency: time.Minute}, prometheus.NewRegistry())
	called := false
	h := inj.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called = true }))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan struct{})
	go func() {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil).WithContext(ctx))
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("injected latency ignored the cancelled request")
	}
	if called {
		t.Error("handler ran after the client went away")
	}
}

func TestAdminHandler(t *testing.T) {
	inj := New("a", Settings{}, prometheus.NewRegistry())
	h := inj.AdminHandler()

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/admin/fault?latency=50ms&error_rate=0.25", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("POST = %d %s", rec.Code, rec.Body)
	}
	var got struct {
		Latency   string  `json:"latency"`
		ErrorRate float64 `json:"error_rate"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || got.Latency != "50ms" || got.ErrorRate != 0.25 {
		t.Fatalf("POST answered %s (%v)", rec.Body, err)
	}
	if s := inj.Settings(); s != (Settings{50 * time.Millisecond, 0.25}) {
		t.Errorf("settings after POST = %+v", s)
	}

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/admin/fault?error_rate=2", nil))
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "error_rate") {
		t.Errorf("bad POST = %d %s, want 400 naming error_rate", rec.Code, rec.Body)
	}
	if s := inj.Settings(); s.ErrorRate != 0.25 {
		t.Errorf("rejected POST changed settings to %+v", s)
	}

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodDelete, "/admin/fault", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("DELETE = %d", rec.Code)
	}
}
