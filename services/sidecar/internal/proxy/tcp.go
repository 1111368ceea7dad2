package proxy

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/lb"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/rbac"
)

// serveTCP is an L4 listener: optional mTLS termination and network RBAC,
// then a byte pipe to an endpoint of the listener's cluster.
func (p *Proxy) serveTCP(l *listener, tlsCfg *tls.Config) {
	var delay time.Duration
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			select {
			case <-l.tcpDone:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			p.log.Error("accept failed; listener stops", "listener", l.name, "err", err)
			return
		}
		delay = 0
		l.conns.Add(1)
		go func() {
			defer l.conns.Done()
			p.pipeTCP(l, conn, tlsCfg)
		}()
	}
}

func (p *Proxy) pipeTCP(l *listener, down net.Conn, tlsCfg *tls.Config) {
	defer down.Close()
	lc := l.cfg.Load()
	p.m.tcpConns.WithLabelValues(lc.Name).Inc()
	active := p.m.tcpActive.WithLabelValues(lc.Name)
	active.Inc()
	defer active.Dec()
	if tlsCfg != nil {
		tc := tls.Server(down, tlsCfg)
		_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			p.log.Info("TLS handshake refused", "listener", lc.Name, "remote", down.RemoteAddr().String(), "err", err)
			return
		}
		_ = tc.SetDeadline(time.Time{})
		st := tc.ConnectionState()
		peer := peerID(&st)
		for _, e := range lc.TCPRBAC {
			if ok, policy := e.Decide(rbac.Request{PeerID: peer, DestPort: port(l.ln.Addr())}); !ok {
				p.m.rbacDenied.WithLabelValues(lc.Name).Inc()
				p.log.Info("connection denied by RBAC", "listener", lc.Name, "peer", peer, "policy", policy)
				return
			}
		}
		down = tc
	}
	c := p.cluster(lc.TCPCluster)
	if c == nil {
		p.log.Warn("TCP cluster not known", "listener", lc.Name, "cluster", lc.TCPCluster)
		return
	}
	if c.noTLS {
		p.log.Warn("TCP cluster requires mTLS but this sidecar has no identity", "cluster", c.cfg.Name)
		return
	}
	host := c.pick(lb.Request{})
	if host == nil {
		p.log.Warn("no healthy upstream for TCP", "listener", lc.Name, "cluster", lc.TCPCluster)
		return
	}
	end := host.Begin()
	defer end()
	up, err := c.dial(p.ctxOrBackground(), "tcp", host.Addr)
	if err != nil {
		c.report(host.Addr, 0, true)
		p.log.Warn("TCP upstream connect failed", "cluster", c.cfg.Name, "host", host.Addr, "err", err)
		return
	}
	if c.dialTLS != nil {
		tc := tls.Client(up, c.dialTLS)
		if err := tc.Handshake(); err != nil {
			up.Close()
			p.log.Warn("TCP upstream TLS failed", "cluster", c.cfg.Name, "host", host.Addr, "err", err)
			return
		}
		up = tc
	}
	defer up.Close()
	var wg sync.WaitGroup
	wg.Go(func() { pipe(up, down) })
	pipe(down, up)
	wg.Wait()
}

// pipe copies src to dst, then half-closes dst's write side.
func pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	type closeWriter interface{ CloseWrite() error }
	if cw, ok := dst.(closeWriter); ok {
		_ = cw.CloseWrite()
	} else {
		_ = dst.Close()
	}
}
