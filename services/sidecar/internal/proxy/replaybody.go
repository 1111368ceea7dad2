package proxy

import (
	"errors"
	"io"
	"sync"
	"time"
)

// replayBody is a request body of unknown length (HTTP/2 without
// content-length, or chunked: every gRPC call's body) on a route that
// retries or mirrors. It streams to the attempt that owns it as it
// arrives, never waiting for its end (a streaming call would deadlock),
// and keeps a copy of up to limit bytes, so that a retry sends the same
// bytes again, the kept ones first and then the rest as it arrives
// (Envoy's per_request_buffer_limit), and a mirror gets the whole body
// once it has passed (whenRead). Once more than limit bytes have passed,
// neither is possible.
//
// One attempt at a time owns the source: reclaim takes it back from an
// attempt that is not inside a Read of it, and that attempt's reader then
// fails with errReclaimed.
type replayBody struct {
	src   io.Reader
	limit int

	mu      sync.Mutex
	wake    chan struct{} // a Read of src ended while reclaim waited for it; made by the first wait
	buf     []byte
	over    bool  // more than limit bytes were read: no replay
	err     error // src's last error (io.EOF at its end)
	owner   *attemptBody
	reading bool // the owner is inside src.Read
	waiting bool // reclaim waits for that Read to end
	ended   bool // src has ended, or passed limit, or the request is over
	onEnd   []func(body []byte, complete bool)
}

// attemptBody is one attempt's reader of a replayBody.
type attemptBody struct {
	b   *replayBody
	off int // bytes of buf this attempt has read
}

var errReclaimed = errors.New("request body taken back for a retry")

func newReplayBody(src io.Reader, limit int) *replayBody {
	return &replayBody{src: src, limit: limit}
}

// attempt hands the body to a new attempt. The previous one, if any, must
// have been reclaimed.
func (b *replayBody) attempt() io.ReadCloser {
	b.mu.Lock()
	defer b.mu.Unlock()
	a := &attemptBody{b: b}
	b.owner = a
	return a
}

// getBody is http.Request.GetBody for a transport that sends a request
// again by itself (on a pooled connection found closed): a new attempt
// if the body can be taken back at once.
func (b *replayBody) getBody() (io.ReadCloser, error) {
	if !b.reclaim(0) {
		return nil, errors.New("request body cannot be replayed")
	}
	return b.attempt(), nil
}

// reclaim takes the body back from the attempt that has it, waiting up to
// wait for a Read of the source in progress to end (one does at once when
// the caller has sent all of its body). It is false if that Read did not
// end, or if more than limit bytes have passed.
func (b *replayBody) reclaim(wait time.Duration) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.reading && !b.over && wait > 0 {
		if b.wake == nil {
			b.wake = make(chan struct{}, 1)
		}
		wake := b.wake
		b.waiting = true
		b.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-wake:
		case <-t.C:
		}
		t.Stop()
		b.mu.Lock()
		b.waiting = false
		select {
		case <-wake: // a wake sent after the timer fired
		default:
		}
	}
	if b.over || b.reading {
		return false
	}
	b.owner = nil
	return true
}

func (a *attemptBody) Read(p []byte) (int, error) {
	b := a.b
	b.mu.Lock()
	if b.owner != a {
		b.mu.Unlock()
		return 0, errReclaimed
	}
	if a.off < len(b.buf) {
		n := copy(p, b.buf[a.off:])
		a.off += n
		b.mu.Unlock()
		return n, nil
	}
	if b.err != nil {
		err := b.err
		b.mu.Unlock()
		return 0, err
	}
	b.reading = true
	b.mu.Unlock()
	n, err := b.src.Read(p)
	b.mu.Lock()
	b.reading = false
	if !b.over {
		if len(b.buf)+n > b.limit {
			b.over, b.buf = true, nil
		} else {
			b.buf = append(b.buf, p[:n]...)
			a.off += n
		}
	}
	if err != nil {
		b.err = err
	}
	if b.waiting {
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
	if err != nil || b.over {
		b.runEndLocked() // unlocks
		return n, err
	}
	b.mu.Unlock()
	return n, err
}

// whenRead calls f once the body has been read to its end (complete, with
// the whole body), or can no longer be kept whole (past limit, a read
// error, the request over before its end: not complete). Mirrors of a
// streamed body wait for it this way, so the caller never waits for them.
// f must not block.
func (b *replayBody) whenRead(f func(body []byte, complete bool)) {
	b.mu.Lock()
	if !b.ended {
		b.onEnd = append(b.onEnd, f)
		b.mu.Unlock()
		return
	}
	body, complete := b.buf, b.completeLocked()
	b.mu.Unlock()
	f(body, complete)
}

// finish ends the body when its request is over: what still waits for its
// end is told it will not come whole.
func (b *replayBody) finish() {
	b.mu.Lock()
	b.runEndLocked()
}

// runEndLocked marks the body ended, unlocks b.mu and calls what waited
// for the end, once.
func (b *replayBody) runEndLocked() {
	if b.ended {
		b.mu.Unlock()
		return
	}
	b.ended = true
	fs, body, complete := b.onEnd, b.buf, b.completeLocked()
	b.onEnd = nil
	b.mu.Unlock()
	for _, f := range fs {
		f(body, complete)
	}
}

func (b *replayBody) completeLocked() bool { return errors.Is(b.err, io.EOF) && !b.over }

// Close ends the attempt's use of the body; the source is the server's to
// close.
func (a *attemptBody) Close() error { return nil }
