package xds

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/v3"

	"github.com/switchyard-mesh/switchyard/services/controlplane/internal/translate"
)

// ShortType names a type URL in metrics and status: cds, eds, lds, rds.
func ShortType(typeURL string) string {
	switch typeURL {
	case resource.ClusterType:
		return "cds"
	case resource.EndpointType:
		return "eds"
	case resource.ListenerType:
		return "lds"
	case resource.RouteType:
		return "rds"
	}
	return "other"
}

// NACK is one rejected response.
type NACK struct {
	Type    string    `json:"type"`
	Version string    `json:"version"`
	Error   string    `json:"error"`
	At      time.Time `json:"at"`
}

// ProxyStatus is what the control plane knows about one proxy.
type ProxyStatus struct {
	ID        string            `json:"id"`
	Kind      string            `json:"kind"`
	Service   string            `json:"service,omitempty"`
	Connected bool              `json:"connected"`
	Streams   int               `json:"streams"`
	Delta     bool              `json:"delta"`
	Sent      map[string]string `json:"sent"`  // type → last version sent
	Acked     map[string]string `json:"acked"` // type → last version ACKed
	NACKs     int               `json:"nacks"`
	LastNACK  *NACK             `json:"last_nack,omitempty"`
	SeenAt    time.Time         `json:"seen_at"`
}

type sent struct {
	typ, version string
	changeAt     time.Time // registry change the config was built from
	at           time.Time
}

type proxyState struct {
	status ProxyStatus
	proxy  translate.Proxy
	// behindSince[type] is when a sent version was first left unACKed.
	behindSince map[string]time.Time
}

// Tracker implements go-control-plane's server callbacks: it learns each
// proxy's identity from its first request, asks the publisher for its
// snapshot, and records what was sent, ACKed and NACKed.
type Tracker struct {
	log     *slog.Logger
	metrics *Metrics
	// onNode is called (synchronously, before the watch is created) the
	// first time a node is seen, so its snapshot exists when it asks.
	onNode func(translate.Proxy)
	// changeAt reports when the registry change behind a type's current
	// version reached us, for push latency.
	changeAt func(version string) time.Time
	now      func() time.Time

	mu      sync.Mutex
	streams map[int64]string     // stream → node ID
	nonces  map[streamNonce]sent // response → what it carried
	proxies map[string]*proxyState
}

// streamNonce names one response: go-control-plane numbers nonces per
// stream ("1", "2", …), so a nonce alone collides across proxies.
type streamNonce struct {
	stream int64
	nonce  string
}

var _ server.Callbacks = (*Tracker)(nil)

// NewTracker returns a tracker. onNode and changeAt may be nil.
func NewTracker(log *slog.Logger, m *Metrics, onNode func(translate.Proxy), changeAt func(string) time.Time) *Tracker {
	return &Tracker{
		log: log, metrics: m, onNode: onNode, changeAt: changeAt, now: time.Now,
		streams: map[int64]string{}, nonces: map[streamNonce]sent{}, proxies: map[string]*proxyState{},
	}
}

// ProxyFromNode derives a proxy's identity from its xDS node: metadata keys
// "service", "namespace", "kind" (sidecar|gateway|proxyless) and
// "app_port"; a gRPC library without a kind is proxyless.
func ProxyFromNode(n *corev3.Node) translate.Proxy {
	p := translate.Proxy{ID: n.GetId()}
	md := n.GetMetadata().GetFields()
	str := func(k string) string { return md[k].GetStringValue() }
	p.Service, p.Namespace = str("service"), str("namespace")
	p.Region, p.Zone = n.GetLocality().GetRegion(), n.GetLocality().GetZone()
	switch str("kind") {
	case "gateway":
		p.Kind = translate.Gateway
	case "proxyless":
		p.Kind = translate.Proxyless
	case "sidecar":
		p.Kind = translate.Sidecar
	default:
		if strings.HasPrefix(strings.ToLower(n.GetUserAgentName()), "grpc") {
			p.Kind = translate.Proxyless
		}
	}
	if v, ok := md["app_port"]; ok {
		switch {
		case v.GetNumberValue() > 0:
			p.AppPort = uint32(v.GetNumberValue())
		case v.GetStringValue() != "":
			if port, err := strconv.ParseUint(v.GetStringValue(), 10, 16); err == nil {
				p.AppPort = uint32(port)
			}
		}
	}
	return p
}

func (t *Tracker) closeStream(id int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	nodeID, ok := t.streams[id]
	delete(t.streams, id)
	if !ok {
		return
	}
	if ps := t.proxies[nodeID]; ps != nil {
		ps.status.Streams--
		if ps.status.Streams <= 0 {
			ps.status.Streams = 0
			ps.status.Connected = false
			t.metrics.ConnectedProxies.Dec()
			t.log.Info("proxy disconnected", "proxy", nodeID)
		}
	}
}

// request handles one request of either protocol.
func (t *Tracker) request(streamID int64, node *corev3.Node, typeURL, nonce string, errDetail interface{ GetMessage() string }, hasErr, delta bool) {
	var newProxy *translate.Proxy
	t.mu.Lock()
	nodeID, known := t.streams[streamID]
	if !known && node != nil {
		nodeID = node.GetId()
		t.streams[streamID] = nodeID
		ps := t.proxies[nodeID]
		if ps == nil {
			p := ProxyFromNode(node)
			ps = &proxyState{proxy: p, behindSince: map[string]time.Time{}, status: ProxyStatus{
				ID: nodeID, Kind: p.Kind.String(), Service: p.Service, Sent: map[string]string{}, Acked: map[string]string{},
			}}
			t.proxies[nodeID] = ps
			newProxy = &p
		}
		if ps.status.Streams == 0 {
			ps.status.Connected = true
			t.metrics.ConnectedProxies.Inc()
			t.log.Info("proxy connected", "proxy", nodeID, "kind", ps.status.Kind, "service", ps.status.Service, "delta", delta)
		}
		ps.status.Streams++
		ps.status.Delta = delta
	}
	ps := t.proxies[nodeID]
	if ps != nil {
		ps.status.SeenAt = t.now()
	}
	var latency time.Duration
	if ps != nil && nonce != "" {
		if s, ok := t.nonces[streamNonce{streamID, nonce}]; ok {
			delete(t.nonces, streamNonce{streamID, nonce})
			short := ShortType(s.typ)
			if hasErr {
				n := &NACK{Type: short, Version: s.version, Error: errDetail.GetMessage(), At: t.now()}
				ps.status.NACKs++
				ps.status.LastNACK = n
				t.metrics.NACKs.WithLabelValues(short).Inc()
				t.log.Warn("proxy rejected config (NACK); it keeps its last good config",
					"proxy", nodeID, "type", short, "version", s.version, "error", n.Error)
			} else {
				ps.status.Acked[short] = s.version
				if ps.status.Sent[short] == s.version {
					delete(ps.behindSince, short)
				}
				if !s.changeAt.IsZero() {
					latency = t.now().Sub(s.changeAt)
				}
			}
		}
	}
	t.mu.Unlock()
	if latency > 0 {
		t.metrics.PushLatency.Observe(latency.Seconds())
	}
	if newProxy != nil && t.onNode != nil {
		t.onNode(*newProxy)
	}
}

func (t *Tracker) response(streamID int64, typeURL, version, nonce string) {
	short := ShortType(typeURL)
	t.metrics.Pushes.WithLabelValues(short).Inc()
	var changeAt time.Time
	if t.changeAt != nil {
		changeAt = t.changeAt(version)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.nonces[streamNonce{streamID, nonce}] = sent{typ: typeURL, version: version, changeAt: changeAt, at: now}
	if ps := t.proxies[t.streams[streamID]]; ps != nil {
		ps.status.Sent[short] = version
		if _, ok := ps.behindSince[short]; !ok {
			ps.behindSince[short] = now
		}
	}
}

// Status lists every proxy seen, sorted by ID.
func (t *Tracker) Status() []ProxyStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]ProxyStatus, 0, len(t.proxies))
	for _, ps := range t.proxies {
		s := ps.status
		s.Sent, s.Acked = clone(s.Sent), clone(s.Acked)
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b ProxyStatus) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Connected lists the proxies with an open stream.
func (t *Tracker) Connected() []translate.Proxy {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []translate.Proxy
	for _, ps := range t.proxies {
		if ps.status.Connected {
			out = append(out, ps.proxy)
		}
	}
	return out
}

// Behind counts connected proxies with a sent version left unACKed for
// longer than d, and updates the gauge.
func (t *Tracker) Behind(d time.Duration) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	now := t.now()
	for _, ps := range t.proxies {
		if !ps.status.Connected {
			continue
		}
		for _, since := range ps.behindSince {
			if now.Sub(since) > d {
				n++
				break
			}
		}
	}
	t.metrics.ProxiesBehind.Set(float64(n))
	return n
}

// Forget drops proxies disconnected for longer than d, returning their
// IDs, and nonces older than d (responses never answered).
func (t *Tracker) Forget(d time.Duration) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	var gone []string
	for id, ps := range t.proxies {
		if !ps.status.Connected && now.Sub(ps.status.SeenAt) > d {
			delete(t.proxies, id)
			gone = append(gone, id)
		}
	}
	for n, s := range t.nonces {
		if now.Sub(s.at) > d {
			delete(t.nonces, n)
		}
	}
	return gone
}

func clone(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// OnStreamOpen implements server.Callbacks.
func (t *Tracker) OnStreamOpen(context.Context, int64, string) error { return nil }

// OnStreamClosed implements server.Callbacks.
func (t *Tracker) OnStreamClosed(id int64, _ *corev3.Node) { t.closeStream(id) }

// OnStreamRequest implements server.Callbacks.
func (t *Tracker) OnStreamRequest(id int64, req *discoveryv3.DiscoveryRequest) error {
	t.request(id, req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(), req.GetErrorDetail(), req.GetErrorDetail() != nil, false)
	return nil
}

// OnStreamResponse implements server.Callbacks.
func (t *Tracker) OnStreamResponse(_ context.Context, id int64, _ *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
	t.response(id, resp.GetTypeUrl(), resp.GetVersionInfo(), resp.GetNonce())
}

// OnDeltaStreamOpen implements server.Callbacks.
func (t *Tracker) OnDeltaStreamOpen(context.Context, int64, string) error { return nil }

// OnDeltaStreamClosed implements server.Callbacks.
func (t *Tracker) OnDeltaStreamClosed(id int64, _ *corev3.Node) { t.closeStream(id) }

// OnStreamDeltaRequest implements server.Callbacks.
func (t *Tracker) OnStreamDeltaRequest(id int64, req *discoveryv3.DeltaDiscoveryRequest) error {
	t.request(id, req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(), req.GetErrorDetail(), req.GetErrorDetail() != nil, true)
	return nil
}

// OnStreamDeltaResponse implements server.Callbacks.
func (t *Tracker) OnStreamDeltaResponse(id int64, _ *discoveryv3.DeltaDiscoveryRequest, resp *discoveryv3.DeltaDiscoveryResponse) {
	t.response(id, resp.GetTypeUrl(), resp.GetSystemVersionInfo(), resp.GetNonce())
}

// OnFetchRequest implements server.Callbacks.
func (t *Tracker) OnFetchRequest(context.Context, *discoveryv3.DiscoveryRequest) error { return nil }

// OnFetchResponse implements server.Callbacks.
func (t *Tracker) OnFetchResponse(*discoveryv3.DiscoveryRequest, *discoveryv3.DiscoveryResponse) {}
