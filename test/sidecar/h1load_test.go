package sidecar_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// h1Load is a lean HTTP/1.1 load generator in the manner of wrk2: a fixed
// set of keep-alive connections, one pre-encoded GET, responses parsed
// just enough to find their end and status, no allocation per request.
// The benchmark's generator shares the two cores with what it measures;
// net/http's client (a goroutine per request, a header map, a GC every few
// hundred requests) costs about what one proxy does and its pauses land in
// every target's tail alike, hiding differences between them.
type h1Load struct {
	addr  string
	req   []byte
	conns int
	// timeline, if set, gets one "due,latency" line per answered request
	// of a constant run (Unix nanoseconds, nanoseconds), in due order, to
	// set requests beside what the proxies did (tracestat -requests).
	timeline io.Writer
}

func newH1Load(addr, host string, conns int) *h1Load {
	return &h1Load{addr: addr, conns: conns,
		req: fmt.Appendf(nil, "GET / HTTP/1.1\r\nHost: %s\r\nUser-Agent: h1load\r\n\r\n", host)}
}

// errStatus is a complete answer other than 200.
var errStatus = errors.New("status other than 200")

// h1Conn is one keep-alive connection of the generator.
type h1Conn struct {
	l  *h1Load
	c  net.Conn
	br *bufio.Reader
}

func (l *h1Load) dial() (*h1Conn, error) {
	c, err := net.Dial("tcp", l.addr)
	if err != nil {
		return nil, err
	}
	return &h1Conn{l: l, c: c, br: bufio.NewReaderSize(c, 16<<10)}, nil
}

// do sends the request and reads the whole answer; errStatus for a
// non-200 answer. closing: the server ends the connection after this
// answer (nginx does after keepalive_requests), so dial a new one.
func (h *h1Conn) do() (closing bool, err error) {
	if _, err := h.c.Write(h.l.req); err != nil {
		return true, err
	}
	line, err := h.br.ReadSlice('\n')
	if err != nil {
		return true, err
	}
	ok := bytes.HasPrefix(line, []byte("HTTP/1.1 200 "))
	length, chunked := -1, false
	for {
		line, err := h.br.ReadSlice('\n')
		if err != nil {
			return true, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil {
				return true, fmt.Errorf("content-length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			closing = bytes.EqualFold(value, []byte("close"))
		}
	}
	switch {
	case chunked:
		err = h.skipChunks()
	case length >= 0:
		_, err = h.br.Discard(length)
	default:
		return true, errors.New("answer without Content-Length or chunked body")
	}
	if err != nil {
		return true, err
	}
	if !ok {
		return closing, errStatus
	}
	return closing, nil
}

func (h *h1Conn) skipChunks() error {
	for {
		line, err := h.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		hex, _, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(";"))
		size, err := strconv.ParseUint(string(hex), 16, 32)
		if err != nil {
			return fmt.Errorf("chunk size %q", line)
		}
		if size == 0 {
			for { // trailers, then the empty line
				line, err := h.br.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(bytes.TrimRight(line, "\r\n")) == 0 {
					return nil
				}
			}
		}
		if _, err := h.br.Discard(int(size) + 2); err != nil {
			return err
		}
	}
}

// constant sends rps requests a second for d, open loop: request i is due
// at start+i/rps and goes on connection i mod conns; its latency counts
// from its due time, so a request held up behind a slow one on its
// connection counts the wait (no coordinated omission). It returns the
// sorted latencies of the answered requests and the number that failed.
func (l *h1Load) constant(rps int, d time.Duration) ([]time.Duration, int, error) {
	conns := make([]*h1Conn, l.conns)
	for i := range conns {
		c, err := l.dial()
		if err != nil {
			for _, c := range conns[:i] {
				c.c.Close()
			}
			return nil, 0, err
		}
		conns[i] = c
	}
	n := int(d.Seconds() * float64(rps))
	lat := make([]time.Duration, n)
	var failed atomic.Int64
	var firstErr error
	var once sync.Once
	fail := func(err error) {
		failed.Add(1)
		once.Do(func() { firstErr = err })
	}
	var wg sync.WaitGroup
	start := time.Now().Add(10 * time.Millisecond)
	for ci, c := range conns {
		wg.Go(func() {
			defer func() {
				if c != nil {
					c.c.Close()
				}
			}()
			for i := ci; i < n; i += len(conns) {
				due := start.Add(time.Duration(i) * time.Second / time.Duration(rps))
				time.Sleep(time.Until(due))
				if c == nil {
					var err error
					if c, err = l.dial(); err != nil {
						lat[i] = -1
						fail(err)
						continue
					}
				}
				closing, err := c.do()
				lat[i] = time.Since(due)
				if err != nil {
					fail(err)
				}
				if closing {
					c.c.Close()
					c = nil
				}
			}
		})
	}
	wg.Wait()
	if l.timeline != nil {
		w := bufio.NewWriter(l.timeline)
		for i, d := range lat {
			if d >= 0 {
				fmt.Fprintf(w, "%d,%d\n", start.Add(time.Duration(i)*time.Second/time.Duration(rps)).UnixNano(), d.Nanoseconds())
			}
		}
		if err := w.Flush(); err != nil {
			return nil, 0, fmt.Errorf("timeline: %w", err)
		}
	}
	lat = slices.DeleteFunc(lat, func(d time.Duration) bool { return d < 0 })
	slices.Sort(lat)
	return lat, int(failed.Load()), firstErr
}

// closed keeps every connection busy for d and returns the answers a
// second (200s only).
func (l *h1Load) closed(d time.Duration) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var done atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, l.conns)
	for ci := range l.conns {
		wg.Go(func() {
			var c *h1Conn
			for ctx.Err() == nil {
				if c == nil {
					var err error
					if c, err = l.dial(); err != nil {
						errs[ci] = err
						return
					}
				}
				closing, err := c.do()
				if err != nil {
					errs[ci] = err
					c.c.Close()
					return
				}
				done.Add(1)
				if closing {
					c.c.Close()
					c = nil
				}
			}
			if c != nil {
				c.c.Close()
			}
		})
	}
	wg.Wait()
	return float64(done.Load()) / d.Seconds(), errors.Join(errs...)
}

// TestH1LoadChecksAnswers runs the benchmark's generator against a real
// HTTP server so that it cannot rot: every answer is read whole, whether
// sized or chunked, a connection the server closes is replaced, and a
// wrong status counts as a failure.
func TestH1LoadChecksAnswers(t *testing.T) {
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		if r.Host != "users" {
			http.Error(w, "wrong host", http.StatusMisdirectedRequest)
			return
		}
		switch served.Load() % 3 {
		case 1:
			w.(http.Flusher).Flush() // chunked
		case 2:
			w.Header().Set("Connection", "close") // as nginx after keepalive_requests
		}
		_, _ = io.WriteString(w, "hello")
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()

	load := newH1Load(addr, "users", 4)
	var timeline strings.Builder
	load.timeline = &timeline
	lat, failed, err := load.constant(200, time.Second)
	if err != nil || failed != 0 || len(lat) != 200 || served.Load() != 200 {
		t.Fatalf("right host: %d answered, %d failed (%v), %d served; want 200, 0, 200", len(lat), failed, err, served.Load())
	}
	if lat[0] <= 0 || lat[len(lat)-1] > 5*time.Second {
		t.Fatalf("latencies %v … %v", lat[0], lat[len(lat)-1])
	}
	// The timeline: one line per request, due 5 ms apart, latencies as measured.
	lines := strings.Split(strings.TrimSpace(timeline.String()), "\n")
	if len(lines) != 200 {
		t.Fatalf("timeline has %d lines, want 200", len(lines))
	}
	var prevDue int64
	for i, l := range lines {
		var due, ns int64
		if _, err := fmt.Sscanf(l, "%d,%d", &due, &ns); err != nil || ns <= 0 || i > 0 && due-prevDue != int64(5*time.Millisecond) {
			t.Fatalf("timeline line %d %q (previous due %d): want due 5ms after the one before and a positive latency", i, l, prevDue)
		}
		prevDue = due
	}
	_, failed, err = newH1Load(addr, "orders", 4).constant(100, 500*time.Millisecond)
	if failed != 50 || !errors.Is(err, errStatus) {
		t.Fatalf("wrong host: %d failed (%v); want all 50 with a status error", failed, err)
	}
	rate, err := newH1Load(addr, "users", 4).closed(300 * time.Millisecond)
	if err != nil || rate < 100 {
		t.Fatalf("closed loop: %.0f/s, %v", rate, err)
	}
}
