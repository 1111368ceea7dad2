package debugapi

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/decider"
	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/limits"
	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/store"
)

func TestDecideAndRules(t *testing.T) {
	rules, err := limits.Parse("r.yaml", []byte(`
domain: api
descriptors:
  - key: plan
    value: free
    descriptors:
      - key: user
        rate_limits:
          - {unit: hour, requests_per_unit: 100}
          - {unit: second, requests_per_unit: 5, algorithm: gcra, burst: 2}
`))
	if err != nil {
		t.Fatal(err)
	}
	d := decider.New(decider.Config{Timeout: time.Second, Log: slog.New(slog.DiscardHandler)}, store.NewMemory(), rules)
	mux := http.NewServeMux()
	Register(mux.Handle, d)

	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		return rec.Code, rec.Body.String()
	}
	for range 3 { // a dry run never consumes
		code, body := get("/debug/decide?domain=api&descriptor=plan=free,user=alice&descriptor=other=x")
		if code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		var out decisionJSON
		if err := json.Unmarshal([]byte(body), &out); err != nil {
			t.Fatal(err)
		}
		st := out.Statuses[0]
		if out.Code != "ok" || st.Rule != "plan=free.user" || *st.Remaining != 1 || st.Limit.Algorithm != "gcra" || out.Statuses[1].Rule != "" {
			t.Fatalf("decision = %s", body)
		}
		if out.Headers["X-RateLimit-Remaining"] != "1" {
			t.Fatalf("headers = %v", out.Headers)
		}
	}
	if code, body := get("/debug/decide?domain=api&descriptor==x"); code != 400 || !strings.Contains(body, "descriptor[0]: entry 0 has no key") {
		t.Fatalf("bad descriptor: %d %s", code, body)
	}
	if code, body := get("/debug/decide?domain=api"); code != 400 || !strings.Contains(body, "no descriptors") {
		t.Fatalf("no descriptor: %d %s", code, body)
	}
	code, body := get("/debug/rules")
	if code != 200 || !strings.Contains(body, `"descriptor": "plan=free.user"`) || !strings.Contains(body, `"burst": 2`) {
		t.Fatalf("rules: %d %s", code, body)
	}
}
