package quota

import (
	"testing"
	"time"

	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/limits"
)

const sec = int64(time.Second / time.Microsecond)

func fixed(n uint32, u limits.Unit) limits.Limit {
	return limits.Limit{Unit: u, RequestsPerUnit: n, Burst: n}
}

func gcra(n, burst uint32, u limits.Unit) limits.Limit {
	return limits.Limit{Unit: u, RequestsPerUnit: n, Burst: burst, Algorithm: limits.GCRA}
}

// run sends hits requests of one hit each at the given times through Decide
// with an in-test state map, and returns which were allowed.
func run(t *testing.T, ls []limits.Limit, times []int64) []bool {
	t.Helper()
	state := map[int]Write{}
	var got []bool
	for _, now := range times {
		params := make([]Params, len(ls))
		stored := make([]int64, len(ls))
		for i, l := range ls {
			params[i] = ParamsFor(Check{Limit: l, Hits: 1}, now)
			if w, ok := state[i]; ok && w.ExpireAt > now {
				stored[i] = w.Value
			}
		}
		ok, _, writes := Decide(params, now, stored)
		for i, w := range writes {
			if w.ExpireAt != 0 {
				state[i] = w
			}
		}
		got = append(got, ok)
	}
	return got
}

func repeat(at int64, n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = at
	}
	return out
}

func count(b []bool) int {
	n := 0
	for _, v := range b {
		if v {
			n++
		}
	}
	return n
}

func TestFixedWindowSeed(t *testing.T) {
	now := int64(1_700_000_000) * sec
	got := run(t, []limits.Limit{fixed(10, limits.Second)}, repeat(now+100, 15))
	for i, ok := range got {
		if ok != (i < 10) {
			t.Fatalf("request %d allowed=%v; want first 10 allowed: %v", i, ok, got)
		}
	}
	// The next window starts fresh.
	if got := run(t, []limits.Limit{fixed(10, limits.Second)}, append(repeat(now, 10), now+sec)); !got[10] {
		t.Fatal("next window refused")
	}
}

func TestEvaluate(t *testing.T) {
	now := int64(1_700_000_000)*sec + 250_000 // a quarter into a second
	tests := []struct {
		name   string
		limit  limits.Limit
		hits   uint32
		stored int64
		want   Outcome
		write  Write
	}{
		{"fixed first hit", fixed(10, limits.Second), 1, 0, Outcome{Remaining: 9, Reset: 750_000}, Write{1, now + 750_000}},
		{"fixed last hit", fixed(10, limits.Second), 1, 9, Outcome{Remaining: 0, Reset: 750_000, RetryAfter: 750_000}, Write{10, now + 750_000}},
		{"fixed over", fixed(10, limits.Second), 1, 10, Outcome{Over: true, Reset: 750_000, RetryAfter: 750_000}, Write{}},
		{"fixed hits too many", fixed(10, limits.Second), 5, 7, Outcome{Over: true, Remaining: 3, Reset: 750_000, RetryAfter: 750_000}, Write{}},
		{"zero refuses", fixed(0, limits.Second), 1, 0, Outcome{Over: true, Reset: 750_000, RetryAfter: 750_000}, Write{}},
		{"gcra empty", gcra(5, 2, limits.Second), 1, 0, Outcome{Remaining: 1, Reset: 200_000}, Write{now + 200_000, now + 200_000}},
		{"gcra second of burst", gcra(5, 2, limits.Second), 1, now + 200_000, Outcome{Remaining: 0, Reset: 400_000, RetryAfter: 200_000}, Write{now + 400_000, now + 400_000}},
		{"gcra over", gcra(5, 2, limits.Second), 1, now + 400_000, Outcome{Over: true, Remaining: 0, Reset: 400_000, RetryAfter: 200_000}, Write{}},
		{"gcra stale tat", gcra(5, 2, limits.Second), 1, now - sec, Outcome{Remaining: 1, Reset: 200_000}, Write{now + 200_000, now + 200_000}},
		{"gcra zero", gcra(0, 0, limits.Second), 1, 0, Outcome{Over: true, Reset: sec, RetryAfter: sec}, Write{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, w := Evaluate(ParamsFor(Check{Limit: tt.limit, Hits: tt.hits}, now), now, tt.stored)
			if got != tt.want || w != tt.write {
				t.Fatalf("Evaluate = %+v %+v; want %+v %+v", got, w, tt.want, tt.write)
			}
		})
	}
}

func TestGCRASmoothRate(t *testing.T) {
	// 5/s with burst 2: two at once, then one every 200 ms.
	now := int64(1_700_000_000) * sec
	times := append(repeat(now, 3), now+100_000, now+200_000, now+300_000, now+400_000, now+400_000)
	got := run(t, []limits.Limit{gcra(5, 2, limits.Second)}, times)
	want := []bool{true, true, false, false, true, false, true, false}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("allowed = %v, want %v", got, want)
		}
	}
	// Over ten seconds at a steady 10/s a 5/s GCRA admits about 5/s.
	var steady []int64
	for i := range 100 {
		steady = append(steady, now+10*sec+int64(i)*100_000)
	}
	if n := count(run(t, []limits.Limit{gcra(5, 2, limits.Second)}, steady)); n < 50 || n > 52 {
		t.Fatalf("admitted %d of 100 at 10/s over 10s, want ~50", n)
	}
}

func TestSeveralLimitsAllApply(t *testing.T) {
	// Free tier: 3/hour and 5/day (scaled down). Requests spread over hours.
	ls := []limits.Limit{fixed(3, limits.Hour), fixed(5, limits.Day)}
	day := int64(1_700_006_400) * sec // midnight UTC
	hour := int64(3600) * sec
	var times []int64
	times = append(times, repeat(day+1, 4)...)      // 3 pass, hourly refuses the 4th
	times = append(times, repeat(day+hour+1, 4)...) // 2 pass, then daily refuses
	times = append(times, repeat(day+2*hour+1, 1)...)
	got := run(t, ls, times)
	want := []bool{true, true, true, false, true, true, false, false, false}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("allowed = %v, want %v", got, want)
		}
	}
}

func TestRefusedRequestConsumesNothing(t *testing.T) {
	now := int64(1_700_000_000) * sec
	params := []Params{
		ParamsFor(Check{Limit: fixed(10, limits.Minute), Hits: 1}, now),
		ParamsFor(Check{Limit: fixed(1, limits.Minute), Hits: 1}, now),
	}
	ok, outs, writes := Decide(params, now, []int64{0, 1})
	if ok || outs[0].Over || !outs[1].Over {
		t.Fatalf("Decide = %v %+v", ok, outs)
	}
	if outs[0].Remaining != 10 {
		t.Fatalf("refused request reports remaining %d on an untouched limit, want 10", outs[0].Remaining)
	}
	for i, w := range writes {
		if w != (Write{}) {
			t.Fatalf("write %d = %+v after a refusal", i, w)
		}
	}
	// A shadow check that is over neither refuses nor writes.
	params[1].Shadow = true
	ok, _, writes = Decide(params, now, []int64{0, 1})
	if !ok || writes[0].Value != 1 || writes[1] != (Write{}) {
		t.Fatalf("shadow: ok=%v writes=%+v", ok, writes)
	}
}

func TestKeyFor(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := fixed(10, limits.Minute)
	got := KeyFor("api", ents("plan", "free", "user", "alice"), 1, l, now)
	if want := "rl:{api|plan=free|user=alice}:w60.1:28333333"; got != want {
		t.Fatalf("KeyFor = %q, want %q", got, want)
	}
	if got := KeyFor("api", ents("u", "x"), 0, gcra(1, 1, limits.Second), now); got != "rl:{api|u=x}:g1.0" {
		t.Fatalf("gcra key = %q", got)
	}
	a := KeyFor("d", ents("a", "x|b=y"), 0, l, now)
	b := KeyFor("d", ents("a", "x", "b", "y"), 0, l, now)
	if a == b {
		t.Fatalf("separator in a value collides: %q", a)
	}
}

func FuzzKeyForIsInjective(f *testing.F) {
	f.Add("a", "b", "c", "d")
	f.Add("x|b=y", "", "x", "b=y")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		now := time.Unix(1_700_000_000, 0)
		l := fixed(1, limits.Second)
		one := KeyFor("d", ents(k1, v1), 0, l, now)
		two := KeyFor("d", ents(k1, v1, k2, v2), 0, l, now)
		if one == two {
			t.Fatalf("different descriptors share key %q", one)
		}
		if k1 != k2 || v1 != v2 {
			if KeyFor("d", ents(k1, v1), 0, l, now) == KeyFor("d", ents(k2, v2), 0, l, now) {
				t.Fatalf("(%q,%q) and (%q,%q) share a key", k1, v1, k2, v2)
			}
		}
	})
}

func ents(kv ...string) []limits.Entry {
	var out []limits.Entry
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, limits.Entry{Key: kv[i], Value: kv[i+1]})
	}
	return out
}
