// Package quota is the arithmetic of the two rate-limit algorithms, fixed
// window and GCRA, over one integer of stored state per key, and the rule
// that decides all limits of one request together: a request passes only if
// every limit that is not in shadow mode has room for its hits, and only a
// request that passes consumes anything.
//
// The Redis backend runs the same arithmetic in a Lua script; the in-memory
// backend calls Decide directly. Times are Unix microseconds so both sides
// compute in exact integers (Lua numbers are doubles, exact below 2^53).
package quota

import (
	"strconv"
	"strings"
	"time"

	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/limits"
)

// Check is one limit applied to one key for one request.
type Check struct {
	// Key is where the state lives; see KeyFor.
	Key   string
	Limit limits.Limit
	// Hits is how much the request consumes, at least 1.
	Hits uint32
	// Shadow checks are evaluated but never refuse the request.
	Shadow bool
}

// Params are a check reduced to the integers the algorithms need.
type Params struct {
	GCRA bool
	// Limit is requests per unit; 0 refuses everything.
	Limit int64
	// Hits consumed by this request; 0 only to look without consuming.
	Hits int64
	// WindowEnd is the end of the current fixed window (µs).
	WindowEnd int64
	// Interval is GCRA's emission interval, one unit divided by Limit (µs).
	Interval int64
	// Burst is how many hits GCRA admits at once.
	Burst int64
	// Period is one unit (µs).
	Period int64
	Shadow bool
}

// ParamsFor computes the parameters of c at now (µs).
func ParamsFor(c Check, now int64) Params {
	period := c.Limit.Unit.Period().Microseconds()
	p := Params{
		GCRA:   c.Limit.Algorithm == limits.GCRA,
		Limit:  int64(c.Limit.RequestsPerUnit),
		Hits:   int64(max(c.Hits, 1)),
		Burst:  int64(c.Limit.Burst),
		Period: period,
		Shadow: c.Shadow,
	}
	p.WindowEnd = (now/period + 1) * period
	if p.Limit > 0 {
		p.Interval = max(period/p.Limit, 1)
	}
	return p
}

// Outcome is what one check says about the request.
type Outcome struct {
	// Over means the check has no room for the request's hits.
	Over bool
	// Remaining is how many hits are left after this request (if it passed).
	Remaining int64
	// Reset is the time (µs) until the limit is fully available again: the
	// end of the fixed window, or until the GCRA bucket is full.
	Reset int64
	// RetryAfter is the time (µs) until at least one hit fits; 0 when
	// Remaining > 0.
	RetryAfter int64
}

// Write is the new state of a key and when it may be forgotten (µs).
type Write struct {
	Value    int64
	ExpireAt int64
}

// Evaluate applies one check to its stored state (0 when absent). It
// returns the outcome and the state to write if the request passes.
func Evaluate(p Params, now, stored int64) (Outcome, Write) {
	if p.Limit <= 0 {
		reset := p.Period
		if !p.GCRA {
			reset = p.WindowEnd - now
		}
		return Outcome{Over: true, Reset: reset, RetryAfter: reset}, Write{}
	}
	if !p.GCRA {
		count := stored + p.Hits
		if count > p.Limit {
			return Outcome{Over: true, Remaining: max(p.Limit-stored, 0), Reset: p.WindowEnd - now, RetryAfter: p.WindowEnd - now}, Write{}
		}
		o := Outcome{Remaining: p.Limit - count, Reset: p.WindowEnd - now}
		if o.Remaining == 0 {
			o.RetryAfter = o.Reset
		}
		return o, Write{Value: count, ExpireAt: p.WindowEnd}
	}
	tat := max(stored, now)
	tolerance := p.Burst * p.Interval
	newTAT := tat + p.Hits*p.Interval
	if newTAT-tolerance > now {
		return Outcome{
			Over:       true,
			Remaining:  max((tolerance-(tat-now))/p.Interval, 0),
			Reset:      tat - now,
			RetryAfter: max(tat+p.Interval-tolerance-now, 1),
		}, Write{}
	}
	o := Outcome{Remaining: (tolerance - (newTAT - now)) / p.Interval, Reset: newTAT - now}
	if o.Remaining == 0 {
		o.RetryAfter = max(newTAT+p.Interval-tolerance-now, 1)
	}
	return o, Write{Value: newTAT, ExpireAt: newTAT}
}

// Decide evaluates every check of one request against its stored state.
// The request is allowed when no non-shadow check is over; then every check
// that had room writes its new state (writes[i].ExpireAt == 0 means leave
// key i alone). A refused request writes nothing, and its outcomes report
// the state as it stays.
func Decide(params []Params, now int64, stored []int64) (allowed bool, outs []Outcome, writes []Write) {
	outs = make([]Outcome, len(params))
	writes = make([]Write, len(params))
	allowed = true
	for i, p := range params {
		outs[i], writes[i] = Evaluate(p, now, stored[i])
		if outs[i].Over && !p.Shadow {
			allowed = false
		}
	}
	if !allowed {
		// Nothing is consumed, so the checks that had room report what is
		// really left: their outcome for zero hits.
		clear(writes)
		for i, p := range params {
			if !outs[i].Over {
				p.Hits = 0
				outs[i], _ = Evaluate(p, now, stored[i])
			}
		}
	}
	return allowed, outs, writes
}

// KeyFor names the state of limit number index of a rule for one request
// descriptor. The descriptor part sits in a Redis Cluster hash tag so every
// limit of one descriptor lives in one slot; fixed windows append the
// window's start so an old window's counter is never read again.
func KeyFor(domain string, entries []limits.Entry, index int, l limits.Limit, now time.Time) string {
	var b strings.Builder
	b.Grow(64)
	b.WriteString("rl:{")
	escape(&b, domain)
	for _, e := range entries {
		b.WriteByte('|')
		escape(&b, e.Key)
		b.WriteByte('=')
		escape(&b, e.Value)
	}
	b.WriteString("}:")
	period := l.Unit.Period()
	if l.Algorithm == limits.GCRA {
		b.WriteString("g")
	} else {
		b.WriteString("w")
	}
	b.WriteString(strconv.FormatInt(int64(period/time.Second), 10))
	b.WriteByte('.')
	b.WriteString(strconv.Itoa(index))
	if l.Algorithm == limits.FixedWindow {
		b.WriteByte(':')
		b.WriteString(strconv.FormatInt(now.UnixMicro()/period.Microseconds(), 10))
	}
	return b.String()
}

// escape writes s with the separators of KeyFor backslash-escaped, so two
// different descriptors never share a key.
func escape(b *strings.Builder, s string) {
	if !strings.ContainsAny(s, `\|={}`) {
		b.WriteString(s)
		return
	}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\', '|', '=', '{', '}':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
}
