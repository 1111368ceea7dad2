package retry

import (
	"testing"
	"time"
)

func TestRetryable(t *testing.T) {
	tests := []struct {
		name string
		p    Policy
		o    Outcome
		want bool
	}{
		{"5xx on 500", Policy{On: []Condition{On5xx}}, Outcome{Status: 500}, true},
		{"5xx on connect failure", Policy{On: []Condition{On5xx}}, Outcome{ConnectFailure: true}, true},
		{"5xx not on 404", Policy{On: []Condition{On5xx}}, Outcome{Status: 404}, false},
		{"5xx not on 600", Policy{On: []Condition{On5xx}}, Outcome{Status: 600}, false},
		{"gateway-error on 503", Policy{On: []Condition{OnGatewayError}}, Outcome{Status: 503}, true},
		{"gateway-error not on 500", Policy{On: []Condition{OnGatewayError}}, Outcome{Status: 500}, false},
		{"connect-failure only", Policy{On: []Condition{OnConnectFailure}}, Outcome{Reset: true}, false},
		{"reset", Policy{On: []Condition{OnReset}}, Outcome{Reset: true}, true},
		{"reset on connect failure", Policy{On: []Condition{OnReset}}, Outcome{ConnectFailure: true}, true},
		{"reset not on a 503", Policy{On: []Condition{OnReset}}, Outcome{Status: 503}, false},
		{"retriable-4xx is 409", Policy{On: []Condition{OnRetriable4xx}}, Outcome{Status: 409}, true},
		{"status codes", Policy{On: []Condition{OnRetriableStatusCodes}, StatusCodes: []int{429}}, Outcome{Status: 429}, true},
		{"status codes miss", Policy{On: []Condition{OnRetriableStatusCodes}, StatusCodes: []int{429}}, Outcome{Status: 503}, false},
		{"refused stream", Policy{On: []Condition{OnRefusedStream}}, Outcome{Refused: true}, true},
		{"refused stream is not a reset", Policy{On: []Condition{OnRefusedStream}}, Outcome{Reset: true}, false},
		{"no conditions", Policy{}, Outcome{Status: 503}, false},
		{"unavailable", Policy{On: []Condition{OnUnavailable}}, Outcome{Status: 200, GRPCStatus: 14}, true},
		{"cancelled", Policy{On: []Condition{OnCancelled}}, Outcome{Status: 200, GRPCStatus: 1}, true},
		{"deadline-exceeded", Policy{On: []Condition{OnDeadlineExceeded}}, Outcome{Status: 200, GRPCStatus: 4}, true},
		{"resource-exhausted", Policy{On: []Condition{OnResourceExhausted}}, Outcome{Status: 200, GRPCStatus: 8}, true},
		{"internal", Policy{On: []Condition{OnInternal}}, Outcome{Status: 200, GRPCStatus: 13}, true},
		{"unavailable not on internal", Policy{On: []Condition{OnUnavailable}}, Outcome{Status: 200, GRPCStatus: 13}, false},
		{"unavailable not on an HTTP 503", Policy{On: []Condition{OnUnavailable}}, Outcome{Status: 503}, false},
		{"unavailable not on OK", Policy{On: []Condition{OnUnavailable, OnCancelled}}, Outcome{Status: 200}, false},
		{"5xx not on a gRPC error in a 200", Policy{On: []Condition{On5xx}}, Outcome{Status: 200, GRPCStatus: 14}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.Retryable(tt.o); got != tt.want {
				t.Fatalf("Retryable = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestKnown(t *testing.T) {
	for _, c := range append(append([]Condition{}, allConditions...), grpcConditions...) {
		if !Known(c) {
			t.Errorf("%s is not Known", c)
		}
	}
	for _, c := range []Condition{"retriable-headers", "reset-before-request", "", "UNAVAILABLE"} {
		if Known(c) {
			t.Errorf("%q is Known", c)
		}
	}
}

func TestBackoff(t *testing.T) {
	p := Policy{BaseInterval: 10 * time.Millisecond, MaxInterval: 50 * time.Millisecond}
	one := func() float64 { return 0.999999 }
	tests := []struct {
		n    int
		want time.Duration
	}{{1, 10 * time.Millisecond}, {2, 20 * time.Millisecond}, {3, 40 * time.Millisecond}, {4, 50 * time.Millisecond}, {10, 50 * time.Millisecond}}
	for _, tt := range tests {
		got := p.Backoff(tt.n, one)
		if got > tt.want || got < tt.want*99/100 {
			t.Errorf("Backoff(%d) upper = %v, want ≈%v", tt.n, got, tt.want)
		}
		if z := p.Backoff(tt.n, func() float64 { return 0 }); z != 0 {
			t.Errorf("full jitter must reach 0, got %v", z)
		}
	}
	huge := Policy{BaseInterval: 1 << 62} // 10×base and base·2 overflow int64
	for _, n := range []int{1, 2, 3} {
		if got := huge.Backoff(n, one); got < huge.BaseInterval/100*99 {
			t.Errorf("Backoff(%d) with base %v = %v, want about the base or more", n, huge.BaseInterval, got)
		}
	}
	def := Policy{}
	if got := def.Backoff(20, one); got > 250*time.Millisecond {
		t.Errorf("default max is 250ms, got %v", got)
	}
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestBudgetBoundsRetries(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	b := NewBudget(0.2, 0, clk.now)
	allowed := 0
	for range 1000 {
		b.Request()
		// The upstream fails every time: try to retry up to 3 times.
		for range 3 {
			if b.TryRetry() {
				allowed++
			}
		}
	}
	if allowed > 200 || allowed < 199 {
		t.Fatalf("%d retries allowed for 1000 requests at 20%%, want 200", allowed)
	}
}

func TestBudgetWindowSlides(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	b := NewBudget(0.5, 1, clk.now)
	if !b.TryRetry() {
		t.Fatal("the floor allows one retry with no traffic")
	}
	if b.TryRetry() {
		t.Fatal("second retry exceeds the floor")
	}
	for range 10 {
		b.Request()
	}
	for i := range 5 {
		if !b.TryRetry() {
			t.Fatalf("retry %d of 5 refused", i)
		}
	}
	if b.TryRetry() {
		t.Fatal("retry beyond 0.5×10+1 allowed")
	}
	clk.t = clk.t.Add(Window + time.Second)
	if !b.TryRetry() || b.TryRetry() {
		t.Fatal("after the window only the floor should remain")
	}
}
