package debounce

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestBurstFiresOnce(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	in := make(chan struct{}, 1)
	var fired atomic.Int32
	done := make(chan struct{})
	go func() { Run(ctx, in, 100*time.Millisecond, 5*time.Second, func() { fired.Add(1) }); close(done) }()
	for range 20 {
		in <- struct{}{}
		time.Sleep(2 * time.Millisecond)
	}
	time.Sleep(400 * time.Millisecond)
	if n := fired.Load(); n != 1 {
		t.Fatalf("a burst of 20 signals fired %d times, want 1", n)
	}
	in <- struct{}{}
	time.Sleep(400 * time.Millisecond)
	if n := fired.Load(); n != 2 {
		t.Fatalf("a later signal fired %d times in total, want 2", n)
	}
	cancel()
	<-done
}

func TestMaxDelayBoundsAnEndlessBurst(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	in := make(chan struct{}, 1)
	firedAt := make(chan time.Time, 10)
	go Run(ctx, in, 50*time.Millisecond, 120*time.Millisecond, func() { firedAt <- time.Now() })
	start := time.Now()
	stop := time.After(400 * time.Millisecond)
	for {
		select {
		case at := <-firedAt:
			if d := at.Sub(start); d > 300*time.Millisecond {
				t.Fatalf("first fire after %v with signals every 10ms; max delay is 120ms", d)
			}
			return
		case <-stop:
			t.Fatal("never fired while signals kept coming")
		case in <- struct{}{}:
			time.Sleep(10 * time.Millisecond)
		}
	}
}
