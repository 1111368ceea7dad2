package breaker

import (
	"context"
	"errors"
	"math"
	"runtime"
	"slices"
	"testing"
	"time"
)

// Operations a fuzz input is decoded into: two bytes each, an opcode and an
// argument that picks which held slot or waiter the operation applies to.
const (
	opConn                = iota // TryAcquire(Connections)
	opRetry                      // TryAcquire(Retries)
	opReleaseConn                // release a held connection
	opReleaseRetry               // release a held retry
	opRequest                    // AcquireRequest that may wait as pending
	opRequestCancelled           // AcquireRequest with a context already cancelled
	opRequestExpired             // AcquireRequest with a deadline already past
	opReleaseRequest             // release a held request
	opCancelWaiter               // a pending request's context ends
	opReleaseRacingCancel        // release a request while a waiter gives up
	numOps
)

// maxOps bounds one input so an iteration stays fast.
const maxOps = 256

// fuzzLimit maps a byte to a cap: every small value (0 and 1 are the edges),
// plus Envoy's default, the largest xDS can carry (uint32) and MaxInt64.
func fuzzLimit(b byte) int64 {
	switch v := b % 15; v {
	case 12:
		return 1024
	case 13:
		return math.MaxUint32
	case 14:
		return math.MaxInt64
	default:
		return int64(v)
	}
}

// breakerInput encodes limits and operations the way FuzzBreaker decodes them.
func breakerInput(conns, pending, requests, retries byte, ops ...byte) []byte {
	return append([]byte{conns, pending, requests, retries}, ops...)
}

type acquireResult struct {
	id       int
	release  func()
	overflow Resource
	err      error
}

// breakerModel is what the breaker must agree with after every operation.
type breakerModel struct {
	lim                      Limits
	conns, retries, requests []func() // releases of held slots
	waiters                  []int    // ids of pending AcquireRequest calls
	cancels                  map[int]context.CancelFunc
	overflows                map[Resource]uint64
}

// expectRequest is what AcquireRequest must do now: admit, refuse naming a
// resource, or (neither) wait as pending.
func (m *breakerModel) expectRequest() (admit bool, refuse Resource) {
	switch {
	case int64(len(m.requests)) < m.lim.MaxRequests:
		return true, ""
	case int64(len(m.waiters)) >= m.lim.MaxPending:
		if m.lim.MaxPending == 0 {
			return false, Requests // no queue: the request cap is what overflowed
		}
		return false, Pending
	}
	return false, ""
}

func (m *breakerModel) dropWaiter(id int) bool {
	i := slices.Index(m.waiters, id)
	if i < 0 {
		return false
	}
	m.waiters = slices.Delete(m.waiters, i, i+1)
	m.cancels[id]() // harmless once the call has returned
	delete(m.cancels, id)
	return true
}

// FuzzBreakerKeepsLimitsAndAccounting runs a decoded sequence of
// acquisitions, releases and give-ups against one breaker and checks after
// each step that no resource is ever held beyond its cap, that a refusal
// happens exactly at the cap and names the right resource, that a release
// frees exactly one slot (or hands it to exactly one waiter), that no request
// waits while a slot is free, that overflow counters count every refusal,
// and that releasing everything returns all counts to zero.
func FuzzBreakerKeepsLimitsAndAccounting(f *testing.F) {
	f.Add(breakerInput(0, 0, 0, 0, opConn, 0, opRetry, 0, opRequest, 0, opRequestCancelled, 0))
	f.Add(breakerInput(1, 0, 1, 1, opConn, 0, opConn, 0, opReleaseConn, 0, opConn, 0,
		opRetry, 0, opRetry, 0, opReleaseRetry, 0, opRetry, 0, opRequest, 0, opRequest, 0))
	f.Add(breakerInput(2, 2, 1, 3, opRequest, 0, opRequest, 0, opRequest, 0, opRequest, 0,
		opReleaseRequest, 0, opCancelWaiter, 0, opRequestExpired, 0, opReleaseRequest, 0))
	f.Add(breakerInput(1, 3, 2, 1, opRequest, 0, opRequest, 0, opRequest, 0, opRequest, 0, opRequest, 0,
		opReleaseRacingCancel, 0, opReleaseRacingCancel, 0x80, opReleaseRacingCancel, 0x87, opReleaseRacingCancel, 0))
	f.Add(breakerInput(12, 12, 12, 13, opRequest, 0, opRequestCancelled, 0, opRequestExpired, 0, opConn, 0, opRetry, 0))
	f.Add(breakerInput(14, 1, 0, 14, opRequest, 0, opRequestExpired, 0, opRequest, 0, opCancelWaiter, 0))

	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 4 {
			return
		}
		lim := Limits{
			MaxConnections: fuzzLimit(data[0]), MaxPending: fuzzLimit(data[1]),
			MaxRequests: fuzzLimit(data[2]), MaxRetries: fuzzLimit(data[3]),
		}
		ops := data[4:]
		if len(ops) > 2*maxOps {
			ops = ops[:2*maxOps]
		}
		b := New(lim)
		m := &breakerModel{lim: lim, cancels: map[int]context.CancelFunc{}, overflows: map[Resource]uint64{}}
		// Every AcquireRequest runs in a goroutine: a call the model says
		// returns at once must not be able to hang the test by waiting.
		results := make(chan acquireResult, maxOps)
		t.Cleanup(func() {
			for _, cancel := range m.cancels {
				cancel()
			}
		})
		nextID := 0
		acquire := func(ctx context.Context, deadline time.Time) int {
			id := nextID
			nextID++
			go func() {
				rel, o, err := b.AcquireRequest(ctx, deadline)
				results <- acquireResult{id, rel, o, err}
			}()
			return id
		}
		recv := func() acquireResult {
			select {
			case r := <-results:
				return r
			case <-time.After(10 * time.Second):
				t.Fatalf("no AcquireRequest returned (limits %+v, waiters %v)", lim, m.waiters)
				return acquireResult{}
			}
		}
		// checkImmediate checks a call that returned without waiting.
		checkImmediate := func(r acquireResult, admit bool, refuse Resource) {
			t.Helper()
			switch {
			case admit && (r.release == nil || r.overflow != "" || r.err != nil):
				t.Fatalf("request refused (%q, %v) with %d of %d held", r.overflow, r.err, len(m.requests), lim.MaxRequests)
			case admit:
				m.requests = append(m.requests, r.release)
			case r.release != nil || r.err != nil || r.overflow != refuse:
				t.Fatalf("request at the cap got release=%t overflow=%q err=%v, want overflow %q",
					r.release != nil, r.overflow, r.err, refuse)
			default:
				m.overflows[refuse]++
			}
		}
		// grantTo checks r is a pending request being handed a slot.
		grantTo := func(r acquireResult) {
			t.Helper()
			if !m.dropWaiter(r.id) || r.release == nil || r.overflow != "" || r.err != nil {
				t.Fatalf("released slot went to call %d (waiters %v): release=%t overflow=%q err=%v",
					r.id, m.waiters, r.release != nil, r.overflow, r.err)
			}
			m.requests = append(m.requests, r.release)
		}
		takeAt := func(held *[]func(), arg byte) func() {
			i := int(arg) % len(*held)
			rel := (*held)[i]
			*held = slices.Delete(*held, i, i+1)
			return rel
		}

		for i := 0; i+1 < len(ops); i += 2 {
			op, arg := ops[i]%numOps, ops[i+1]
			switch op {
			case opConn, opRetry:
				r, held, limit := Connections, &m.conns, lim.MaxConnections
				if op == opRetry {
					r, held, limit = Retries, &m.retries, lim.MaxRetries
				}
				rel, ok := b.TryAcquire(r)
				if want := int64(len(*held)) < limit; ok != want || (rel != nil) != ok {
					t.Fatalf("TryAcquire(%s) = %t with %d of %d held", r, ok, len(*held), limit)
				}
				if ok {
					*held = append(*held, rel)
				} else {
					m.overflows[r]++
				}
			case opReleaseConn, opReleaseRetry:
				held := &m.conns
				if op == opReleaseRetry {
					held = &m.retries
				}
				if len(*held) > 0 {
					takeAt(held, arg)()
				}
			case opRequest:
				admit, refuse := m.expectRequest()
				ctx, cancel := context.WithCancel(context.Background())
				id := acquire(ctx, time.Time{})
				r, waiting := returnedOrPending(t, b, results, len(m.waiters))
				if !waiting {
					cancel()
					if r.id != id {
						t.Fatalf("call %d returned while call %d was expected", r.id, id)
					}
					if !admit && refuse == "" {
						t.Fatalf("request returned (%q, %v) instead of waiting: %d of %d pending",
							r.overflow, r.err, len(m.waiters), lim.MaxPending)
					}
					checkImmediate(r, admit, refuse)
					break
				}
				if admit || refuse != "" {
					t.Fatalf("request waits, want admit=%t refuse=%q", admit, refuse)
				}
				m.waiters = append(m.waiters, id)
				m.cancels[id] = cancel
			case opRequestCancelled, opRequestExpired:
				admit, refuse := m.expectRequest()
				ctx, cancel := context.WithCancel(context.Background())
				deadline, want := time.Time{}, context.Canceled
				if op == opRequestCancelled {
					cancel()
				} else {
					deadline, want = time.Now().Add(-time.Second), context.DeadlineExceeded
				}
				id := acquire(ctx, deadline)
				r := recv()
				cancel()
				if r.id != id {
					t.Fatalf("call %d returned while call %d was expected", r.id, id)
				}
				if admit || refuse != "" {
					checkImmediate(r, admit, refuse)
				} else if r.release != nil || r.overflow != "" || !errors.Is(r.err, want) {
					t.Fatalf("request that would wait gave up with release=%t overflow=%q err=%v, want %v",
						r.release != nil, r.overflow, r.err, want)
				}
			case opReleaseRequest:
				if len(m.requests) == 0 {
					continue
				}
				takeAt(&m.requests, arg)()
				if len(m.waiters) > 0 {
					grantTo(recv())
				}
			case opCancelWaiter:
				if len(m.waiters) == 0 {
					continue
				}
				id := m.waiters[int(arg)%len(m.waiters)]
				m.cancels[id]()
				r := recv()
				if r.id != id || r.release != nil || !errors.Is(r.err, context.Canceled) {
					t.Fatalf("cancelled waiter %d: got call %d release=%t err=%v", id, r.id, r.release != nil, r.err)
				}
				m.dropWaiter(id)
			case opReleaseRacingCancel:
				if len(m.requests) == 0 {
					continue
				}
				rel := takeAt(&m.requests, arg)
				if len(m.waiters) == 0 {
					rel()
					break
				}
				// The waiter may be handed the slot as it gives up; either way
				// the slot must end with exactly one holder or be freed.
				// Cancelling first makes the hand-over land while a woken
				// waiter is on its way out, the likelier race.
				nWaiters := len(m.waiters)
				k := m.waiters[int(arg/7)%nWaiters]
				if arg&0x80 != 0 {
					m.cancels[k]()
					rel()
				} else {
					rel()
					m.cancels[k]()
				}
				var others []acquireResult
				r := recv()
				for ; r.id != k; r = recv() {
					others = append(others, r)
				}
				wantOthers := 0
				if r.release == nil {
					if !errors.Is(r.err, context.Canceled) || r.overflow != "" {
						t.Fatalf("waiter %d gave up with overflow=%q err=%v", k, r.overflow, r.err)
					}
					m.dropWaiter(k)
					if nWaiters > 1 {
						wantOthers = 1 // the slot went, or was passed on, to another waiter
					}
				} else {
					grantTo(r)
				}
				// Any hand-over happened before k returned, so it shows already.
				if s := b.State(); s.Pending != int64(len(m.waiters)-wantOthers) {
					t.Fatalf("slot neither kept by waiter %d nor passed on: pending %d, want %d",
						k, s.Pending, len(m.waiters)-wantOthers)
				}
				for len(others) < wantOthers {
					others = append(others, recv())
				}
				if len(others) != wantOthers {
					t.Fatalf("one release handed out %d extra slots", len(others)-wantOthers)
				}
				for _, o := range others {
					grantTo(o)
				}
			}
			checkBreaker(t, b, m)
		}

		// Give everything back: the breaker must be idle again.
		for len(m.waiters) > 0 {
			id := m.waiters[0]
			m.cancels[id]()
			if r := recv(); r.id != id || r.release != nil {
				t.Fatalf("cancelled waiter %d: got call %d release=%t", id, r.id, r.release != nil)
			}
			m.dropWaiter(id)
		}
		for _, held := range []*[]func(){&m.conns, &m.retries, &m.requests} {
			for len(*held) > 0 {
				takeAt(held, 0)()
			}
		}
		checkBreaker(t, b, m)
		if s := b.State(); s.Connections != 0 || s.Pending != 0 || s.Requests != 0 || s.Retries != 0 {
			t.Fatalf("state %+v after everything was released", s)
		}
	})
}

// checkBreaker compares the breaker's state with the model and the limits.
func checkBreaker(t *testing.T, b *Breaker, m *breakerModel) {
	t.Helper()
	s := b.State()
	for _, c := range []struct {
		r          Resource
		got, limit int64
		want       int
	}{
		{Connections, s.Connections, m.lim.MaxConnections, len(m.conns)},
		{Pending, s.Pending, m.lim.MaxPending, len(m.waiters)},
		{Requests, s.Requests, m.lim.MaxRequests, len(m.requests)},
		{Retries, s.Retries, m.lim.MaxRetries, len(m.retries)},
	} {
		if c.got < 0 || c.got > c.limit {
			t.Fatalf("%s in use %d, outside [0, %d]", c.r, c.got, c.limit)
		}
		if c.got != int64(c.want) {
			t.Fatalf("%s in use %d, want %d", c.r, c.got, c.want)
		}
		if s.Overflows[c.r] != m.overflows[c.r] {
			t.Fatalf("%s overflows %d, want %d", c.r, s.Overflows[c.r], m.overflows[c.r])
		}
	}
	if s.Pending > 0 && s.Requests < m.lim.MaxRequests {
		t.Fatalf("%d requests pending while only %d of %d slots are used", s.Pending, s.Requests, m.lim.MaxRequests)
	}
}

// returnedOrPending waits until the AcquireRequest call just started either
// returns or shows up as one more pending request than the pending before.
func returnedOrPending(t *testing.T, b *Breaker, results <-chan acquireResult, pending int) (acquireResult, bool) {
	t.Helper()
	giveUp := time.Now().Add(10 * time.Second)
	for {
		select {
		case r := <-results:
			return r, false
		default:
		}
		if b.State().Pending > int64(pending) {
			return acquireResult{}, true
		}
		if time.Now().After(giveUp) {
			t.Fatal("request neither returned nor became pending")
		}
		runtime.Gosched()
	}
}
