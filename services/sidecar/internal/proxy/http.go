package proxy

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	grpccodes "google.golang.org/grpc/codes"

	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/fault"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/lb"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/rbac"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/route"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/tokenbucket"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/xds"
)

// ReasonHeader says why the sidecar itself answered instead of the upstream
// (e.g. "overflow:max_requests", "no_healthy_upstream", "rbac_denied").
const ReasonHeader = "x-switchyard-reason"

// maxReplayBody is the largest request body kept in memory so the request
// can be retried or mirrored (Envoy's per_request_buffer_limit plays this
// role); larger or unsized bodies stream through once.
const maxReplayBody = 64 << 10

var tracer = otel.Tracer("github.com/switchyard-mesh/switchyard/services/sidecar")

// httpHandler serves one HTTP listener.
type httpHandler struct {
	p      *Proxy
	l      *listener
	bucket struct {
		sync.Mutex
		cfg *xds.LocalRateLimit
		b   *tokenbucket.Bucket
	}
}

func (p *Proxy) newHTTPHandler(l *listener) *httpHandler {
	return &httpHandler{p: p, l: l}
}

// decision is what the handler decided for a request, for forward and send.
type decision struct {
	listener string
	route    *route.Route
	cluster  *cluster
	hash     lb.Request
	body     []byte // replayable body; nil when not replayable
	replay   bool
	stream   *replayBody // a body of unknown length that a retry may send again or a mirror copy; nil for none
	inbound  bool
	rlHeader http.Header // x-ratelimit-* to add to the response
	traced   bool        // a span was started: inject its context upstream
	upgrade  string      // the protocol an upgrade asks for (WebSocket); "" for none
	deadline time.Time   // the route timeout's; zero for none
}

func (h *httpHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	lc := h.l.cfg.Load()
	sw := &statusWriter{ResponseWriter: w}
	defer func() { h.l.m.request(h.p.m, lc.Name, sw.status, time.Since(start)) }()
	hc := lc.HTTP
	inbound := lc.Direction == xds.Inbound
	// By the canonical key: Get would build "X-Request-Id" from the
	// lower-case name on every request.
	if id := r.Header["X-Request-Id"]; len(id) == 0 || id[0] == "" {
		r.Header["X-Request-Id"] = []string{newRequestID()}
	}
	// One span per hop when a tracer provider is installed. Without one a
	// span would only carry the caller's context through unchanged, which
	// forwarding the trace headers as they are already does, for free.
	ctx := r.Context()
	traced := tracingEnabled()
	span := trace.SpanFromContext(ctx) // no-op span
	if traced {
		ctx = otel.GetTextMapPropagator().Extract(ctx, propagation.HeaderCarrier(r.Header))
		kind := trace.SpanKindClient
		if inbound {
			kind = trace.SpanKindServer
		}
		ctx, span = tracer.Start(ctx, lc.Name+" "+r.Method, trace.WithSpanKind(kind))
	}
	recording := span.IsRecording() // attributes cost allocations: only when exported
	if recording {
		span.SetAttributes(attribute.String("http.request.method", r.Method), attribute.String("server.address", r.Host),
			attribute.String("url.path", r.URL.Path), attribute.String("switchyard.request_id", r.Header["X-Request-Id"][0]))
	}
	if traced {
		defer func() {
			if recording {
				span.SetAttributes(attribute.Int("http.response.status_code", sw.status))
				if sw.status >= 500 {
					span.SetStatus(codes.Error, http.StatusText(sw.status))
				}
			}
			span.End()
		}()
	}

	peer := h.peer(r)
	if recording && peer.id != "" {
		span.SetAttributes(attribute.String("switchyard.peer", peer.id))
	}
	if hc.XFCC && peer.id != "" {
		r.Header["X-Forwarded-Client-Cert"] = []string{peer.xfcc}
	} else {
		delete(r.Header, "X-Forwarded-Client-Cert")
	}
	for _, e := range hc.RBAC {
		if ok, policy := e.Decide(rbac.Request{HTTP: r, PeerID: peer.id, DestPort: h.l.port}); !ok {
			h.p.m.rbacDenied.WithLabelValues(lc.Name).Inc()
			who := peer.id
			if who == "" {
				who = "an unauthenticated caller"
			}
			msg := fmt.Sprintf("RBAC: access denied: %s may not call %s %s", who, r.Method, r.URL.Path)
			if policy != "" {
				msg += " (denied by policy " + policy + ")"
			}
			h.p.log.Info("request denied by RBAC", "listener", lc.Name, "peer", who, "path", r.URL.Path, "policy", policy)
			reply(sw, r, http.StatusForbidden, "rbac_denied", msg)
			return
		}
	}
	upgrade := upgradeHeader(r.Header)
	if upgrade != "" && !hc.WebSocket {
		reply(sw, r, http.StatusForbidden, "upgrade_not_allowed", "upgrade to "+upgrade+" is not enabled on this listener")
		return
	}
	table := hc.Routes
	if table == nil {
		table = h.p.routeTable(hc.RouteConfigName)
	}
	if table == nil {
		reply(sw, r, http.StatusServiceUnavailable, "route_not_ready", "route configuration "+hc.RouteConfigName+" has not arrived yet")
		return
	}
	_, rt := table.Find(r)
	if rt == nil {
		reply(sw, r, http.StatusNotFound, "route_not_found", "no route for "+r.Host+r.URL.Path)
		return
	}
	if lr := hc.LocalRateLimit; lr != nil && !h.allowLocal(lr) {
		h.p.m.rateLimited.WithLabelValues(lc.Name, "local").Inc()
		reply(sw, r, lr.Status, "local_rate_limited", "local rate limit exceeded")
		return
	}
	clusterName := rt.Action.PickCluster(rand.Uint64())
	d := &decision{listener: lc.Name, route: rt, inbound: inbound, traced: traced, upgrade: upgrade}
	if g := hc.RateLimit; g != nil && len(rt.Action.RateLimits) > 0 {
		limited, hdr, status := h.p.globalRateLimit(ctx, lc.Name, g, rt, r, clusterName)
		if g.RateLimitHeaders {
			d.rlHeader = hdr
		}
		if limited {
			for k, v := range hdr {
				sw.Header()[k] = v
			}
			h.p.m.rateLimited.WithLabelValues(lc.Name, "global").Inc()
			reply(sw, r, status, "rate_limited", "rate limit exceeded")
			return
		}
	}
	fc := hc.Fault
	if rt.Fault != nil {
		fc = rt.Fault
	}
	if fc != nil && !fc.Empty() {
		if h.injectFault(sw, r, fc) {
			return
		}
	}
	c := h.p.cluster(clusterName)
	if c == nil {
		reply(sw, r, http.StatusServiceUnavailable, "cluster_not_found", "cluster "+clusterName+" is not known")
		return
	}
	d.cluster = c
	if key, ok := lb.Key(rt.Action.HashPolicies, r); ok {
		d.hash = lb.Request{Hash: key, HasHash: true}
	}
	d.replay = h.bufferBody(r, d, rt)
	if recording {
		span.SetAttributes(attribute.String("switchyard.cluster", clusterName))
	}
	if t := rt.Action.Timeout; t > 0 && upgrade == "" {
		// A deadline rather than a context with one: send enforces it
		// without a context, a timer and a request copy per request.
		d.deadline = time.Now().Add(t)
	}
	if ctx != r.Context() {
		r = r.WithContext(ctx)
	}
	h.mirror(r, d, rt)
	h.forward(sw, r, d)
	if d.stream != nil {
		d.stream.finish()
	}
}

// peerInfo is the verified caller of a TLS connection, worked out once per
// connection rather than per request.
type peerInfo struct {
	id   string // SPIFFE ID; "" for plaintext or no client certificate
	xfcc string // x-forwarded-client-cert value for id
}

type connInfoKey struct{}

// connInfo is stored in each TLS connection's context (http.Server.ConnContext).
type connInfo struct{ peer atomic.Pointer[peerInfo] }

func (h *httpHandler) peer(r *http.Request) *peerInfo {
	if r.TLS == nil {
		return &noPeer
	}
	ci, _ := r.Context().Value(connInfoKey{}).(*connInfo)
	if ci != nil {
		if p := ci.peer.Load(); p != nil {
			return p
		}
	}
	p := &peerInfo{id: peerID(r.TLS)}
	if p.id != "" {
		p.xfcc = xfcc(h.p.cfg.Identity, p.id)
	}
	if ci != nil && r.TLS.HandshakeComplete {
		ci.peer.Store(p)
	}
	return p
}

var noPeer peerInfo

// defaultTracerProvider is OpenTelemetry's global provider before an SDK
// is installed; its spans record nothing and create no IDs.
var defaultTracerProvider = otel.GetTracerProvider()

func tracingEnabled() bool { return otel.GetTracerProvider() != defaultTracerProvider }

func (h *httpHandler) allowLocal(lr *xds.LocalRateLimit) bool {
	if lr.EnabledPerMillion == 0 || rand.Uint32N(1_000_000) >= lr.EnabledPerMillion {
		return true
	}
	h.bucket.Lock()
	if h.bucket.cfg != lr {
		h.bucket.cfg = lr
		h.bucket.b = tokenbucket.New(lr.MaxTokens, lr.TokensPerFill, lr.FillInterval, h.p.cfg.Now)
	}
	b := h.bucket.b
	h.bucket.Unlock()
	if b.Allow() {
		return true
	}
	return rand.Uint32N(1_000_000) >= lr.EnforcedPerMillion
}

// injectFault applies a fault decision; it reports whether the request was aborted.
func (h *httpHandler) injectFault(w *statusWriter, r *http.Request, fc *fault.Config) bool {
	dec := fc.Decide(r.Header, nil)
	if dec.Delay > 0 {
		h.p.m.faults.WithLabelValues("delay").Inc()
		t := time.NewTimer(dec.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return true
		}
	}
	if !dec.Abort {
		return false
	}
	h.p.m.faults.WithLabelValues("abort").Inc()
	if dec.AbortGRPCStatus != 0 && isGRPC(r.Header) {
		grpcReply(w, grpccodes.Code(dec.AbortGRPCStatus), "fault_abort", "fault filter abort")
		return true
	}
	status := dec.AbortStatus
	if status == 0 {
		status = http.StatusServiceUnavailable
	}
	reply(w, r, status, "fault_abort", "fault filter abort")
	return true
}

// bufferBody keeps small bodies in memory when the route may retry or
// mirror, reporting whether the request can be replayed. A body of
// unknown length streams through a replayBody instead, which decides at
// each retry whether it can be sent again and hands mirrors the body once
// it has all arrived.
func (h *httpHandler) bufferBody(r *http.Request, d *decision, rt *route.Route) bool {
	retries := rt.Action.Retry != nil && rt.Action.Retry.NumRetries > 0
	needs := len(rt.Action.Mirrors) > 0 || retries
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 && r.Header.Get("Transfer-Encoding") == "" && r.ProtoMajor == 1 {
		d.body = nil
		return true
	}
	if needs && r.ContentLength < 0 {
		d.stream = newReplayBody(r.Body, maxReplayBody)
		return false
	}
	if !needs || r.ContentLength <= 0 || r.ContentLength > maxReplayBody {
		return false
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxReplayBody+1))
	if err != nil || int64(len(b)) != r.ContentLength {
		// Short or failed read: forward what arrived, never retry it.
		r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(b), r.Body))
		return false
	}
	d.body = b
	r.Body = http.NoBody
	return true
}

// mirror sends a copy of r to each selected mirror cluster in the
// background; the response is discarded and the caller never waits.
func (h *httpHandler) mirror(r *http.Request, d *decision, rt *route.Route) {
	for _, m := range rt.Action.Mirrors {
		if rand.Uint32N(1_000_000) >= m.PerMillion {
			continue
		}
		mc := h.p.cluster(m.Cluster)
		if mc == nil {
			h.p.m.mirrors.WithLabelValues(m.Cluster, "no_cluster").Inc()
			continue
		}
		if !d.replay && d.stream == nil {
			h.p.m.mirrors.WithLabelValues(m.Cluster, "skipped_body").Inc()
			continue
		}
		out := r.Clone(context.WithoutCancel(r.Context()))
		out.Host = shadowHost(r.Host)
		out.RequestURI = ""
		removeHopHeaders(out.Header)
		if d.replay {
			go h.p.sendMirror(mc, out, d.body)
			continue
		}
		// A streamed body: the copy goes once all of it has passed
		// through to the upstream (never holding the caller up).
		d.stream.whenRead(func(body []byte, complete bool) {
			if !complete {
				h.p.m.mirrors.WithLabelValues(mc.cfg.Name, "skipped_body").Inc()
				return
			}
			go h.p.sendMirror(mc, out, body)
		})
	}
}

func (p *Proxy) sendMirror(c *cluster, req *http.Request, body []byte) {
	host := c.pick(lb.Request{})
	if host == nil {
		p.m.mirrors.WithLabelValues(c.cfg.Name, "no_healthy_upstream").Inc()
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), 30*time.Second)
	defer cancel()
	req = req.WithContext(ctx)
	req.URL.Scheme, req.URL.Host = c.scheme(), host.Addr
	req.Body, req.ContentLength = http.NoBody, 0
	if body != nil {
		req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	}
	end := host.Begin()
	defer end()
	resp, err := c.roundTripper(req).RoundTrip(req)
	if err != nil {
		p.m.mirrors.WithLabelValues(c.cfg.Name, "failed").Inc()
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	p.m.mirrors.WithLabelValues(c.cfg.Name, "sent").Inc()
}

// shadowHost is Envoy's mirror host naming: "-shadow" appended to the host.
func shadowHost(host string) string {
	if h, p, err := net.SplitHostPort(host); err == nil {
		return net.JoinHostPort(h+"-shadow", p)
	}
	return host + "-shadow"
}

func peerID(cs *tls.ConnectionState) string {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return ""
	}
	id, err := x509svid.IDFromCert(cs.PeerCertificates[0])
	if err != nil {
		return ""
	}
	return id.String()
}

func xfcc(id Identity, peer string) string {
	if id == nil {
		return "URI=" + peer
	}
	return "By=" + id.ID().String() + ";URI=" + peer
}

func port(a net.Addr) uint32 {
	if t, ok := a.(*net.TCPAddr); ok {
		return uint32(t.Port)
	}
	return 0
}

// upgradeHeader is the protocol an upgrade request or 101 response names,
// or "" when Connection does not list "upgrade".
func upgradeHeader(h http.Header) string {
	if !headerHasToken(h, "Connection", "upgrade") {
		return ""
	}
	return h.Get("Upgrade")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// requestIDBytes holds random bytes for request IDs, read from
// crypto/rand 4 KiB at a time (Envoy buffers its UUIDs' random bytes the
// same way): a request takes 16 of them instead of a call into the
// generator, which showed as ≈ 2 % of the client-side sidecar's CPU in a
// profile at 1,000 rps (cold caches; 159 → 137 ns per ID hot).
var requestIDBytes struct {
	sync.Mutex
	buf  [4096]byte
	left int // unused bytes at the end of buf
}

// newRequestID is a random (version 4) UUID, built in one allocation.
func newRequestID() string {
	var b [16]byte
	requestIDBytes.Lock()
	if requestIDBytes.left < len(b) {
		_, _ = crand.Read(requestIDBytes.buf[:])
		requestIDBytes.left = len(requestIDBytes.buf)
	}
	copy(b[:], requestIDBytes.buf[len(requestIDBytes.buf)-requestIDBytes.left:])
	requestIDBytes.left -= len(b)
	requestIDBytes.Unlock()
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

// statusWriter records the status for metrics; Unwrap lets
// http.ResponseController reach Flush and Hijack (streaming, WebSocket).
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 || s.status < 200 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Flush() { _ = http.NewResponseController(s.ResponseWriter).Flush() }

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// 16 KiB copy buffers: large enough for streaming bodies, small enough
// that a burst of concurrent requests does not balloon the RSS.
var buffers = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}
