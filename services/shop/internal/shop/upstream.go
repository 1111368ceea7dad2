package shop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// StatusError is an upstream's non-2xx answer.
type StatusError struct {
	Upstream string
	Code     int
	Body     string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s answered %d: %s", e.Upstream, e.Code, e.Body)
}

// Upstream calls one dependency, a service named Name reached at a base URL:
// either the service itself or a proxy (a sidecar's outbound port) that
// routes by the Host header, which is always the service name.
type Upstream struct {
	name    string
	base    *url.URL
	client  *http.Client
	metrics *UpstreamMetrics
}

// UpstreamMetrics counts and times calls to upstreams.
type UpstreamMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewUpstreamMetrics registers switchyard_shop_upstream_requests_total
// {upstream,code} and switchyard_shop_upstream_request_duration_seconds
// {upstream} on reg.
func NewUpstreamMetrics(reg prometheus.Registerer) *UpstreamMetrics {
	m := &UpstreamMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_shop_upstream_requests_total",
			Help: "Calls to upstream apps, by upstream and status code (\"error\" when no answer came).",
		}, []string{"upstream", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "switchyard_shop_upstream_request_duration_seconds",
			Help:    "Time for an upstream app to answer, by upstream.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"upstream"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// NewUpstream returns a client for the service name at baseURL, sending
// requests through transport and giving up on each after timeout.
func NewUpstream(name string, baseURL *url.URL, transport http.RoundTripper, timeout time.Duration, m *UpstreamMetrics) *Upstream {
	m.duration.WithLabelValues(name)
	return &Upstream{
		name:    name,
		base:    baseURL,
		client:  &http.Client{Transport: transport, Timeout: timeout},
		metrics: m,
	}
}

// Name returns the service name of the upstream.
func (u *Upstream) Name() string { return u.name }

// GetJSON fetches path from the upstream and decodes its JSON answer into
// dst. A non-2xx answer is a *StatusError.
func (u *Upstream) GetJSON(ctx context.Context, path string, dst any) error {
	target := u.base.JoinPath(path)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
	if err != nil {
		return fmt.Errorf("call %s: %w", u.name, err)
	}
	req.Host = u.name
	req.Header.Set("Accept", "application/json")
	start := time.Now()
	resp, err := u.client.Do(req)
	u.metrics.duration.WithLabelValues(u.name).Observe(time.Since(start).Seconds())
	if err != nil {
		u.metrics.requests.WithLabelValues(u.name, "error").Inc()
		return fmt.Errorf("call %s at %s: %w", u.name, target, err)
	}
	defer resp.Body.Close()
	u.metrics.requests.WithLabelValues(u.name, strconv.Itoa(resp.StatusCode)).Inc()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read answer of %s: %w", u.name, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var eb errorBody
		msg := string(body)
		if json.Unmarshal(body, &eb) == nil && eb.Error != "" {
			msg = eb.Error
		}
		return &StatusError{Upstream: u.name, Code: resp.StatusCode, Body: msg}
	}
	if err := json.Unmarshal(body, dst); err != nil {
		return fmt.Errorf("decode answer of %s: %w", u.name, err)
	}
	return nil
}

// upstreamFailure answers a request whose upstream call failed: a 404 from
// the upstream stays a 404, anything else is a 502 naming the upstream.
func upstreamFailure(w http.ResponseWriter, instance string, err error) {
	var se *StatusError
	if errors.As(err, &se) && se.Code == http.StatusNotFound {
		writeError(w, instance, http.StatusNotFound, "%s", se.Body)
		return
	}
	writeError(w, instance, http.StatusBadGateway, "%v", err)
}
