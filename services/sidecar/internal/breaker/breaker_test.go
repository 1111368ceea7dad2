package breaker

import (
	"context"
	"testing"
	"time"
)

func TestRequestsAndPending(t *testing.T) {
	b := New(Limits{MaxRequests: 2, MaxPending: 1, MaxConnections: 1, MaxRetries: 1})
	ctx := context.Background()
	r1, o, err := b.AcquireRequest(ctx)
	if o != "" || err != nil {
		t.Fatal("first request refused")
	}
	r2, _, _ := b.AcquireRequest(ctx)
	got := make(chan func(), 1)
	go func() {
		r, _, _ := b.AcquireRequest(ctx) // waits as pending
		got <- r
	}()
	for b.State().Pending != 1 {
		time.Sleep(time.Millisecond)
	}
	if _, o, _ := b.AcquireRequest(ctx); o != Pending {
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
	b := New(Limits{MaxRequests: 1, MaxPending: 5})
	rel, _, _ := b.AcquireRequest(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	if _, _, err := b.AcquireRequest(ctx); err == nil {
		t.Fatal("pending request should give up with ctx")
	}
	if s := b.State(); s.Pending != 0 {
		t.Fatalf("pending %d after give-up", s.Pending)
	}
	rel()
	if s := b.State(); s.Requests != 0 {
		t.Fatalf("requests %d, want 0", s.Requests)
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
	_, _, _ = b.AcquireRequest(context.Background())
	if _, o, _ := b.AcquireRequest(context.Background()); o != Requests {
		t.Fatalf("overflow %q, want %q", o, Requests)
	}
}
