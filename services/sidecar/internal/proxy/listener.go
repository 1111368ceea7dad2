package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"

	"github.com/switchyard-mesh/switchyard/services/kit/rawconn"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/h1"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/xds"
)

// listener is one served xDS listener. Its config is swapped in place while
// the address, protocol (HTTP or TCP) and TLS mode stay the same; otherwise
// it is replaced by a new listener and drained.
type listener struct {
	name string
	addr string
	cfg  atomic.Pointer[xds.ListenerConfig]
	ln   net.Listener
	port uint32          // bound TCP port, for RBAC destination_port
	m    *listenerSeries // HTTP listeners

	srv     *h1.Server // HTTP listeners
	tcpDone chan struct{}
	conns   sync.WaitGroup // TCP connections
	stopped chan struct{}
}

func (p *Proxy) applyListeners(s *xds.Snapshot) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ctx == nil {
		return
	}
	for name, l := range p.listeners {
		lc, ok := s.Listeners[name]
		if ok && sameShape(p.bindAddr(lc), l, lc) {
			l.cfg.Store(&lc)
			continue
		}
		delete(p.listeners, name)
		go l.stop(p.cfg.Drain)
		p.log.Info("listener removed", "listener", name)
	}
	for name, lc := range s.Listeners {
		if _, ok := p.listeners[name]; ok {
			continue
		}
		l, err := p.startListener(lc)
		if err != nil {
			p.log.Error("cannot serve listener; will retry on the next update", "listener", name, "err", err)
			continue
		}
		p.listeners[name] = l
		p.log.Info("listener serving", "listener", name, "addr", l.ln.Addr().String(), "tls", lc.TLS != nil, "tcp", lc.TCPCluster != "")
	}
}

func sameShape(addr string, l *listener, lc xds.ListenerConfig) bool {
	old := l.cfg.Load()
	return l.addr == addr && (old.HTTP == nil) == (lc.HTTP == nil) && (old.TLS == nil) == (lc.TLS == nil)
}

func (p *Proxy) bindAddr(lc xds.ListenerConfig) string {
	if a, ok := p.cfg.Bind[lc.Name]; ok {
		return a
	}
	return lc.Addr
}

// Addr returns the bound address of a served listener ("" if not serving).
func (p *Proxy) Addr(name string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l, ok := p.listeners[name]; ok {
		return l.ln.Addr().String()
	}
	return ""
}

func (p *Proxy) startListener(lc xds.ListenerConfig) (*listener, error) {
	addr := p.bindAddr(lc)
	if lc.TLS != nil && p.cfg.Identity == nil {
		return nil, errors.New("listener needs TLS but the sidecar has no identity")
	}
	tcpLn, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	ln := rawconn.Listener{Listener: tcpLn}
	l := &listener{name: lc.Name, addr: addr, ln: ln, port: port(ln.Addr()), stopped: make(chan struct{})}
	l.m = p.m.initListener(lc.Name, lc.HTTP == nil)
	l.cfg.Store(&lc)
	var tlsCfg *tls.Config
	if lc.TLS != nil {
		tlsCfg = p.cfg.Identity.ServerTLSConfigWith(l.authorizer())
		if !lc.TLS.RequireClientCert {
			tlsCfg.ClientAuth = tls.VerifyClientCertIfGiven
		}
	}
	if lc.HTTP != nil {
		h := p.newHTTPHandler(l)
		// HTTP/1.1 connections are served by h1.Server; h2 (ALPN on TLS,
		// or the h2c preface from the app, e.g. gRPC) by net/http's.
		h2 := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 5 * time.Minute,
			ErrorLog: nil, Protocols: new(http.Protocols)}
		l.srv = &h1.Server{Handler: h, H2: h2, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 5 * time.Minute, Log: p.log}
		if tlsCfg != nil {
			// ALPN from the DownstreamTlsContext; without one, h2 and http/1.1.
			tlsCfg.NextProtos = nil
			if len(lc.TLS.ALPN) == 0 || slices.Contains(lc.TLS.ALPN, "h2") {
				tlsCfg.NextProtos = append(tlsCfg.NextProtos, "h2")
				h2.Protocols.SetHTTP2(true)
				h2.TLSConfig = tlsCfg
			} else {
				l.srv.H2 = nil
			}
			if len(lc.TLS.ALPN) == 0 || slices.Contains(lc.TLS.ALPN, "http/1.1") {
				tlsCfg.NextProtos = append(tlsCfg.NextProtos, "http/1.1")
			}
			l.srv.TLS = tlsCfg
			// The caller's SPIFFE ID is worked out once per connection (see httpHandler.peer).
			connContext := func(ctx context.Context, _ net.Conn) context.Context {
				return context.WithValue(ctx, connInfoKey{}, &connInfo{})
			}
			l.srv.ConnContext, h2.ConnContext = connContext, connContext
		} else {
			h2.Protocols.SetUnencryptedHTTP2(true) // h2c (prior knowledge) from the app, e.g. gRPC
		}
		go func() {
			defer close(l.stopped)
			_ = l.srv.Serve(ln)
		}()
		return l, nil
	}
	l.tcpDone = make(chan struct{})
	go func() {
		defer close(l.stopped)
		p.serveTCP(l, tlsCfg)
	}()
	return l, nil
}

// authorizer applies the listener's current SAN matchers (if any) to the
// verified client SVID; RBAC then decides per request.
func (l *listener) authorizer() tlsconfig.Authorizer {
	return func(id spiffeid.ID, _ [][]*x509.Certificate) error {
		lc := l.cfg.Load()
		if lc.TLS == nil || len(lc.TLS.PeerIDs) == 0 {
			return nil
		}
		for _, m := range lc.TLS.PeerIDs {
			if m.Match(id.String()) {
				return nil
			}
		}
		return fmt.Errorf("client SPIFFE ID %s is not accepted by listener %s", id, l.name)
	}
}

// stop closes the listener and lets requests in flight finish within drain.
func (l *listener) stop(drain time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if l.srv != nil {
		if err := l.srv.Shutdown(ctx); err != nil {
			_ = l.srv.Close()
		}
	} else {
		close(l.tcpDone)
		_ = l.ln.Close()
		done := make(chan struct{})
		go func() { l.conns.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
		}
	}
	<-l.stopped
}
