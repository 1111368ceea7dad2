package retry

import (
	"encoding/binary"
	"math"
	"slices"
	"testing"
	"time"
)

// allConditions are the supported retry_on values, in the bit order the fuzz
// mask uses; bit 7 adds an unknown condition, which must match nothing.
var allConditions = []Condition{On5xx, OnGatewayError, OnConnectFailure, OnReset, OnRetriable4xx, OnRetriableStatusCodes, OnRefusedStream}

// wantRetryable is Envoy's retry_on table written out per condition.
func wantRetryable(c Condition, codes []int, o Outcome) bool {
	noResponse := o.ConnectFailure || o.Reset
	switch c {
	case On5xx:
		return (o.Status >= 500 && o.Status <= 599) || noResponse
	case OnGatewayError:
		return o.Status == 502 || o.Status == 503 || o.Status == 504 || noResponse
	case OnConnectFailure:
		return o.ConnectFailure
	case OnReset:
		return noResponse // any reset, a failed connect included
	case OnRetriable4xx:
		return o.Status == 409
	case OnRetriableStatusCodes:
		return slices.Contains(codes, o.Status)
	case OnRefusedStream:
		return o.Refused
	case OnCancelled:
		return o.GRPCStatus == 1
	case OnDeadlineExceeded:
		return o.GRPCStatus == 4
	case OnResourceExhausted:
		return o.GRPCStatus == 8
	case OnInternal:
		return o.GRPCStatus == 13
	case OnUnavailable:
		return o.GRPCStatus == 14
	}
	return false
}

// grpcConditions are the gRPC retry_on values, in the bit order of
// FuzzRetryableGRPC's mask.
var grpcConditions = []Condition{OnCancelled, OnDeadlineExceeded, OnInternal, OnResourceExhausted, OnUnavailable}

// FuzzRetryableGRPC checks the gRPC conditions, alone and mixed with the
// HTTP ones, against the same per-condition table.
func FuzzRetryableGRPC(f *testing.F) {
	f.Add(uint8(0b10000), uint8(0), 14, 200)
	f.Add(uint8(0b10000), uint8(0b1), 13, 503)
	f.Add(uint8(0b11111), uint8(0), 0, 200)
	f.Add(uint8(0b1), uint8(0b10), 1, 502)
	f.Add(uint8(0b100000), uint8(0), 14, 200) // bit 5: an unknown condition
	f.Fuzz(func(t *testing.T, grpcMask, httpMask uint8, grpcStatus, status int) {
		var p Policy
		for i, c := range grpcConditions {
			if grpcMask&(1<<i) != 0 {
				p.On = append(p.On, c)
			}
		}
		if grpcMask&(1<<5) != 0 {
			p.On = append(p.On, "retriable-headers")
		}
		for i, c := range allConditions {
			if httpMask&(1<<i) != 0 {
				p.On = append(p.On, c)
			}
		}
		o := Outcome{Status: status, GRPCStatus: grpcStatus}
		want := false
		for _, c := range p.On {
			want = want || wantRetryable(c, p.StatusCodes, o)
		}
		if got := p.Retryable(o); got != want {
			t.Fatalf("Retryable(%+v) with retry_on %v = %t, want %t", o, p.On, got, want)
		}
	})
}

// edgeStatuses are the codes the conditions turn on, for the fuzzer to pick
// by one byte: it would rarely step onto an exact int by itself.
var edgeStatuses = []int{200, 404, 408, 409, 429, 499, 500, 501, 502, 503, 504, 505, 599, 600, 0}

// FuzzRetryableMatchesConditions checks that an outcome is retryable exactly
// when one of the policy's conditions matches it, per condition.
func FuzzRetryableMatchesConditions(f *testing.F) {
	f.Add(uint8(0b1), 503, uint8(0), []byte(nil))
	f.Add(uint8(0b1), 600, uint8(0), []byte(nil)) // not a 5xx
	f.Add(uint8(0b10), 500, uint8(0), []byte(nil))
	f.Add(uint8(0b1000000), 0, uint8(0b110), []byte(nil))
	f.Add(uint8(0b1000), 0, uint8(0b1), []byte(nil))
	f.Add(uint8(0b10000), 409, uint8(0), []byte(nil))
	f.Add(uint8(0b100000), 429, uint8(0), []byte{0x01, 0xad})
	f.Add(uint8(0b100000), 503, uint8(0b1000), []byte{0x01, 0xad})
	f.Add(uint8(0b10000000), 503, uint8(0b111), []byte(nil))
	f.Add(uint8(0xff), -1, uint8(0), []byte{0xff, 0xff})

	// mask picks conditions; flags bits 0-2 are the outcome's connect
	// failure, reset and refused, bit 3 lists the status among the codes,
	// bits 4-7 pick an edge status instead of the raw one.
	f.Fuzz(func(t *testing.T, mask uint8, status int, flags uint8, rawCodes []byte) {
		var p Policy
		for i, c := range allConditions {
			if mask&(1<<i) != 0 {
				p.On = append(p.On, c)
			}
		}
		if mask&0x80 != 0 {
			p.On = append(p.On, "retriable-headers") // Envoy has it; this package does not
		}
		if pick := flags >> 4; pick != 0 {
			status = edgeStatuses[pick-1]
		}
		for i := 0; i+1 < len(rawCodes); i += 2 {
			p.StatusCodes = append(p.StatusCodes, int(binary.BigEndian.Uint16(rawCodes[i:])))
		}
		if flags&8 != 0 {
			p.StatusCodes = append(p.StatusCodes, status)
		}
		o := Outcome{Status: status, ConnectFailure: flags&1 != 0, Reset: flags&2 != 0, Refused: flags&4 != 0}
		// A refused stream is a stream reset: classify reports both.
		o.Reset = o.Reset || o.Refused

		want := false
		for _, c := range p.On {
			want = want || wantRetryable(c, p.StatusCodes, o)
		}
		if got := p.Retryable(o); got != want {
			t.Fatalf("Retryable(%+v) with retry_on %v, codes %v = %t, want %t", o, p.On, p.StatusCodes, got, want)
		}
	})
}

// backoffCap is min(maxI, base·2^(n-1)) after the documented defaults,
// computed without overflowing.
func backoffCap(base, maxI time.Duration, n int) time.Duration {
	if base <= 0 {
		base = 25 * time.Millisecond
	}
	if maxI <= 0 {
		maxI = math.MaxInt64
		if base <= math.MaxInt64/10 {
			maxI = 10 * base
		}
	}
	shift := max(n-1, 0)
	if shift >= 63 || base > maxI>>shift {
		return maxI
	}
	return min(base<<shift, maxI)
}

// FuzzBackoffWithinFullJitterRange checks that the backoff before retry n is
// in [0, min(max, base·2^(n-1))) and that the jitter spans the whole range:
// 0 when rnd returns 0, close to the cap when rnd returns just under 1.
func FuzzBackoffWithinFullJitterRange(f *testing.F) {
	f.Add(int64(0), uint8(0), int64(0), uint8(0), uint16(0), uint64(0))
	f.Add(int64(10*time.Millisecond), uint8(0), int64(50*time.Millisecond), uint8(0), uint16(2), uint64(math.MaxUint64))
	f.Add(int64(time.Millisecond), uint8(0), int64(0), uint8(0), uint16(199), uint64(1<<63))
	f.Add(int64(time.Second), uint8(0), int64(time.Millisecond), uint8(0), uint16(0), uint64(12345))
	f.Add(int64(-5), uint8(0), int64(-5), uint8(0), uint16(65535), uint64(42))
	f.Add(int64(1), uint8(0), int64(math.MaxInt64), uint8(0), uint16(64), uint64(math.MaxUint64)) // doubling would overflow
	f.Add(int64(1), uint8(62), int64(0), uint8(0), uint16(2), uint64(math.MaxUint64))             // 10×base would overflow
	f.Fuzz(func(t *testing.T, base int64, baseShift uint8, maxI int64, maxShift uint8, n16 uint16, r uint64) {
		// The shifts reach the magnitudes the mutator's small steps would not.
		p := Policy{BaseInterval: time.Duration(base << (baseShift % 64)), MaxInterval: time.Duration(maxI << (maxShift % 64))}
		n := int(n16) + 1 // retries are numbered from 1
		upper := backoffCap(p.BaseInterval, p.MaxInterval, n)
		u := float64(r>>11) / (1 << 53) // uniform in [0, 1), like rand.Float64
		for _, c := range []struct {
			name string
			rnd  func() float64
		}{
			{"fuzzed", func() float64 { return u }},
			{"math/rand", nil},
		} {
			if d := p.Backoff(n, c.rnd); d < 0 || d >= upper {
				t.Fatalf("%s: Backoff(%d) with base %v max %v = %v, want in [0, %v)", c.name, n, p.BaseInterval, p.MaxInterval, d, upper)
			}
		}
		if d := p.Backoff(n, func() float64 { return 0 }); d != 0 {
			t.Fatalf("Backoff(%d) = %v at rnd 0: jitter must reach 0", n, d)
		}
		top := p.Backoff(n, func() float64 { return 1 - 1.0/(1<<53) })
		if top < upper-upper>>40-1 {
			t.Fatalf("Backoff(%d) = %v at rnd→1: jitter must reach the cap %v", n, top, upper)
		}
	})
}

// FuzzBudgetCapsRetries replays requests, retries and clock steps against a
// budget and checks every decision against the documented rule: a retry is
// admitted exactly when, counting it, retries in the window stay within
// ratio × requests in the window + the floor. The window is the current slot
// and the budgetSlots-1 before it.
func FuzzBudgetCapsRetries(f *testing.F) {
	f.Add(uint8(20), uint16(0), uint32(0), []byte{0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1})
	f.Add(uint8(50), uint16(1), uint32(999_999_999), []byte{1, 1, 0, 0, 1, 1, 1, 2 | 4<<2, 1, 3 | 9<<2, 1, 1})
	f.Add(uint8(0), uint16(3), uint32(0), []byte{1, 1, 1, 1, 3 | 10<<2, 1, 1, 1, 1})
	f.Add(uint8(100), uint16(0), uint32(500_000_000), []byte{0, 1, 1, 2 | 10<<2, 0, 1, 3 | 5<<2, 1, 3 | 4<<2, 1, 1})
	f.Add(uint8(33), uint16(65535), uint32(1), []byte{1, 1, 1, 0, 1})

	f.Fuzz(func(t *testing.T, pct uint8, rawMin uint16, phase uint32, ops []byte) {
		ratio := float64(pct%101) / 100 // budget_percent is validated to [0, 100]
		// Mostly small floors, where the edges are; now and then a large one.
		minRetries := int(rawMin % 8)
		if rawMin >= 0xff00 {
			minRetries = int(rawMin)
		}
		now := time.Unix(1_700_000_000, int64(phase%uint32(time.Second)))
		b := NewBudget(ratio, minRetries, func() time.Time { return now })

		if len(ops) > 1024 {
			ops = ops[:1024] // the model is quadratic
		}
		slotLen := int64(Window / budgetSlots)
		type event struct {
			slot  int64
			retry bool
		}
		var events []event
		for _, op := range ops {
			cur := now.UnixNano() / slotLen
			switch op % 4 {
			case 0:
				b.Request()
				events = append(events, event{cur, false})
			case 1:
				var req, ret int
				for _, e := range events {
					if cur-e.slot < budgetSlots {
						if e.retry {
							ret++
						} else {
							req++
						}
					}
				}
				allowed := ratio*float64(req) + float64(minRetries)
				got := b.TryRetry()
				if got && float64(ret+1) > allowed {
					t.Fatalf("retry %d admitted over the budget %.2f×%d+%d", ret+1, ratio, req, minRetries)
				}
				if !got && float64(ret+1) <= allowed {
					t.Fatalf("retry %d refused within the budget %.2f×%d+%d", ret+1, ratio, req, minRetries)
				}
				if got {
					events = append(events, event{cur, true})
				}
			case 2:
				now = now.Add(time.Duration(op>>2) * 50 * time.Millisecond)
			case 3:
				now = now.Add(time.Duration(op>>2) * time.Second)
			}
		}
	})
}
