package proxy

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestReplayBodyStreamsWithoutWaitingForTheEnd(t *testing.T) {
	pr, pw := io.Pipe()
	b := newReplayBody(pr, 64)
	a := b.attempt()
	go func() { _, _ = pw.Write([]byte("first")) }()
	p := make([]byte, 16)
	n, err := a.Read(p)
	if err != nil || string(p[:n]) != "first" {
		t.Fatalf("read %q %v before the body ended", p[:n], err)
	}
	_ = pw.Close()
}

func TestReplayBodyRetrySendsTheSameBytes(t *testing.T) {
	pr, pw := io.Pipe()
	b := newReplayBody(pr, 64)
	first := b.attempt()
	go func() { _, _ = pw.Write([]byte("head-")) }()
	p := make([]byte, 16)
	if n, _ := first.Read(p); string(p[:n]) != "head-" {
		t.Fatalf("first attempt read %q", p[:n])
	}
	if !b.reclaim(0) {
		t.Fatal("reclaim failed with no read in progress")
	}
	if _, err := first.Read(p); !errors.Is(err, errReclaimed) {
		t.Fatalf("the reclaimed attempt read on: %v", err)
	}
	second := b.attempt()
	go func() { _, _ = pw.Write([]byte("tail")); _ = pw.Close() }()
	got, err := io.ReadAll(second)
	if err != nil || string(got) != "head-tail" {
		t.Fatalf("retry read %q %v, want the kept bytes and then the rest", got, err)
	}
	// After the end, a third attempt replays it all from memory.
	if !b.reclaim(0) {
		t.Fatal("reclaim after the end failed")
	}
	if got, err := io.ReadAll(b.attempt()); err != nil || string(got) != "head-tail" {
		t.Fatalf("third attempt read %q %v", got, err)
	}
}

func TestReplayBodyOverTheLimitIsNotReplayed(t *testing.T) {
	b := newReplayBody(strings.NewReader(strings.Repeat("x", 100)), 64)
	a := b.attempt()
	if got, err := io.ReadAll(a); err != nil || len(got) != 100 {
		t.Fatalf("the owning attempt read %d bytes, %v: it must get the whole body", len(got), err)
	}
	if b.reclaim(0) {
		t.Fatal("a body past the limit was reclaimed for a replay")
	}
	if _, err := b.getBody(); err == nil {
		t.Fatal("getBody replayed a body past the limit")
	}
}

func TestReplayBodyReclaimWaitsForAReadInProgress(t *testing.T) {
	pr, pw := io.Pipe()
	b := newReplayBody(pr, 64)
	a := b.attempt()
	done := make(chan struct{})
	go func() {
		defer close(done)
		p := make([]byte, 16)
		_, _ = a.Read(p) // blocks in the source until the write below
	}()
	for {
		b.mu.Lock()
		reading := b.reading
		b.mu.Unlock()
		if reading {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if b.reclaim(5 * time.Millisecond) {
		t.Fatal("reclaimed while a read was in the source and nothing arrived")
	}
	go func() {
		time.Sleep(5 * time.Millisecond)
		_, _ = pw.Write([]byte("late"))
	}()
	if !b.reclaim(5 * time.Second) {
		t.Fatal("reclaim did not wait for the read in progress to end")
	}
	<-done
	go func() { _ = pw.Close() }()
	if got, err := io.ReadAll(b.attempt()); err != nil || string(got) != "late" {
		t.Fatalf("after the wait the retry read %q %v", got, err)
	}
}

func TestReplayBodyWhenRead(t *testing.T) {
	type call struct {
		body     string
		complete bool
	}
	record := func(calls *[]call) func([]byte, bool) {
		return func(body []byte, complete bool) { *calls = append(*calls, call{string(body), complete}) }
	}

	var calls []call
	b := newReplayBody(&chunkReader{data: []byte("whole body"), max: 3}, 64)
	b.whenRead(record(&calls))
	a := b.attempt()
	p := make([]byte, 4)
	_, _ = a.Read(p)
	if len(calls) != 0 {
		t.Fatalf("called before the end: %v", calls)
	}
	_, _ = io.ReadAll(a)
	b.finish()
	if len(calls) != 1 || calls[0] != (call{"whole body", true}) {
		t.Fatalf("at the end: %v, want one call with the whole body", calls)
	}
	b.whenRead(record(&calls)) // registered after the end: called at once
	if len(calls) != 2 || calls[1] != (call{"whole body", true}) {
		t.Fatalf("late registration: %v", calls)
	}

	calls = nil
	b = newReplayBody(strings.NewReader(strings.Repeat("x", 100)), 64)
	b.whenRead(record(&calls))
	_, _ = io.ReadAll(b.attempt())
	if len(calls) != 1 || calls[0].complete {
		t.Fatalf("past the limit: %v, want one call, not complete", calls)
	}

	calls = nil
	pr, pw := io.Pipe()
	defer pw.Close()
	b = newReplayBody(pr, 64)
	b.whenRead(record(&calls))
	b.finish() // the request ended before its body did
	b.finish()
	if len(calls) != 1 || calls[0].complete {
		t.Fatalf("request over before the body: %v, want one call, not complete", calls)
	}
}

// FuzzReplayBody reads a body in chunks of fuzzed sizes, reclaiming and
// starting a new attempt at fuzzed points: every attempt that reaches the
// end must have read the whole body, in order.
func FuzzReplayBody(f *testing.F) {
	f.Add([]byte("hello, world"), []byte{3, 0, 5, 0, 100}, uint8(16))
	f.Add([]byte(strings.Repeat("y", 80)), []byte{10, 0, 10}, uint8(64))
	f.Fuzz(func(t *testing.T, body, plan []byte, limit uint8) {
		b := newReplayBody(&chunkReader{data: body, max: 7}, int(limit))
		a := b.attempt()
		var got []byte
		for _, step := range plan {
			if step == 0 { // retry from here if the body can be replayed
				if b.reclaim(0) {
					a, got = b.attempt(), nil
				}
				continue
			}
			p := make([]byte, step)
			n, err := a.Read(p)
			got = append(got, p[:n]...)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("read: %v", err)
			}
		}
		rest, err := io.ReadAll(a)
		if err != nil {
			t.Fatalf("read to the end: %v", err)
		}
		if got = append(got, rest...); string(got) != string(body) {
			t.Fatalf("attempt read %q, want %q", got, body)
		}
	})
}

// chunkReader returns at most max bytes per Read, as a network body does.
type chunkReader struct {
	data []byte
	max  int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.max)], c.data)
	c.data = c.data[n:]
	return n, nil
}
