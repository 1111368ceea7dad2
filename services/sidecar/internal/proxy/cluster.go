package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"

	"github.com/switchyard-mesh/switchyard/services/kit/rawconn"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/breaker"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/h1"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/lb"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/outlier"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/retry"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/xds"
)

// cluster is the runtime of one upstream cluster: its endpoints, picker,
// breaker, retry budget, outlier detector and connection pool. A cluster
// whose config changes is replaced by a new one; requests in flight finish
// on the old one. Endpoint changes update it in place.
type cluster struct {
	cfg     xds.ClusterConfig
	breaker *breaker.Breaker
	budget  *retry.Budget // nil: no budget
	outlier *outlier.Detector
	h1      *h1.Transport   // HTTP/1.1 upstream
	h2      *http.Transport // h2 (or h2c) upstream
	// h2Pool serves the h2 requests: h2 itself, or with a maximum
	// connection duration a retiringTransport built from it.
	h2Pool interface {
		http.RoundTripper
		CloseIdleConnections()
	}
	// The transport for a request that arrived over HTTP/1.x and over h2:
	// the cluster's protocol, or for use_downstream_protocol_config the
	// request's own version.
	forH1, forH2 http.RoundTripper
	dial         func(ctx context.Context, network, addr string) (net.Conn, error)
	dialTLS      *tls.Config // nil: plaintext
	noTLS        bool        // the cluster needs mTLS but there is no identity: refuse, never downgrade
	m            *metrics
	series       *clusterSeries

	mu        sync.Mutex
	endpoints xds.Endpoints
	hosts     map[string]*lb.Host
	picker    atomic.Pointer[pickerBox]

	stop chan struct{}
}

type pickerBox struct{ lb.Picker }

// errConnOverflow is returned by the dialer when max_connections is reached.
var errConnOverflow = errors.New("circuit breaker: max_connections reached")

func newCluster(cfg xds.ClusterConfig, id Identity, m *metrics, now func() time.Time) *cluster {
	c := &cluster{cfg: cfg, breaker: breaker.New(cfg.Limits), m: m, hosts: map[string]*lb.Host{}, stop: make(chan struct{})}
	c.series = m.initCluster(cfg.Name)
	if cfg.RetryBudget > 0 {
		c.budget = retry.NewBudget(cfg.RetryBudget, cfg.RetryBudgetMin, now)
	}
	if cfg.Outlier != nil {
		c.outlier = outlier.New(*cfg.Outlier, now)
	}
	dialer := &net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		release, ok := c.breaker.TryAcquire(breaker.Connections)
		if !ok {
			m.upstreamOverflow.WithLabelValues(cfg.Name, string(breaker.Connections)).Inc()
			return nil, errConnOverflow
		}
		conn, err := rawconn.DialContext(ctx, dialer, network, addr)
		if err != nil {
			release()
			c.series.connsFailed.Inc()
			return nil, err
		}
		c.series.connsOpened.Inc()
		c.series.connsOpen.Inc()
		return &countedConn{Conn: conn, release: func() { c.series.connsOpen.Dec(); release() }}, nil
	}
	c.dial = dial
	idle := cfg.IdleTimeout
	if idle <= 0 {
		idle = 90 * time.Second
	}
	c.h1 = &h1.Transport{DialContext: dial, MaxIdlePerHost: 256, IdleTimeout: idle, HandshakeTimeout: cfg.ConnectTimeout,
		MaxConnectionDuration: cfg.MaxConnectionDuration}
	t := &http.Transport{
		DialContext:         dial,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     idle,
		DisableCompression:  true, // pass the app's Accept-Encoding through untouched
		TLSHandshakeTimeout: cfg.ConnectTimeout,
		Protocols:           new(http.Protocols),
	}
	if cfg.TLS != nil && id != nil {
		c.dialTLS = id.ClientTLSConfigWith(peerAuthorizer(cfg.TLS.PeerIDs))
		c.dialTLS.ServerName = cfg.TLS.SNI
		// Each transport offers only its own version in ALPN, from those the
		// UpstreamTlsContext allows (the control plane sends h2, http/1.1).
		alpn := cfg.TLS.ALPN
		if len(alpn) == 0 {
			alpn = []string{"h2", "http/1.1"}
		}
		if slices.Contains(alpn, "http/1.1") {
			c.h1.TLS = c.dialTLS.Clone()
			c.h1.TLS.NextProtos = []string{"http/1.1"}
			// A pool that grows under a burst resumes sessions with the
			// hosts it knows instead of full mTLS handshakes on both
			// sidecars (the identity package's configs verify resumed
			// sessions again). h2 pools dial once per host: not needed.
			c.h1.ResumeSessions = true
			c.h1.OnHandshake = func(resumed bool) {
				if resumed {
					c.series.handshakesResumed.Inc()
				} else {
					c.series.handshakesFull.Inc()
				}
			}
		}
		if slices.Contains(alpn, "h2") {
			t.TLSClientConfig = c.dialTLS.Clone()
			t.TLSClientConfig.NextProtos = []string{"h2"}
			t.Protocols.SetHTTP2(true)
		}
	} else if cfg.TLS != nil {
		c.noTLS = true
	} else {
		t.Protocols.SetUnencryptedHTTP2(true)
	}
	c.h2, c.h2Pool = t, t
	if cfg.MaxConnectionDuration > 0 {
		c.h2Pool = newRetiringTransport(t, cfg.MaxConnectionDuration, c.stop)
	}
	c.forH1, c.forH2 = c.transportFor(false), c.transportFor(true)
	if cfg.Endpoints != nil {
		c.setEndpoints(*cfg.Endpoints)
	}
	if c.outlier != nil {
		go c.tickOutlier()
	}
	return c
}

// peerAuthorizer accepts exactly the configured SPIFFE IDs, or any member
// of the trust domain of the SVID that signed it when none are configured.
func peerAuthorizer(ids []string) tlsconfig.Authorizer {
	if len(ids) == 0 {
		return tlsconfig.AuthorizeAny()
	}
	var allowed []spiffeid.ID
	for _, s := range ids {
		if id, err := spiffeid.FromString(s); err == nil {
			allowed = append(allowed, id)
		}
	}
	return tlsconfig.AuthorizeOneOf(allowed...)
}

type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

// CloseWrite half-closes when the underlying connection can (TCP proxying).
func (c *countedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}

// HoldWrites passes the HTTP/1.1 transport's hold of a request on to the
// raw connection (kit/rawconn), which sends it with the read of the reply.
func (c *countedConn) HoldWrites() {
	if h, ok := c.Conn.(interface{ HoldWrites() }); ok {
		h.HoldWrites()
	}
}

func (c *countedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// close stops background work and drops idle connections once in-flight
// requests had time to finish.
func (c *cluster) close() {
	close(c.stop)
	time.AfterFunc(30*time.Second, c.closeIdle)
}

func (c *cluster) tickOutlier() {
	t := time.NewTicker(c.outlier.Interval())
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			if c.outlier.Tick() {
				c.rebuild()
			}
		}
	}
}

// setEndpoints replaces the endpoint set, keeping Host objects (and their
// in-flight counts) of addresses that remain.
func (c *cluster) setEndpoints(e xds.Endpoints) {
	c.mu.Lock()
	next := make(map[string]*lb.Host, len(e.Hosts))
	addrs := make([]string, 0, len(e.Hosts))
	for _, ep := range e.Hosts {
		h, ok := c.hosts[ep.Addr]
		if !ok || h.Weight != ep.Weight || h.Priority != ep.Priority || h.Locality != ep.Locality {
			h = &lb.Host{Addr: ep.Addr, Weight: ep.Weight, Priority: ep.Priority, Locality: ep.Locality}
		}
		next[ep.Addr] = h
		addrs = append(addrs, ep.Addr)
	}
	c.hosts, c.endpoints = next, e
	c.mu.Unlock()
	if c.outlier != nil {
		c.outlier.SetHosts(addrs)
	}
	c.rebuild()
}

// rebuild makes a new picker over the hosts that are healthy and not ejected.
func (c *cluster) rebuild() {
	c.mu.Lock()
	defer c.mu.Unlock()
	var levels []lb.Level
	ejected := 0
	for _, ep := range c.endpoints.Hosts {
		for int(ep.Priority) >= len(levels) {
			levels = append(levels, lb.Level{})
		}
		lv := &levels[ep.Priority]
		lv.Total++
		if c.outlier != nil && c.outlier.Ejected(ep.Addr) {
			ejected++
			continue
		}
		if ep.Healthy {
			lv.Available = append(lv.Available, c.hosts[ep.Addr])
		}
	}
	opts := lb.Options{MinRingSize: c.cfg.MinRingSize, ChoiceCount: c.cfg.ChoiceCount}
	var p lb.Picker
	if len(levels) <= 1 {
		var avail []*lb.Host
		if len(levels) == 1 {
			avail = levels[0].Available
		}
		p = lb.New(c.cfg.LBPolicy, avail, opts)
	} else {
		p = lb.NewLocality(c.cfg.LBPolicy, levels, c.endpoints.Overprovisioning, opts)
	}
	c.picker.Store(&pickerBox{p})
	c.m.upstreamEjected.WithLabelValues(c.cfg.Name).Set(float64(ejected))
}

func (c *cluster) pick(req lb.Request) *lb.Host {
	b := c.picker.Load()
	if b == nil {
		return nil
	}
	return b.Pick(req)
}

// report feeds an attempt's outcome to outlier detection.
func (c *cluster) report(addr string, status int, connectFailure bool) {
	if c.outlier == nil {
		return
	}
	if c.outlier.Report(addr, outlier.Result{Status: status, ConnectFailure: connectFailure}) {
		c.m.upstreamEjections.WithLabelValues(c.cfg.Name, string(c.outlier.State(addr).Reason)).Inc()
		c.rebuild()
	}
}

// hostStatus is one host's line on /clusters.
type hostStatus struct {
	Addr      string `json:"address"`
	Hostname  string `json:"hostname,omitempty"`
	Locality  string `json:"locality"`
	Priority  uint32 `json:"priority"`
	Weight    uint32 `json:"weight"`
	Healthy   bool   `json:"healthy"`
	Ejected   bool   `json:"ejected"`
	Reason    string `json:"ejection_reason,omitempty"`
	Ejections int    `json:"ejections,omitempty"`
	Until     string `json:"ejected_until,omitempty"`
	Active    int64  `json:"active_requests"`
}

type clusterStatus struct {
	Name    string         `json:"name"`
	Policy  string         `json:"lb_policy"`
	MTLS    bool           `json:"mtls"`
	HTTP    string         `json:"http_protocol"`
	Breaker breaker.State  `json:"circuit_breaker"`
	Limits  breaker.Limits `json:"limits"`
	Hosts   []hostStatus   `json:"hosts"`
}

func (c *cluster) status() clusterStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := clusterStatus{Name: c.cfg.Name, Policy: c.cfg.LBPolicy.String(), MTLS: c.cfg.TLS != nil, HTTP: c.cfg.Protocol.String(),
		Breaker: c.breaker.State(), Limits: c.cfg.Limits}
	for _, ep := range c.endpoints.Hosts {
		hs := hostStatus{Addr: ep.Addr, Hostname: ep.Hostname, Locality: ep.Locality, Priority: ep.Priority, Weight: ep.Weight, Healthy: ep.Healthy}
		if h := c.hosts[ep.Addr]; h != nil {
			hs.Active = h.Active()
		}
		if c.outlier != nil {
			st := c.outlier.State(ep.Addr)
			hs.Ejected, hs.Reason, hs.Ejections = st.Ejected, string(st.Reason), st.Ejections
			if st.Ejected {
				hs.Until = st.Until.UTC().Format(time.RFC3339)
			}
		}
		s.Hosts = append(s.Hosts, hs)
	}
	slices.SortFunc(s.Hosts, func(a, b hostStatus) int {
		switch {
		case a.Addr < b.Addr:
			return -1
		case a.Addr > b.Addr:
			return 1
		}
		return 0
	})
	return s
}

// transportFor picks the transport for requests that arrived over h2 (or
// not); a version the cluster's TLS context gives no ALPN for goes the
// other way.
func (c *cluster) transportFor(downstreamH2 bool) http.RoundTripper {
	useH2 := c.cfg.Protocol == xds.UpstreamHTTP2 || c.cfg.Protocol == xds.UpstreamAsDownstream && downstreamH2
	if c.dialTLS != nil && (useH2 && c.h2.TLSClientConfig == nil || !useH2 && c.h1.TLS == nil) {
		useH2 = !useH2
	}
	if useH2 {
		return c.h2Pool
	}
	return c.h1
}

// roundTripper is the transport for req.
func (c *cluster) roundTripper(req *http.Request) http.RoundTripper {
	if req.ProtoMajor == 2 {
		return c.forH2
	}
	return c.forH1
}

func (c *cluster) closeIdle() {
	c.h1.CloseIdleConnections()
	c.h2Pool.CloseIdleConnections()
}

// scheme is the URL scheme for requests to this cluster.
func (c *cluster) scheme() string {
	if c.dialTLS != nil {
		return "https"
	}
	return "http"
}
