// Package fault decides fault injection (Envoy's HTTP fault filter): delay
// and/or abort a configured share of requests, or the requests that ask for
// it through the x-envoy-fault-* headers when the config allows that.
package fault

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// Header names of header-controlled faults (Envoy's names, so tools work unchanged).
const (
	HeaderDelay = "x-envoy-fault-delay-request" // milliseconds
	HeaderAbort = "x-envoy-fault-abort-request" // HTTP status
)

// Config is a fault filter's config. Percentages are parts per million, the
// finest FractionalPercent denominator.
type Config struct {
	DelayPerMillion uint32
	Delay           time.Duration
	DelayFromHeader bool // delay comes from HeaderDelay (DelayPerMillion still applies)

	AbortPerMillion uint32
	AbortStatus     int
	AbortGRPCStatus int  // abort gRPC requests with this grpc-status (when AbortStatus is 0)
	AbortFromHeader bool // status comes from HeaderAbort
}

// Empty reports whether c injects nothing.
func (c *Config) Empty() bool { return c.DelayPerMillion == 0 && c.AbortPerMillion == 0 }

// Decision is what to do to one request.
type Decision struct {
	Delay           time.Duration
	AbortStatus     int // 0: don't abort (unless AbortGRPCStatus)
	AbortGRPCStatus int
	Abort           bool
}

// Decide draws for one request. rnd returns uniform uint32s; nil uses math/rand/v2.
func (c *Config) Decide(h http.Header, rnd func() uint32) Decision {
	if rnd == nil {
		rnd = rand.Uint32
	}
	var d Decision
	if c.DelayPerMillion > 0 && rnd()%1_000_000 < c.DelayPerMillion {
		d.Delay = c.Delay
		if c.DelayFromHeader {
			d.Delay = 0
			if ms, err := strconv.ParseUint(h.Get(HeaderDelay), 10, 32); err == nil {
				d.Delay = time.Duration(ms) * time.Millisecond
			}
		}
	}
	if c.AbortPerMillion > 0 && rnd()%1_000_000 < c.AbortPerMillion {
		d.Abort = true
		d.AbortStatus, d.AbortGRPCStatus = c.AbortStatus, c.AbortGRPCStatus
		if c.AbortFromHeader {
			d.AbortStatus = 0
			if s, err := strconv.Atoi(h.Get(HeaderAbort)); err == nil && s >= 200 && s < 600 {
				d.AbortStatus = s
			}
			d.Abort = d.AbortStatus != 0
		}
	}
	return d
}
