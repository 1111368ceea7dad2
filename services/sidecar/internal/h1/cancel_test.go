package h1

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// pipeConn is an upstream conn over one end of a pipe, whose reads tell
// whether it was interrupted.
func pipeConn(t *testing.T) *conn {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return &conn{nc: a}
}

func interrupted(t *testing.T, c *conn) bool {
	t.Helper()
	done := make(chan error, 1)
	go func() { _, err := c.nc.Read(make([]byte, 1)); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read on the upstream conn: %v", err)
		}
		return true
	case <-time.After(50 * time.Millisecond):
		_ = c.nc.SetReadDeadline(time.Unix(1, 0)) // end the read
		<-done
		return false
	}
}

func TestRequestContextSlot(t *testing.T) {
	t.Run("watched and given back", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		rc, c := newRequestContext(ctx), pipeConn(t)
		w := watchCancel(rc, c)
		if w.rc == nil {
			t.Fatal("the request context's own slot was not used")
		}
		if !w.stop() {
			t.Fatal("stop reported an interruption that did not happen")
		}
		cancel()
		if interrupted(t, c) {
			t.Fatal("a connection given back was interrupted when the context ended later")
		}
	})
	t.Run("context ends while watched", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		rc, c := newRequestContext(ctx), pipeConn(t)
		w := watchCancel(rc, c)
		cancel()
		if !interrupted(t, c) {
			t.Fatal("the watched connection was not interrupted")
		}
		if w.stop() {
			t.Fatal("stop after the interruption reported none: the connection would be reused")
		}
	})
	t.Run("watched after the context ended", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		rc, c := newRequestContext(ctx), pipeConn(t)
		time.Sleep(10 * time.Millisecond) // rc.end has run
		w := watchCancel(rc, c)
		if !interrupted(t, c) || w.stop() {
			t.Fatal("a connection watched on an ended context was not interrupted, or stop did not say so")
		}
	})
	t.Run("a second exchange on the same context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		rc, first, second := newRequestContext(ctx), pipeConn(t), pipeConn(t)
		w1, w2 := watchCancel(rc, first), watchCancel(rc, second)
		if w2.rc != nil || w2.stopFunc == nil {
			t.Fatal("the second exchange did not fall back to context.AfterFunc")
		}
		cancel()
		if !interrupted(t, first) || !interrupted(t, second) {
			t.Fatal("both exchanges must be interrupted")
		}
		if w1.stop() || w2.stop() {
			t.Fatal("stop after the interruption reported none")
		}
	})
}

// TestClientLeavingInterruptsTheUpstreamExchange: a Server relaying to a
// Transport (what the sidecar does) ends the upstream exchange when its
// client hangs up, waiting for the headers or in the middle of the body.
func TestClientLeavingInterruptsTheUpstreamExchange(t *testing.T) {
	for _, path := range []string{"/headers", "/body"} {
		t.Run(path, func(t *testing.T) {
			upstreamGone := make(chan struct{})
			u := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/body" {
					io.WriteString(w, "start")
					w.(http.Flusher).Flush()
				}
				select {
				case <-r.Context().Done(): // net/http: its client closed the connection
					close(upstreamGone)
				case <-time.After(5 * time.Second):
				}
			})
			tr := plainTransport()
			relayErr := make(chan error, 1)
			addr, _ := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if _, ok := r.Context().(*requestContext); !ok {
					t.Errorf("request context is %T, not the connection's slot", r.Context())
				}
				out, _ := http.NewRequestWithContext(r.Context(), "GET", u.URL+r.URL.Path, nil)
				resp, err := tr.RoundTrip(out)
				if err != nil {
					relayErr <- err
					return
				}
				defer resp.Body.Close()
				w.WriteHeader(resp.StatusCode)
				buf := make([]byte, 5)
				for {
					n, err := resp.Body.Read(buf)
					w.Write(buf[:n])
					w.(http.Flusher).Flush()
					if err != nil {
						relayErr <- err
						return
					}
				}
			}), func(s *Server) { s.WatchAfter = 20 * time.Millisecond })
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			c.Write([]byte("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n"))
			if path == "/body" {
				c.SetReadDeadline(time.Now().Add(2 * time.Second))
				b := make([]byte, 512)
				var got string
				for !strings.Contains(got, "start") {
					n, err := c.Read(b)
					if err != nil {
						t.Fatalf("waiting for the start of the body: %v (got %q)", err, got)
					}
					got += string(b[:n])
				}
			}
			time.Sleep(50 * time.Millisecond) // past WatchAfter
			c.Close()
			select {
			case <-upstreamGone:
			case <-time.After(3 * time.Second):
				t.Fatal("the upstream exchange outlived the client")
			}
			// Cut short, not ended: the client's leaving as the cause
			// (headers), or the interrupted read (body).
			if err := <-relayErr; err == nil || err == io.EOF || !strings.Contains(err.Error(), "client closed") && !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("relay ended with %v, want an interrupted exchange", err)
			}
		})
	}
}
