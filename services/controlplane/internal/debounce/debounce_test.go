package debounce

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// The tests run in a synctest bubble: time is virtual and advances only
// when every goroutine waits, so the bounds below are exact, not hopeful.

func TestBurstFiresOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		in := make(chan struct{})
		var fired atomic.Int32
		go Run(ctx, in, 100*time.Millisecond, 5*time.Second, func() { fired.Add(1) })
		for range 20 {
			in <- struct{}{}
			time.Sleep(2 * time.Millisecond)
		}
		// The last signal came at 38ms; it is now 40ms. Quiet for 100ms
		// means a fire at 138ms, not a moment before.
		time.Sleep(97 * time.Millisecond)
		synctest.Wait()
		if n := fired.Load(); n != 0 {
			t.Fatalf("fired %d times before the burst had been quiet for 100ms", n)
		}
		time.Sleep(2 * time.Millisecond)
		synctest.Wait()
		if n := fired.Load(); n != 1 {
			t.Fatalf("a burst of 20 signals fired %d times, want 1", n)
		}
		in <- struct{}{}
		time.Sleep(time.Second)
		synctest.Wait()
		if n := fired.Load(); n != 2 {
			t.Fatalf("a later signal fired %d times in total, want 2", n)
		}
	})
}

func TestMaxDelayBoundsAnEndlessBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		in := make(chan struct{})
		var mu sync.Mutex
		var firedAt []time.Duration
		start := time.Now()
		go Run(ctx, in, 50*time.Millisecond, 120*time.Millisecond, func() {
			mu.Lock()
			defer mu.Unlock()
			firedAt = append(firedAt, time.Since(start))
		})
		for range 40 { // a signal every 10ms for 400ms: never quiet for 50ms
			in <- struct{}{}
			time.Sleep(10 * time.Millisecond)
			synctest.Wait()
		}
		mu.Lock()
		defer mu.Unlock()
		if len(firedAt) < 3 {
			t.Fatalf("fired at %v during 400ms of signals; max delay 120ms wants a fire at least every ~130ms", firedAt)
		}
		if firedAt[0] > 130*time.Millisecond {
			t.Fatalf("first fire after %v; max delay is 120ms", firedAt[0])
		}
	})
}

func TestStopsWhenCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		in := make(chan struct{})
		done := make(chan struct{})
		go func() { Run(ctx, in, time.Second, time.Second, func() { t.Error("fired after cancel") }); close(done) }()
		in <- struct{}{}
		cancel()
		<-done
	})
}
