// Package retry decides whether a failed upstream attempt is retried and
// when: the retry-on conditions, exponential backoff with full jitter, and a
// retry budget that caps retries to a fraction of recent requests so retries
// can never multiply load on a failing upstream.
package retry

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Condition is one of Envoy's retry_on values.
type Condition string

// Supported retry_on conditions.
const (
	On5xx                  Condition = "5xx"
	OnGatewayError         Condition = "gateway-error"
	OnConnectFailure       Condition = "connect-failure"
	OnReset                Condition = "reset"
	OnRetriable4xx         Condition = "retriable-4xx"
	OnRetriableStatusCodes Condition = "retriable-status-codes"
	OnRefusedStream        Condition = "refused-stream"

	// gRPC conditions (Envoy's x-envoy-retry-grpc-on values) match the
	// grpc-status of a trailers-only response: a status that arrives in
	// trailers, after messages were relayed, is too late to retry.
	OnCancelled         Condition = "cancelled"
	OnDeadlineExceeded  Condition = "deadline-exceeded"
	OnInternal          Condition = "internal"
	OnResourceExhausted Condition = "resource-exhausted"
	OnUnavailable       Condition = "unavailable"
)

// grpcCode is the gRPC status code (google.golang.org/grpc/codes) a gRPC
// condition matches; false for the other conditions.
func grpcCode(c Condition) (int, bool) {
	switch c {
	case OnCancelled:
		return 1, true
	case OnDeadlineExceeded:
		return 4, true
	case OnResourceExhausted:
		return 8, true
	case OnInternal:
		return 13, true
	case OnUnavailable:
		return 14, true
	}
	return 0, false
}

// Known reports whether c is a supported condition.
func Known(c Condition) bool {
	switch c {
	case On5xx, OnGatewayError, OnConnectFailure, OnReset, OnRetriable4xx, OnRetriableStatusCodes, OnRefusedStream:
		return true
	}
	_, ok := grpcCode(c)
	return ok
}

// Outcome is how one upstream attempt ended.
type Outcome struct {
	Status         int  // HTTP status, 0 when there was no response
	ConnectFailure bool // the connection could not be established
	Reset          bool // the connection broke after it was established
	Refused        bool // the upstream refused the stream before processing it (h2 REFUSED_STREAM)
	// GRPCStatus is the grpc-status of a trailers-only gRPC response; 0
	// (OK) when there is none.
	GRPCStatus int
}

// Policy is a route's retry policy.
type Policy struct {
	On            []Condition
	NumRetries    int
	PerTryTimeout time.Duration
	StatusCodes   []int // for retriable-status-codes
	BaseInterval  time.Duration
	MaxInterval   time.Duration
}

// Retryable reports whether o matches one of the policy's conditions.
func (p *Policy) Retryable(o Outcome) bool {
	for _, c := range p.On {
		switch c {
		case On5xx:
			if (o.Status >= 500 && o.Status < 600) || o.ConnectFailure || o.Reset {
				return true
			}
		case OnGatewayError:
			if o.Status == 502 || o.Status == 503 || o.Status == 504 || o.ConnectFailure || o.Reset {
				return true
			}
		case OnConnectFailure:
			if o.ConnectFailure {
				return true
			}
		case OnReset:
			// As Envoy's: any reset reason but overflow, so a connection
			// that could not be made counts too.
			if o.Reset || o.ConnectFailure {
				return true
			}
		case OnRefusedStream:
			if o.Refused {
				return true
			}
		case OnRetriable4xx:
			if o.Status == 409 {
				return true
			}
		case OnRetriableStatusCodes:
			if slices.Contains(p.StatusCodes, o.Status) {
				return true
			}
		default:
			if code, ok := grpcCode(c); ok && o.GRPCStatus == code {
				return true
			}
		}
	}
	return false
}

// Backoff returns the wait before retry number n (1 for the first retry):
// full jitter over [0, min(max, base·2^(n-1))), Envoy's defaults being 25 ms
// base and 10× base max. rnd returns a uniform float in [0,1).
func (p *Policy) Backoff(n int, rnd func() float64) time.Duration {
	base := p.BaseInterval
	if base <= 0 {
		base = 25 * time.Millisecond
	}
	maxI := p.MaxInterval
	if maxI <= 0 {
		maxI = math.MaxInt64 // 10×base would overflow
		if base <= math.MaxInt64/10 {
			maxI = 10 * base
		}
	}
	upper := base
	for i := 1; i < n && upper < maxI; i++ {
		if upper > maxI/2 {
			upper = maxI // doubling would pass the cap, or overflow
			break
		}
		upper *= 2
	}
	upper = min(upper, maxI)
	if rnd == nil {
		rnd = rand.Float64
	}
	return time.Duration(rnd() * float64(upper))
}

// Budget allows a retry only while retries over the last Window stay below
// Ratio × requests over the same window, plus a floor of MinRetries per
// window so a quiet service can still retry at all. Time is injected.
type Budget struct {
	ratio float64
	min   int
	now   func() time.Time

	mu    sync.Mutex
	slots [budgetSlots]budgetSlot
}

// Window is the budget's sliding window, split into budgetSlots slots.
const Window = 10 * time.Second

const budgetSlots = 10

type budgetSlot struct {
	epoch             int64
	requests, retries int
}

// NewBudget returns a budget allowing ratio retries per request (0.2 = 20 %)
// plus minRetries per window. now nil means time.Now.
func NewBudget(ratio float64, minRetries int, now func() time.Time) *Budget {
	if now == nil {
		now = time.Now
	}
	return &Budget{ratio: ratio, min: minRetries, now: now}
}

func (b *Budget) slot() *budgetSlot {
	epoch := b.now().UnixNano() / int64(Window/budgetSlots)
	s := &b.slots[epoch%budgetSlots]
	if s.epoch != epoch {
		*s = budgetSlot{epoch: epoch}
	}
	return s
}

func (b *Budget) sums() (requests, retries int) {
	epoch := b.now().UnixNano() / int64(Window/budgetSlots)
	for _, s := range b.slots {
		if epoch-s.epoch < budgetSlots {
			requests += s.requests
			retries += s.retries
		}
	}
	return requests, retries
}

// Request records one original (non-retry) request.
func (b *Budget) Request() {
	b.mu.Lock()
	b.slot().requests++
	b.mu.Unlock()
}

// TryRetry takes one retry from the budget, reporting false when it is spent.
func (b *Budget) TryRetry() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.slot()
	req, ret := b.sums()
	if float64(ret+1) > b.ratio*float64(req)+float64(b.min) {
		return false
	}
	s.retries++
	return true
}
