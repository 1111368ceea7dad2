package decider

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/limits"
	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/quota"
	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/store"
)

const rulesYAML = `
domain: api
descriptors:
  - key: path
    value: /seed
    rate_limit: {unit: second, requests_per_unit: 10}
  - key: plan
    value: free
    descriptors:
      - key: user
        rate_limits:
          - {unit: hour, requests_per_unit: 100}
          - {unit: day, requests_per_unit: 1000}
  - key: plan
    value: pro
    descriptors:
      - key: user
        rate_limit: {unit: hour, requests_per_unit: 10000}
  - key: shadow
    shadow_mode: true
    rate_limit: {unit: minute, requests_per_unit: 1}
  - key: static
    unlimited: true
`

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// countingStore counts calls to the memory store beneath it and can be
// made to fail.
type countingStore struct {
	*store.Memory
	mu    sync.Mutex
	calls int
	err   error
}

func (s *countingStore) Decide(ctx context.Context, now time.Time, cs []quota.Check, commit bool) (store.Result, error) {
	s.mu.Lock()
	s.calls++
	err := s.err
	s.mu.Unlock()
	if err != nil {
		return store.Result{}, err
	}
	return s.Memory.Decide(ctx, now, cs, commit)
}

func (s *countingStore) Ping(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *countingStore) set(err error) { s.mu.Lock(); s.err = err; s.mu.Unlock() }
func (s *countingStore) n() int        { s.mu.Lock(); defer s.mu.Unlock(); return s.calls }

func newDecider(t *testing.T, failOpen bool) (*Decider, *countingStore, *clock, *Metrics) {
	t.Helper()
	rules, err := limits.Parse("rules.yaml", []byte(rulesYAML))
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{now: time.Date(2026, 11, 22, 0, 0, 0, 100_000_000, time.UTC)}
	st := &countingStore{Memory: store.NewMemory()}
	m := NewMetrics(prometheus.NewRegistry())
	d := New(Config{Timeout: 25 * time.Millisecond, FailOpen: failOpen, ProbeInterval: time.Millisecond, Clock: clk.Now, Metrics: m, Log: slog.New(slog.DiscardHandler)}, st, rules)
	return d, st, clk, m
}

func req(domain string, kv ...string) Request {
	var es []limits.Entry
	for i := 0; i+1 < len(kv); i += 2 {
		es = append(es, limits.Entry{Key: kv[i], Value: kv[i+1]})
	}
	return Request{Domain: domain, Descriptors: []Descriptor{{Entries: es}}}
}

func decide(t *testing.T, d *Decider, r Request) Response {
	t.Helper()
	resp, err := d.Decide(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func header(resp Response, name string) string {
	for _, h := range resp.Headers {
		if h.Name == name {
			return h.Value
		}
	}
	return ""
}

func TestSeedScenario(t *testing.T) {
	d, st, _, m := newDecider(t, true)
	var codes []Code
	for range 15 {
		codes = append(codes, decide(t, d, req("api", "path", "/seed")).Code)
	}
	for i, c := range codes {
		if want := map[bool]Code{true: OK, false: OverLimit}[i < 10]; c != want {
			t.Fatalf("codes = %v: request %d is %v, want %v", codes, i, c, want)
		}
	}
	resp := decide(t, d, req("api", "path", "/seed"))
	wantHeaders := []Header{{"X-RateLimit-Limit", "10"}, {"X-RateLimit-Remaining", "0"}, {"X-RateLimit-Reset", "1"}, {"Retry-After", "1"}}
	if !reflect.DeepEqual(resp.Headers, wantHeaders) {
		t.Fatalf("headers = %v, want %v", resp.Headers, wantHeaders)
	}
	// The 10th request exhausted the key: the 5 refusals after it (and the
	// one above) came from the cache, not the store.
	if st.n() != 10 {
		t.Fatalf("store calls = %d, want 10", st.n())
	}
	if got := testutil.ToFloat64(m.decisions.WithLabelValues("api", "path=/seed", "over_limit")); got != 6 {
		t.Fatalf("over_limit decisions = %v, want 6", got)
	}
	if got := testutil.ToFloat64(m.cacheHits); got != 6 {
		t.Fatalf("cache hits = %v, want 6", got)
	}
	if got := testutil.ToFloat64(m.nearLimit.WithLabelValues("api", "path=/seed")); got != 2 {
		t.Fatalf("near limit = %v, want 2 (the 9th and 10th requests)", got)
	}
}

func TestNextWindowAllowsAgain(t *testing.T) {
	d, _, clk, _ := newDecider(t, true)
	for range 11 {
		decide(t, d, req("api", "path", "/seed"))
	}
	clk.Add(time.Second)
	if resp := decide(t, d, req("api", "path", "/seed")); resp.Code != OK || header(resp, "X-RateLimit-Remaining") != "9" {
		t.Fatalf("next window: %+v", resp)
	}
}

func TestTiers(t *testing.T) {
	d, _, clk, _ := newDecider(t, true)
	count := func(n int, kv ...string) int {
		ok := 0
		for range n {
			if decide(t, d, req("api", kv...)).Code == OK {
				ok++
			}
		}
		return ok
	}
	// Free: 100 an hour.
	if got := count(150, "plan", "free", "user", "alice"); got != 100 {
		t.Fatalf("free hour 1: %d allowed, want 100", got)
	}
	resp := decide(t, d, req("api", "plan", "free", "user", "alice"))
	if resp.Code != OverLimit || header(resp, "X-RateLimit-Limit") != "100" {
		t.Fatalf("free over hourly: %+v", resp)
	}
	// Each user has their own quota; pro has 10,000 an hour.
	if got := count(100, "plan", "free", "user", "bob"); got != 100 {
		t.Fatalf("bob: %d", got)
	}
	if got := count(500, "plan", "pro", "user", "alice"); got != 500 {
		t.Fatalf("pro: %d allowed, want 500", got)
	}
	// Over a day the daily 1,000 caps the free tier: 10 hours × 100, then
	// nothing for the rest of the day even in a fresh hour.
	allowed := 100
	for range 11 {
		clk.Add(time.Hour)
		allowed += count(120, "plan", "free", "user", "alice")
	}
	if allowed != 1000 {
		t.Fatalf("free day: %d allowed, want 1000", allowed)
	}
	resp = decide(t, d, req("api", "plan", "free", "user", "alice"))
	if resp.Code != OverLimit || header(resp, "X-RateLimit-Limit") != "1000" {
		t.Fatalf("daily refusal should name the daily limit: %+v", resp.Headers)
	}
	if ra := header(resp, "Retry-After"); ra == "" || ra == "1" {
		t.Fatalf("Retry-After = %q, want until midnight", ra)
	}
	clk.Add(13 * time.Hour) // next day
	if got := count(1, "plan", "free", "user", "alice"); got != 1 {
		t.Fatal("next day still refused")
	}
}

func TestStatusesAndKinds(t *testing.T) {
	d, _, _, _ := newDecider(t, true)
	r := Request{Domain: "api", Descriptors: []Descriptor{
		{Entries: []limits.Entry{{Key: "static", Value: "x"}}},
		{Entries: []limits.Entry{{Key: "nothing", Value: "x"}}},
		{Entries: []limits.Entry{{Key: "shadow", Value: "x"}}},
		{Entries: []limits.Entry{{Key: "path", Value: "/seed"}}},
	}}
	decide(t, d, r)
	resp := decide(t, d, r)
	if resp.Code != OK {
		t.Fatalf("shadow refused the request: %+v", resp)
	}
	st := resp.Statuses
	if !st[0].Unlimited || st[0].Limit != nil || st[1].Rule != "" || !st[2].Shadow || st[2].Code != OK || st[2].Remaining != 0 || st[3].Remaining != 8 {
		t.Fatalf("statuses = %+v", st)
	}
	if header(resp, "X-RateLimit-Remaining") != "8" {
		t.Fatalf("headers should ignore shadow limits: %v", resp.Headers)
	}
}

func TestOverrideAndHits(t *testing.T) {
	d, _, _, _ := newDecider(t, true)
	l := limits.Limit{Unit: limits.Minute, RequestsPerUnit: 5, Burst: 5}
	r := Request{Domain: "api", Hits: 3, Descriptors: []Descriptor{{Entries: []limits.Entry{{Key: "path", Value: "/seed"}}, Override: &l}}}
	if resp := decide(t, d, r); resp.Code != OK || resp.Statuses[0].Remaining != 2 {
		t.Fatalf("first: %+v", resp.Statuses)
	}
	if resp := decide(t, d, r); resp.Code != OverLimit || resp.Statuses[0].Remaining != 2 {
		t.Fatalf("second: %+v", resp.Statuses)
	}
	r.Descriptors[0].Hits = 2
	if resp := decide(t, d, r); resp.Code != OK {
		t.Fatalf("descriptor hits: %+v", resp.Statuses)
	}
	// The configured 10/s limit was never touched.
	if resp := decide(t, d, req("api", "path", "/seed")); resp.Statuses[0].Remaining != 9 {
		t.Fatalf("configured limit: %+v", resp.Statuses)
	}
}

func TestDryRunConsumesNothing(t *testing.T) {
	d, _, _, m := newDecider(t, true)
	r := req("api", "path", "/seed")
	r.DryRun = true
	for range 20 {
		if resp := decide(t, d, r); resp.Code != OK || resp.Statuses[0].Remaining != 9 {
			t.Fatalf("dry run: %+v", resp)
		}
	}
	if n := testutil.CollectAndCount(m.decisions); n != 0 {
		t.Fatalf("dry runs recorded %d series", n)
	}
}

func TestFailureModes(t *testing.T) {
	for _, failOpen := range []bool{true, false} {
		t.Run(fmt.Sprintf("fail_open=%v", failOpen), func(t *testing.T) {
			d, st, _, m := newDecider(t, failOpen)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error)
			go func() { done <- d.Run(ctx) }()
			defer func() { cancel(); <-done }()

			st.set(errors.New("connection refused"))
			want := OverLimit
			if failOpen {
				want = OK
			}
			for i := range 10 {
				resp := decide(t, d, req("api", "path", "/seed"))
				if resp.Code != want {
					t.Fatalf("request %d during outage: %v, want %v", i, resp.Code, want)
				}
			}
			if st.n() != 3 {
				t.Fatalf("store calls during outage = %d, want 3 (then marked down)", st.n())
			}
			if d.Healthy(ctx) == nil || testutil.ToFloat64(m.backendUp) != 0 {
				t.Fatal("backend not reported down")
			}
			counter := m.failClosed
			if failOpen {
				counter = m.failOpen
			}
			if got := testutil.ToFloat64(counter); got != 10 {
				t.Fatalf("failure-mode count = %v, want 10", got)
			}
			st.set(nil)
			deadline := time.Now().Add(2 * time.Second)
			for d.Healthy(ctx) != nil {
				if time.Now().After(deadline) {
					t.Fatal("decider did not notice the store is back")
				}
				time.Sleep(time.Millisecond)
			}
			if resp := decide(t, d, req("api", "path", "/seed")); resp.Code != OK || resp.Source != FromStore || resp.Statuses[0].Remaining != 9 {
				t.Fatalf("after recovery: %+v", resp)
			}
		})
	}
}

func TestKnownOverRefusesWhileStoreDown(t *testing.T) {
	d, st, _, _ := newDecider(t, true)
	for range 10 {
		decide(t, d, req("api", "path", "/seed"))
	}
	st.set(errors.New("down"))
	if resp := decide(t, d, req("api", "path", "/seed")); resp.Code != OverLimit || resp.Source != FromCache {
		t.Fatalf("known-over key during outage: %+v", resp)
	}
}

func TestSetRulesClearsCache(t *testing.T) {
	d, _, _, _ := newDecider(t, true)
	for range 10 {
		decide(t, d, req("api", "path", "/seed"))
	}
	rules, err := limits.Parse("new.yaml", []byte("domain: api\ndescriptors:\n  - key: path\n    value: /seed\n    rate_limit: {unit: second, requests_per_unit: 20}\n"))
	if err != nil {
		t.Fatal(err)
	}
	d.SetRules(rules)
	if resp := decide(t, d, req("api", "path", "/seed")); resp.Code != OK {
		t.Fatalf("after raising the limit: %+v", resp)
	}
}

func TestInvalidRequests(t *testing.T) {
	d, _, _, _ := newDecider(t, true)
	for name, r := range map[string]Request{
		"no domain":      {Descriptors: []Descriptor{{Entries: []limits.Entry{{Key: "k"}}}}},
		"no descriptors": {Domain: "api"},
		"empty entries":  {Domain: "api", Descriptors: []Descriptor{{}}},
		"empty key":      {Domain: "api", Descriptors: []Descriptor{{Entries: []limits.Entry{{Value: "v"}}}}},
	} {
		if _, err := d.Decide(context.Background(), r); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

func TestTimeoutsDoNotMarkStoreDown(t *testing.T) {
	d, st, _, m := newDecider(t, true)
	st.set(fmt.Errorf("redis decide: %w", context.DeadlineExceeded))
	for range 10 {
		if resp := decide(t, d, req("api", "path", "/seed")); resp.Code != OK || resp.Source != FromFailOpen {
			t.Fatalf("timeout: %+v", resp)
		}
	}
	if d.Healthy(context.Background()) != nil || st.n() != 10 {
		t.Fatalf("a slow store was marked down (calls %d)", st.n())
	}
	if got := testutil.ToFloat64(m.backendErrors.WithLabelValues("timeout")); got != 10 {
		t.Fatalf("timeouts = %v", got)
	}
}
