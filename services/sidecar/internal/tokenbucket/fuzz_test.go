package tokenbucket

import (
	"math"
	"math/bits"
	"testing"
	"time"
)

// timeBudget keeps the fake clock far from time.Duration's limit, where
// Sub saturates.
const timeBudget = 100 * 365 * 24 * time.Hour

var advanceUnits = []time.Duration{time.Nanosecond, time.Microsecond, time.Millisecond, time.Second, time.Hour}

// FuzzBucketMatchesModel drives a Bucket over a fake clock with arbitrary
// advances and Allow calls, within the domain the xDS validator admits
// (uint32 max_tokens and tokens_per_fill). It checks that:
//   - every Allow agrees with a model that counts whole fills since creation
//     and saturates at MaxTokens without overflowing;
//   - total grants since creation never exceed max + perFill×⌊elapsed/interval⌋;
//   - grants between any two instants a ≤ b never exceed
//     max + perFill×⌈(b−a)/interval⌉;
//   - a bucket left idle long enough to refill grants exactly max at once.
//
// Ops are three bytes: kind, then a big-endian uint16 amount.
func FuzzBucketMatchesModel(f *testing.F) {
	// Kind's low two bits pick the op; for advances, kind>>2 picks the unit
	// (ns, µs, ms, s, h) or, at a boundary, whether to stop 1 ns short.
	f.Add(uint32(3), uint32(2), int64(time.Second), []byte{1, 0, 5, 8, 3, 231, 1, 0, 5, 2, 0, 0, 3, 0, 1, 1, 0, 5})
	f.Add(uint32(10), uint32(1), int64(time.Millisecond), []byte{1, 0, 20, 4, 0, 7, 1, 0, 20, 7, 0, 3, 1, 0, 20, 2, 0, 0})
	f.Add(uint32(1), uint32(0), int64(time.Second), []byte{1, 0, 3, 12, 0, 9, 1, 0, 3})                  // no refill
	f.Add(uint32(100), uint32(100), int64(0), []byte{1, 0, 63, 1, 0, 63, 12, 0, 1, 1, 0, 10})            // filling off
	f.Add(uint32(5), uint32(3), int64(1), []byte{1, 0, 9, 0, 0, 2, 1, 0, 9, 2, 0, 0, 16, 0, 1, 1, 0, 9}) // 1 ns fills
	f.Fuzz(func(t *testing.T, maxTokens, perFill uint32, interval int64, ops []byte) {
		now := time.Unix(1000, 0)
		var elapsed time.Duration
		b := New(int64(maxTokens), int64(perFill), time.Duration(interval), func() time.Time { return now.Add(elapsed) })
		m := &bucketModel{max: int64(maxTokens), perFill: int64(perFill), interval: time.Duration(interval), tokens: int64(maxTokens)}

		var granted uint64
		var marks []mark // grants seen at each instant, for the window bound
		allow := func() bool {
			got, want := b.Allow(), m.allow(elapsed)
			if got != want {
				t.Fatalf("at %v: Allow = %v, model says %v (max %d, per fill %d, interval %v)", elapsed, got, want, maxTokens, perFill, time.Duration(interval))
			}
			if len(marks) == 0 || marks[len(marks)-1].at != elapsed {
				if len(marks) == 64 {
					marks = marks[1:]
				}
				marks = append(marks, mark{at: elapsed, before: granted, after: granted})
			}
			if got {
				granted++
				marks[len(marks)-1].after = granted
			}
			if limit := fillBound(maxTokens, perFill, fillsIn(elapsed, time.Duration(interval), false)); granted > limit {
				t.Fatalf("at %v: %d granted since creation, bound %d", elapsed, granted, limit)
			}
			return got
		}
		advance := func(d time.Duration) {
			if d >= 0 && d <= timeBudget-elapsed {
				elapsed += d
			}
		}

		for step := 0; len(ops) >= 3 && step < 128; step++ {
			kind, n := ops[0], uint64(ops[1])<<8|uint64(ops[2])
			ops = ops[3:]
			switch kind % 4 {
			case 0:
				advance(time.Duration(n) * advanceUnits[int(kind>>2)%len(advanceUnits)])
			case 1:
				for range n % 64 {
					allow()
				}
			case 2: // idle until full, then drain
				if interval <= 0 || perFill == 0 || maxTokens > 512 {
					continue
				}
				fills := (uint64(maxTokens) + uint64(perFill) - 1) / uint64(perFill)
				if fills > uint64(timeBudget-elapsed)/uint64(interval) {
					continue
				}
				advance(time.Duration(fills) * time.Duration(interval))
				burst := 0
				for burst <= int(maxTokens) && allow() {
					burst++
				}
				if burst != int(maxTokens) {
					t.Fatalf("after idling %d fills: burst of %d, want max %d", fills, burst, maxTokens)
				}
			case 3: // land on, or just before, a fill boundary
				if interval > 0 && n <= uint64(timeBudget-elapsed)/uint64(interval) {
					advance(time.Duration(n)*time.Duration(interval) - time.Duration(kind>>2&1))
				}
			}
		}

		for i, a := range marks {
			for _, z := range marks[i:] {
				limit := fillBound(maxTokens, perFill, fillsIn(z.at-a.at, time.Duration(interval), true))
				if got := z.after - a.before; got > limit {
					t.Fatalf("%d granted from %v to %v, bound %d", got, a.at, z.at, limit)
				}
			}
		}
	})
}

type mark struct {
	at            time.Duration
	before, after uint64
}

// fillsIn is how many fill boundaries a span can hold: ⌊d/i⌋ when it starts
// on one (creation), ⌈d/i⌉ otherwise; none when filling is off.
func fillsIn(d, i time.Duration, roundUp bool) uint64 {
	if i <= 0 {
		return 0
	}
	n := uint64(d / i)
	if roundUp && d%i != 0 {
		n++
	}
	return n
}

// fillBound is max + perFill×fills, saturating.
func fillBound(maxTokens, perFill uint32, fills uint64) uint64 {
	hi, lo := bits.Mul64(uint64(perFill), fills)
	sum, carry := bits.Add64(lo, uint64(maxTokens), 0)
	if hi != 0 || carry != 0 {
		return math.MaxUint64
	}
	return sum
}

// bucketModel numbers fill boundaries from creation instead of tracking the
// last fill time.
type bucketModel struct {
	max, perFill int64
	interval     time.Duration
	tokens       int64
	fills        int64 // boundaries already added
}

func (m *bucketModel) allow(elapsed time.Duration) bool {
	if m.interval > 0 {
		if k := int64(elapsed / m.interval); k > m.fills {
			hi, lo := bits.Mul64(uint64(m.perFill), uint64(k-m.fills))
			if room := uint64(m.max - m.tokens); hi != 0 || lo >= room {
				m.tokens = m.max
			} else {
				m.tokens += int64(lo)
			}
			m.fills = k
		}
	}
	if m.tokens <= 0 {
		return false
	}
	m.tokens--
	return true
}
