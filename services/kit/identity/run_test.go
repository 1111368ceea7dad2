package identity

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// stepClock is real time for Now, but After hands each requested wait to the
// test, which decides when it elapses.
type stepClock struct {
	waits chan wait
}

type wait struct {
	d    time.Duration
	fire chan time.Time
}

func (c *stepClock) Now() time.Time { return time.Now() }

func (c *stepClock) After(d time.Duration) <-chan time.Time {
	w := wait{d: d, fire: make(chan time.Time, 1)}
	c.waits <- w
	return w.fire
}

func (c *stepClock) next(t *testing.T) wait {
	t.Helper()
	select {
	case w := <-c.waits:
		return w
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not schedule a wait")
		return wait{}
	}
}

// TestRunSchedule drives Run's timers by hand: renewal at half-life, then
// exponential backoff bounded by the remaining lifetime while the ca is down,
// and back to half-life once a renewal succeeds.
func TestRunSchedule(t *testing.T) {
	ca := newTestCA(t, map[string]spiffeid.ID{tokReg: idReg})
	clock := &stepClock{waits: make(chan wait)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src, err := New(ctx, Config{CAAddr: ca.addr, JoinToken: tokReg, SPIFFEID: idReg.String(), TrustBundleFile: ca.bundleFile, TTL: time.Hour},
		Options{Log: slog.New(slog.DiscardHandler), Clock: clock, Rand: func() float64 { return 0 }})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()

	near := func(got, want time.Duration) {
		t.Helper()
		if (got - want).Abs() > 2*time.Second {
			t.Fatalf("waited %s, want about %s", got, want)
		}
	}
	w := clock.next(t)
	near(w.d, 30*time.Minute)
	w.fire <- time.Now()

	w = clock.next(t) // renewed over mTLS: next renewal again at half-life
	if ca.renewals.Load() != 1 {
		t.Fatalf("renewals = %d after the first timer", ca.renewals.Load())
	}
	near(w.d, 30*time.Minute)

	ca.stop()
	w.fire <- time.Now()
	for i, want := range []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second} {
		w = clock.next(t)
		if w.d != want {
			t.Fatalf("retry %d waits %s, want %s", i, w.d, want)
		}
		if i < 3 {
			w.fire <- time.Now()
		}
	}
	if got, _ := src.GetX509SVID(); got == nil {
		t.Fatal("no SVID served during the outage")
	}
	ca.start()
	w.fire <- time.Now()
	w = clock.next(t) // renewed after the outage: back to half-life
	near(w.d, 30*time.Minute)
	if ca.renewals.Load() != 2 {
		t.Fatalf("renewals = %d, want 2", ca.renewals.Load())
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
