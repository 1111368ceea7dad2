package proxy

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
)

// metrics are the proxy's Prometheus series. Upstream series are labelled
// by cluster (the destination service or subset); together with the
// sidecar's own service label they give golden signals per service pair.
type metrics struct {
	upstreamRequests  *prometheus.CounterVec   // cluster, code_class
	upstreamDuration  *prometheus.HistogramVec // cluster
	upstreamRetries   *prometheus.CounterVec   // cluster
	upstreamOverflow  *prometheus.CounterVec   // cluster, resource
	upstreamEjections *prometheus.CounterVec   // cluster, reason
	upstreamEjected   *prometheus.GaugeVec     // cluster
	upstreamActive    *prometheus.GaugeVec     // cluster
	upstreamConns     *prometheus.CounterVec   // cluster, result
	upstreamConnsOpen *prometheus.GaugeVec     // cluster
	upstreamTLS       *prometheus.CounterVec   // cluster, session
	upstreamGRPC      *prometheus.CounterVec   // cluster, grpc_status
	downstream        *prometheus.CounterVec   // listener, code_class
	downstreamDur     *prometheus.HistogramVec // listener
	rbacDenied        *prometheus.CounterVec   // listener
	rateLimited       *prometheus.CounterVec   // listener, kind
	rateLimitErrors   *prometheus.CounterVec   // listener
	faults            *prometheus.CounterVec   // kind
	mirrors           *prometheus.CounterVec   // cluster, result
	tcpConns          *prometheus.CounterVec   // listener
	tcpActive         *prometheus.GaugeVec     // listener
}

func newMetrics(reg prometheus.Registerer) *metrics {
	buckets := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	m := &metrics{
		upstreamRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_sidecar_upstream_requests_total",
			Help: "Requests completed by upstream cluster and status class (2xx..5xx; 'reset' when no response)."}, []string{"cluster", "code_class"}),
		upstreamDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "switchyard_sidecar_upstream_request_duration_seconds",
			Help: "Time from forwarding to upstream response headers, per attempt.", Buckets: buckets}, []string{"cluster"}),
		upstreamRetries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_sidecar_upstream_retries_total",
			Help: "Retry attempts sent upstream."}, []string{"cluster"}),
		upstreamOverflow: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_sidecar_upstream_overflow_total",
			Help: "Requests refused by a circuit breaker or the retry budget, by resource."}, []string{"cluster", "resource"}),
		upstreamEjections: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_sidecar_upstream_ejections_total",
			Help: "Outlier-detection ejections by reason."}, []string{"cluster", "reason"}),
		upstreamEjected: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "switchyard_sidecar_upstream_ejected_hosts",
			Help: "Hosts currently ejected by outlier detection."}, []string{"cluster"}),
		upstreamActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "switchyard_sidecar_upstream_active_requests",
			Help: "Requests in flight to the cluster."}, []string{"cluster"}),
		upstreamConns: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_sidecar_upstream_connections_total",
			Help: "TCP connections to the cluster's hosts by result (opened, failed): churn here means pools that do not hold their connections."}, []string{"cluster", "result"}),
		upstreamConnsOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "switchyard_sidecar_upstream_open_connections",
			Help: "TCP connections to the cluster's hosts now open, pooled or in use."}, []string{"cluster"}),
		upstreamTLS: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_sidecar_upstream_tls_handshakes_total",
			Help: "mTLS handshakes completed with the cluster's hosts over HTTP/1.1, by session (full, resumed)."}, []string{"cluster", "session"}),
		upstreamGRPC: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_sidecar_upstream_grpc_responses_total",
			Help: "gRPC responses relayed from the cluster by grpc-status (OK, Unavailable, …; from the trailers, or the headers of a trailers-only response): a gRPC call fails inside an HTTP 200."}, []string{"cluster", "grpc_status"}),
		downstream: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_sidecar_downstream_requests_total",
			Help: "Requests received by listener and status class."}, []string{"listener", "code_class"}),
		downstreamDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "switchyard_sidecar_downstream_request_duration_seconds",
			Help: "Time from request received to response headers sent.", Buckets: buckets}, []string{"listener"}),
		rbacDenied: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_sidecar_rbac_denied_total",
			Help: "Requests or connections refused by RBAC."}, []string{"listener"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_sidecar_rate_limited_total",
			Help: "Requests refused by a rate limit (kind local or global)."}, []string{"listener", "kind"}),
		rateLimitErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_sidecar_rate_limit_errors_total",
			Help: "Calls to the rate limit service that failed (then failure_mode_deny decides)."}, []string{"listener"}),
		faults: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_sidecar_faults_injected_total",
			Help: "Injected faults by kind (delay, abort)."}, []string{"kind"}),
		mirrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_sidecar_mirror_requests_total",
			Help: "Mirrored requests by result (sent, failed, skipped_body)."}, []string{"cluster", "result"}),
		tcpConns: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_sidecar_tcp_connections_total",
			Help: "TCP connections accepted by L4 listeners."}, []string{"listener"}),
		tcpActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "switchyard_sidecar_tcp_active_connections",
			Help: "Open TCP connections on L4 listeners."}, []string{"listener"}),
	}
	m.faults.WithLabelValues("delay")
	m.faults.WithLabelValues("abort")
	if reg != nil {
		reg.MustRegister(m.upstreamRequests, m.upstreamDuration, m.upstreamRetries, m.upstreamOverflow, m.upstreamEjections,
			m.upstreamEjected, m.upstreamActive, m.upstreamConns, m.upstreamConnsOpen, m.upstreamTLS, m.upstreamGRPC, m.downstream, m.downstreamDur, m.rbacDenied, m.rateLimited, m.rateLimitErrors,
			m.faults, m.mirrors, m.tcpConns, m.tcpActive)
	}
	return m
}

// clusterSeries are one cluster's hot-path series, resolved once when the
// cluster is built so a request never hashes label values.
type clusterSeries struct {
	requests [len(codeClasses) + 1]prometheus.Counter // by codeClassIndex; last is "reset"
	duration prometheus.Observer
	retries  prometheus.Counter
	active   prometheus.Gauge
	// Connections: opened, failed to connect, open now.
	connsOpened, connsFailed prometheus.Counter
	connsOpen                prometheus.Gauge
	// mTLS handshakes over HTTP/1.1: full, or resumed from a session.
	handshakesFull, handshakesResumed prometheus.Counter
}

// initCluster creates a cluster's series at zero, so dashboards and alerts
// see them before the first event (rate() over a missing series is empty),
// and returns the ones the request path uses.
func (m *metrics) initCluster(name string) *clusterSeries {
	s := &clusterSeries{
		duration: m.upstreamDuration.WithLabelValues(name),
		retries:  m.upstreamRetries.WithLabelValues(name),
		active:   m.upstreamActive.WithLabelValues(name),

		connsOpened: m.upstreamConns.WithLabelValues(name, "opened"),
		connsFailed: m.upstreamConns.WithLabelValues(name, "failed"),
		connsOpen:   m.upstreamConnsOpen.WithLabelValues(name),

		handshakesFull:    m.upstreamTLS.WithLabelValues(name, "full"),
		handshakesResumed: m.upstreamTLS.WithLabelValues(name, "resumed"),
	}
	for i, cc := range codeClasses {
		s.requests[i] = m.upstreamRequests.WithLabelValues(name, cc)
	}
	s.requests[len(codeClasses)] = m.upstreamRequests.WithLabelValues(name, "reset")
	for _, r := range []string{"max_connections", "max_pending_requests", "max_requests", "max_retries", "retry_budget"} {
		m.upstreamOverflow.WithLabelValues(name, r)
	}
	for _, r := range []string{"consecutive_5xx", "consecutive_gateway_failure", "success_rate"} {
		m.upstreamEjections.WithLabelValues(name, r)
	}
	m.upstreamEjected.WithLabelValues(name)
	return s
}

// request counts one completed attempt by status class (0: reset).
func (s *clusterSeries) request(m *metrics, cluster string, status int) {
	if i, ok := codeClassIndex(status); ok {
		s.requests[i].Inc()
		return
	}
	m.upstreamRequests.WithLabelValues(cluster, codeClass(status)).Inc()
}

// grpcResponse counts a relayed gRPC response by its grpc-status. Its
// series are made on first use, not at zero per cluster: 17 statuses for
// every cluster, gRPC or not, would be mostly noise.
func (m *metrics) grpcResponse(cluster string, resp *http.Response) {
	v := resp.Trailer["Grpc-Status"]
	if len(v) == 0 {
		v = resp.Header["Grpc-Status"] // trailers-only
	}
	if len(v) != 1 {
		return
	}
	m.upstreamGRPC.WithLabelValues(cluster, grpcStatusLabel(v[0])).Inc()
}

// grpcStatusLabel is a grpc-status value's code name ("OK",
// "Unavailable", …), or "invalid" for a value outside the spec, which
// keeps a misbehaving server from minting label values.
func grpcStatusLabel(v string) string {
	n, err := strconv.ParseUint(v, 10, 8)
	if err != nil || n > uint64(codes.Unauthenticated) {
		return "invalid"
	}
	return codes.Code(n).String()
}

// listenerSeries are one HTTP listener's hot-path series.
type listenerSeries struct {
	requests [len(codeClasses)]prometheus.Counter
	duration prometheus.Observer
}

func (s *listenerSeries) request(m *metrics, listener string, status int, d time.Duration) {
	if i, ok := codeClassIndex(status); ok && i < len(s.requests) {
		s.requests[i].Inc()
	} else {
		m.downstream.WithLabelValues(listener, codeClass(status)).Inc()
	}
	s.duration.Observe(d.Seconds())
}

// initListener does the same for a listener's series; HTTP listeners get
// their hot-path series back (nil for TCP).
func (m *metrics) initListener(name string, tcp bool) *listenerSeries {
	if tcp {
		m.tcpConns.WithLabelValues(name)
		m.tcpActive.WithLabelValues(name)
		m.rbacDenied.WithLabelValues(name)
		return nil
	}
	s := &listenerSeries{duration: m.downstreamDur.WithLabelValues(name)}
	for i, cc := range codeClasses {
		s.requests[i] = m.downstream.WithLabelValues(name, cc)
	}
	m.rbacDenied.WithLabelValues(name)
	m.rateLimited.WithLabelValues(name, "local")
	m.rateLimited.WithLabelValues(name, "global")
	m.rateLimitErrors.WithLabelValues(name)
	return s
}

var codeClasses = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

// codeClassIndex maps a status to its slot in the pre-resolved series:
// codeClasses order, then len(codeClasses) for "reset" (status 0).
func codeClassIndex(status int) (int, bool) {
	switch {
	case status >= 100 && status < 600:
		return status/100 - 1, true
	case status == 0:
		return len(codeClasses), true
	}
	return 0, false
}

func codeClass(status int) string {
	if status >= 100 && status < 600 {
		return codeClasses[status/100-1]
	}
	if status == 0 {
		return "reset"
	}
	return strconv.Itoa(status)
}
