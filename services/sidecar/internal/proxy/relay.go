package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
)

// forward relays r upstream and the answer back to w. It does what
// httputil.ReverseProxy would, without what costs it per request here: a
// deep copy of the request, each response header re-added value by value,
// and the media type parsed to choose a flush interval. The handler owns r,
// so it is rewritten in place.
func (h *httpHandler) forward(w *statusWriter, r *http.Request, d *decision) {
	if r.Body != nil {
		// The transport may still read the body when an attempt ends early;
		// closing it here keeps such a read from outliving the handler.
		defer r.Body.Close()
	}
	h.rewrite(r, d)
	resp, err := h.p.send(r, d)
	if err != nil {
		h.fail(w, r, d, err)
		return
	}
	d.route.ResponseHeaders.Apply(resp.Header)
	for k, v := range d.rlHeader {
		resp.Header[k] = v
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		h.switchProtocols(w, r, d, resp)
		return
	}
	removeHopHeaders(resp.Header)
	dst := resp.Header
	// The response is ours alone: its header map can be the writer's.
	if hs, ok := w.ResponseWriter.(headerSetter); !ok || !hs.SetHeader(resp.Header) {
		dst = w.Header()
		for k, v := range resp.Header {
			dst[k] = v // value slices can be shared
		}
	}
	announced := len(resp.Trailer)
	if announced > 0 {
		names := make([]string, 0, announced)
		for k := range resp.Trailer {
			names = append(names, k)
		}
		dst["Trailer"] = []string{strings.Join(names, ", ")}
	}
	w.WriteHeader(resp.StatusCode)
	// Streams (no length: gRPC, chunked, server-sent events) are flushed as
	// they arrive; a sized body goes out with the headers in one write.
	streaming := resp.ContentLength < 0 || strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
	err = copyBody(w, resp.Body, streaming)
	_ = resp.Body.Close() // ends the attempt and fills resp.Trailer
	if err != nil {
		// A body cut short must not look complete downstream: abort the
		// response (the connection is closed, or the h2 stream reset).
		panic(http.ErrAbortHandler)
	}
	if isGRPC(resp.Header) {
		h.p.m.grpcResponse(d.cluster.cfg.Name, resp)
	}
	if len(resp.Trailer) > 0 {
		w.Flush() // trailers need chunked framing, even for a short body
	}
	if len(resp.Trailer) == announced {
		for k, v := range resp.Trailer {
			dst[k] = v
		}
		return
	}
	for k, v := range resp.Trailer {
		dst[http.TrailerPrefix+k] = v
	}
}

// rewrite turns the downstream request into the upstream one: hop-by-hop
// headers removed, X-Forwarded-* set, the route's path and header rewrites
// applied and the trace context injected. Scheme and host are set per
// attempt by send.
func (h *httpHandler) rewrite(r *http.Request, d *decision) {
	hdr := r.Header
	trailers := headerHasToken(hdr, "Te", "trailers") // gRPC servers require it
	removeHopHeaders(hdr)
	if trailers {
		hdr["Te"] = teTrailers
	}
	if d.upgrade != "" {
		hdr["Connection"] = []string{"Upgrade"}
		hdr["Upgrade"] = []string{d.upgrade}
	}
	if _, ok := hdr["User-Agent"]; !ok {
		hdr["User-Agent"] = noUserAgent // no Go default in its place
	}
	// X-Forwarded-For: append the immediate client to the chain.
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		if prior := hdr["X-Forwarded-For"]; len(prior) > 0 {
			ip = strings.Join(append(prior[:len(prior):len(prior)], ip), ", ")
		}
		hdr["X-Forwarded-For"] = []string{ip}
	} else {
		delete(hdr, "X-Forwarded-For")
	}
	if hdr.Get("X-Forwarded-Proto") == "" || !d.inbound && r.TLS != nil {
		hdr["X-Forwarded-Proto"] = forwardedHTTP
		if r.TLS != nil {
			hdr["X-Forwarded-Proto"] = forwardedHTTPS
		}
	}
	delete(hdr, "Forwarded") // RFC 7239 is not maintained here; a stale one would mislead
	rt := d.route
	if rt.Action.PrefixRewrite != "" && rt.Match.Prefix != "" && strings.HasPrefix(r.URL.Path, rt.Match.Prefix) {
		r.URL.Path = rt.Action.PrefixRewrite + strings.TrimPrefix(r.URL.Path, rt.Match.Prefix)
		r.URL.RawPath = ""
	}
	rt.RequestHeaders.Apply(hdr)
	if d.traced {
		otel.GetTextMapPropagator().Inject(r.Context(), propagation.HeaderCarrier(hdr))
	}
	r.RequestURI, r.Close = "", false
	if d.body != nil {
		r.ContentLength = int64(len(d.body))
	}
	if r.ContentLength == 0 {
		r.Body = nil // send sets a replayed body per attempt
	}
}

// headerSetter is a ResponseWriter whose header map can be replaced before
// the headers are written (the sidecar's HTTP/1.1 server).
type headerSetter interface{ SetHeader(http.Header) bool }

// copyBody copies an upstream body downstream, flushing after each read
// when streaming. Either side failing is an error.
func copyBody(w *statusWriter, body io.Reader, streaming bool) error {
	bp := buffers.Get().(*[]byte)
	defer buffers.Put(bp)
	buf := *bp
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if streaming {
				w.Flush()
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// switchProtocols completes an upgrade (WebSocket): the 101 response goes
// downstream on the hijacked connection, then bytes are copied both ways
// until either side ends.
func (h *httpHandler) switchProtocols(w *statusWriter, r *http.Request, d *decision, resp *http.Response) {
	if got := upgradeHeader(resp.Header); !strings.EqualFold(got, d.upgrade) {
		_ = resp.Body.Close()
		h.fail(w, r, d, &proxyError{status: http.StatusBadGateway, reason: "upstream_protocol_error",
			msg: "upstream switched to protocol " + got + " when " + d.upgrade + " was requested"})
		return
	}
	backend, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		_ = resp.Body.Close()
		h.fail(w, r, d, &proxyError{status: http.StatusBadGateway, reason: "upstream_protocol_error",
			msg: "upstream connection cannot be written after 101 Switching Protocols"})
		return
	}
	client, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		_ = backend.Close()
		h.fail(w, r, d, &proxyError{status: http.StatusBadGateway, reason: "upgrade_failed",
			msg: "cannot switch protocols on this connection: " + err.Error()})
		return
	}
	defer client.Close()
	defer backend.Close()
	w.status = http.StatusSwitchingProtocols
	dst := w.Header()
	for k, v := range resp.Header {
		dst[k] = v
	}
	resp.Header, resp.Body = dst, nil
	if err := resp.Write(brw); err != nil {
		return
	}
	if err := brw.Flush(); err != nil {
		return
	}
	done := make(chan struct{})
	stop := make(chan struct{})
	defer close(stop)
	go func() { // a cancelled request (shutdown) ends the tunnel
		select {
		case <-r.Context().Done():
			_ = backend.Close()
			_ = client.Close()
		case <-stop:
		}
	}()
	go func() {
		_, _ = io.Copy(backend, brw) // brw first: bytes the client sent right after the request
		close(done)
	}()
	_, _ = io.Copy(client, backend)
	_ = backend.Close()
	_ = client.Close()
	<-done
}

// fail answers with the sidecar's own response for an upstream failure.
func (h *httpHandler) fail(w *statusWriter, r *http.Request, d *decision, err error) {
	var pe *proxyError
	switch {
	case errors.As(err, &pe):
		for k, v := range pe.header {
			w.Header()[k] = v
		}
		reply(w, r, pe.status, pe.reason, pe.msg)
	case errors.Is(r.Context().Err(), context.Canceled):
		// The caller went away; nobody reads this.
		w.WriteHeader(499)
	default:
		h.p.log.Warn("upstream reset", "listener", d.listener, "cluster", d.cluster.cfg.Name, "path", r.URL.Path, "err", err)
		reply(w, r, http.StatusBadGateway, "upstream_reset", "upstream connection error: "+err.Error())
	}
}

// Header values set on every request, shared rather than allocated each
// time (header slices are replaced or appended to, never written in place).
var (
	teTrailers     = []string{"trailers"}
	noUserAgent    = []string{""}
	forwardedHTTP  = []string{"http"}
	forwardedHTTPS = []string{"https"}
)

// removeHopHeaders deletes the hop-by-hop headers and those that
// Connection names. One pass over the map and a switch on the name,
// rather than a delete per hop-by-hop name: on a message's handful of
// headers that is a fraction of the lookups, paid twice a request.
func removeHopHeaders(h http.Header) {
	for _, f := range h["Connection"] {
		for k := range strings.SplitSeq(f, ",") {
			if k = strings.TrimSpace(k); k != "" {
				delete(h, http.CanonicalHeaderKey(k))
			}
		}
	}
	for k := range h {
		if isHopHeader(k) {
			delete(h, k)
		}
	}
}

// isHopHeader reports whether k, in canonical form, is one of RFC 9110's
// hop-by-hop fields or a legacy one proxies drop (Keep-Alive,
// Proxy-Connection, Proxy-Authenticate/-Authorization, as Envoy and
// net/http do).
func isHopHeader(k string) bool {
	switch len(k) {
	case len("Te"):
		return k == "Te"
	case len("Trailer"):
		return k == "Trailer" || k == "Upgrade"
	case len("Connection"):
		return k == "Connection" || k == "Keep-Alive"
	case len("Proxy-Connection"):
		return k == "Proxy-Connection"
	case len("Transfer-Encoding"):
		return k == "Transfer-Encoding"
	case len("Proxy-Authenticate"):
		return k == "Proxy-Authenticate"
	case len("Proxy-Authorization"):
		return k == "Proxy-Authorization"
	}
	return false
}
