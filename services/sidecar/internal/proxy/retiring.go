package proxy

import (
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// retiringTransport is an h2 pool whose connections live at most a given
// duration (Envoy's max_connection_duration). net/http's pool has no
// per-connection lifetime, so the pool works in generations: every
// lifetime, new requests move to a fresh transport (new connections,
// hence new handshakes), and the previous generation's connections are
// closed as soon as their streams have ended. A connection is therefore
// never used for new requests once it is lifetime old; one opened late in
// a generation is retired younger. Generations last at least
// minGeneration, however short the lifetime.
type retiringTransport struct {
	template *http.Transport
	cur      atomic.Pointer[generation]
}

// generation is one transport and the count of connections it has open.
type generation struct {
	*http.Transport
	open atomic.Int64
}

// minGeneration bounds how often a pool starts over: a transport and a
// goroutine per generation.
const minGeneration = 100 * time.Millisecond

func newRetiringTransport(template *http.Transport, lifetime time.Duration, stop <-chan struct{}) *retiringTransport {
	r := &retiringTransport{template: template}
	r.cur.Store(r.newGeneration())
	go r.rotate(max(lifetime, minGeneration), stop)
	return r
}

func (r *retiringTransport) newGeneration() *generation {
	g := &generation{Transport: r.template.Clone()}
	dial := r.template.DialContext
	g.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		g.open.Add(1)
		return &generationConn{Conn: conn, g: g}, nil
	}
	return g
}

// RoundTrip sends req on the current generation.
func (r *retiringTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return r.cur.Load().RoundTrip(req)
}

// CloseIdleConnections closes the current generation's idle connections.
func (r *retiringTransport) CloseIdleConnections() { r.cur.Load().CloseIdleConnections() }

// rotate starts a new generation every lifetime and retires the one
// before, until stop is closed.
func (r *retiringTransport) rotate(lifetime time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(lifetime)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			go retire(r.cur.Swap(r.newGeneration()))
		}
	}
}

// retire closes g's connections as their streams end: the idle ones at
// once, the others when checked again, after 100ms at first and less
// often (up to every 5s) while a long stream keeps one open. It goes on
// after the cluster is replaced: those connections are nobody else's.
func retire(g *generation) {
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		g.CloseIdleConnections()
		if g.open.Load() == 0 {
			return
		}
		time.Sleep(wait)
	}
}

// generationConn counts itself out of its generation when closed.
type generationConn struct {
	net.Conn
	g    *generation
	once sync.Once
}

func (c *generationConn) Close() error {
	c.once.Do(func() { c.g.open.Add(-1) })
	return c.Conn.Close()
}
