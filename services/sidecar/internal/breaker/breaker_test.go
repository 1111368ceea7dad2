package breaker

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestRequestsAndPending(t *testing.T) {
	b := New(Limits{MaxRequests: 2, MaxPending: 1, MaxConnections: 1, MaxRetries: 1})
	ctx := context.Background()
	r1, o, err := b.AcquireRequest(ctx, time.Time{})
	if o != "" || err != nil {
		t.Fatal("first request refused")
	}
	r2, _, _ := b.AcquireRequest(ctx, time.Time{})
	got := make(chan func(), 1)
	go func() {
		r, _, _ := b.AcquireRequest(ctx, time.Time{}) // waits as pending
		got <- r
	}()
	for b.State().Pending != 1 {
		time.Sleep(time.Millisecond)
	}
	if _, o, _ := b.AcquireRequest(ctx, time.Time{}); o != Pending {
		t.Fatalf("fourth request overflow = %q, want %q", o, Pending)
	}
	r1()
	r3 := <-got
	if s := b.State(); s.Requests != 2 || s.Pending != 0 || s.Overflows[Pending] != 1 {
		t.Fatalf("state %+v", s)
	}
	r2()
	r3()
	if s := b.State(); s.Requests != 0 {
		t.Fatalf("requests %d after all released", s.Requests)
	}
}

func TestPendingGivesUp(t *testing.T) {
	for name, tc := range map[string]struct {
		ctx      func() (context.Context, context.CancelFunc)
		deadline time.Time
		want     error
	}{
		"context ends": {ctx: func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 5*time.Millisecond)
		}, want: context.DeadlineExceeded},
		"context cancelled": {ctx: func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(5*time.Millisecond, cancel)
			return ctx, cancel
		}, want: context.Canceled},
		"deadline passes": {ctx: func() (context.Context, context.CancelFunc) {
			return context.Background(), func() {}
		}, deadline: time.Now().Add(5 * time.Millisecond), want: context.DeadlineExceeded},
	} {
		t.Run(name, func(t *testing.T) {
			b := New(Limits{MaxRequests: 1, MaxPending: 5})
			rel, _, _ := b.AcquireRequest(context.Background(), time.Time{})
			ctx, cancel := tc.ctx()
			defer cancel()
			if _, _, err := b.AcquireRequest(ctx, tc.deadline); !errors.Is(err, tc.want) {
				t.Fatalf("pending request gave up with %v, want %v", err, tc.want)
			}
			if s := b.State(); s.Pending != 0 {
				t.Fatalf("pending %d after give-up", s.Pending)
			}
			rel()
			if s := b.State(); s.Requests != 0 {
				t.Fatalf("requests %d, want 0", s.Requests)
			}
		})
	}
}

func TestTryAcquire(t *testing.T) {
	for _, r := range []Resource{Connections, Retries} {
		t.Run(string(r), func(t *testing.T) {
			b := New(Limits{MaxConnections: 2, MaxRetries: 2})
			a, _ := b.TryAcquire(r)
			_, ok := b.TryAcquire(r)
			if !ok {
				t.Fatal("second unit refused")
			}
			if _, ok := b.TryAcquire(r); ok {
				t.Fatal("third unit allowed over a cap of 2")
			}
			a()
			if _, ok := b.TryAcquire(r); !ok {
				t.Fatal("unit refused after release")
			}
			if b.State().Overflows[r] != 1 {
				t.Fatal("overflow not counted")
			}
		})
	}
}

func TestNoPendingQueueReportsRequests(t *testing.T) {
	b := New(Limits{MaxRequests: 1})
	_, _, _ = b.AcquireRequest(context.Background(), time.Time{})
	if _, o, _ := b.AcquireRequest(context.Background(), time.Time{}); o != Requests {
		t.Fatalf("overflow %q, want %q", o, Requests)
	}
}
