// Package limits holds the rate-limit rules of the ratelimit service: the
// descriptor configuration in envoyproxy/ratelimit's YAML schema (domains,
// nested key/value descriptors, rate_limit, unlimited, shadow_mode), its
// extensions (several limits per descriptor, a GCRA algorithm with burst),
// a strict parser whose errors name the place, and the matcher that maps the
// descriptors of a request to the limits that apply to them.
//
// Everything here is pure: no sockets, no clocks.
package limits

import (
	"fmt"
	"strings"
	"time"
)

// Unit is the period a limit counts over.
type Unit int

// The units envoyproxy/ratelimit and the RLS v3 API know, in the same order
// of meaning as the proto enum.
const (
	Second Unit = iota + 1
	Minute
	Hour
	Day
	Week
	Month
	Year
)

var unitNames = map[string]Unit{
	"second": Second, "minute": Minute, "hour": Hour, "day": Day,
	"week": Week, "month": Month, "year": Year,
}

// ParseUnit reads a unit name, case-insensitively ("second", "HOUR").
func ParseUnit(s string) (Unit, error) {
	u, ok := unitNames[strings.ToLower(s)]
	if !ok {
		return 0, fmt.Errorf("unknown unit %q (want second, minute, hour, day, week, month or year)", s)
	}
	return u, nil
}

// Period is the length of one unit; a month is 30 days and a year 365, as in
// envoyproxy/ratelimit.
func (u Unit) Period() time.Duration {
	switch u {
	case Second:
		return time.Second
	case Minute:
		return time.Minute
	case Hour:
		return time.Hour
	case Day:
		return 24 * time.Hour
	case Week:
		return 7 * 24 * time.Hour
	case Month:
		return 30 * 24 * time.Hour
	case Year:
		return 365 * 24 * time.Hour
	}
	return 0
}

func (u Unit) String() string {
	for name, v := range unitNames {
		if v == u {
			return name
		}
	}
	return fmt.Sprintf("unit(%d)", int(u))
}

// Algorithm decides how hits are counted against a limit.
type Algorithm int

const (
	// FixedWindow counts hits per calendar window of one unit (aligned to
	// the Unix epoch), like envoyproxy/ratelimit.
	FixedWindow Algorithm = iota
	// GCRA is the generic cell rate algorithm: a token bucket of Burst
	// tokens refilled smoothly at RequestsPerUnit per unit.
	GCRA
)

// ParseAlgorithm reads "fixed_window" or "gcra" (alias "token_bucket").
func ParseAlgorithm(s string) (Algorithm, error) {
	switch strings.ToLower(s) {
	case "fixed_window":
		return FixedWindow, nil
	case "gcra", "token_bucket":
		return GCRA, nil
	}
	return 0, fmt.Errorf("unknown algorithm %q (want fixed_window or gcra)", s)
}

func (a Algorithm) String() string {
	if a == GCRA {
		return "gcra"
	}
	return "fixed_window"
}

// Limit is one quota: RequestsPerUnit hits per Unit.
type Limit struct {
	// Name is the operator's name for the limit, or empty.
	Name            string
	Unit            Unit
	RequestsPerUnit uint32
	Algorithm       Algorithm
	// Burst is how many hits GCRA admits at once; it is RequestsPerUnit
	// unless configured. Fixed windows ignore it.
	Burst uint32
}

// Rule is what applies to one matched request descriptor.
type Rule struct {
	// Domain is the domain the rule belongs to.
	Domain string
	// Path names the configuration node that matched, built from the
	// configured keys and values only ("plan=free.user"), so it is safe as
	// a low-cardinality metric label.
	Path string
	// Limits all apply; a hit passes only if it fits every one of them.
	Limits []Limit
	// Unlimited rules never limit.
	Unlimited bool
	// Shadow rules are evaluated and counted but never refuse a request.
	Shadow bool
}

// Entry is one key/value pair of a request descriptor.
type Entry struct {
	Key   string
	Value string
}
