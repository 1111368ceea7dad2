package proxy

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	rlcommonv3 "github.com/switchyard-mesh/switchyard/proto/switchyard/xdssubset/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/switchyard-mesh/switchyard/proto/switchyard/xdssubset/envoy/service/ratelimit/v3"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/lb"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/route"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/xds"
)

// shouldRateLimit is Envoy's RLS call (envoy.service.ratelimit.v3), made
// with the sidecar's subset of its messages.
const shouldRateLimit = "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit"

// globalRateLimit asks the rate limit service (Envoy RLS v3) whether r may
// pass. On failure, failure_mode_deny decides; the error is logged and counted.
func (p *Proxy) globalRateLimit(ctx context.Context, listener string, g *xds.GlobalRateLimit, rt *route.Route, r *http.Request, cluster string) (limited bool, hdr http.Header, status int) {
	req := &rlsv3.RateLimitRequest{Domain: g.Domain, HitsAddend: 1}
	for i := range rt.Action.RateLimits {
		entries, ok := rt.Action.RateLimits[i].Descriptor(r, cluster)
		if !ok {
			continue
		}
		d := &rlcommonv3.RateLimitDescriptor{}
		for _, e := range entries {
			d.Entries = append(d.Entries, &rlcommonv3.RateLimitDescriptor_Entry{Key: e.Key, Value: e.Value})
		}
		req.Descriptors = append(req.Descriptors, d)
	}
	if len(req.Descriptors) == 0 {
		return false, nil, 0
	}
	cc, err := p.rlsConn(g.Cluster)
	if err == nil {
		ctx, cancel := context.WithTimeout(ctx, g.Timeout)
		defer cancel()
		resp := &rlsv3.RateLimitResponse{}
		if err = cc.Invoke(ctx, shouldRateLimit, req, resp); err == nil {
			return resp.GetOverallCode() == rlsv3.RateLimitResponse_OVER_LIMIT, rateLimitHeaders(resp), http.StatusTooManyRequests
		}
	}
	p.m.rateLimitErrors.WithLabelValues(listener).Inc()
	p.log.Warn("rate limit service call failed", "cluster", g.Cluster, "failure_mode_deny", g.FailureModeDeny, "err", err)
	if g.FailureModeDeny {
		return true, nil, http.StatusInternalServerError
	}
	return false, nil, 0
}

// rateLimitHeaders are the draft-03 x-ratelimit-* headers for the most
// restrictive descriptor.
func rateLimitHeaders(resp *rlsv3.RateLimitResponse) http.Header {
	var best *rlsv3.RateLimitResponse_DescriptorStatus
	for _, s := range resp.GetStatuses() {
		if s.GetCurrentLimit() == nil {
			continue
		}
		if best == nil || s.GetLimitRemaining() < best.GetLimitRemaining() {
			best = s
		}
	}
	if best == nil {
		return nil
	}
	h := http.Header{}
	h.Set("X-Ratelimit-Limit", strconv.Itoa(int(best.GetCurrentLimit().GetRequestsPerUnit())))
	h.Set("X-Ratelimit-Remaining", strconv.Itoa(int(best.GetLimitRemaining())))
	if d := best.GetDurationUntilReset(); d != nil {
		h.Set("X-Ratelimit-Reset", strconv.Itoa(int(d.AsDuration().Seconds())))
	}
	return h
}

// rlsConn returns a gRPC connection to the rate limit service cluster; each
// new connection dials an endpoint picked from the cluster, with its mTLS.
func (p *Proxy) rlsConn(name string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cc, ok := p.rls[name]; ok {
		return cc, nil
	}
	c := p.cluster(name)
	if c == nil {
		return nil, fmt.Errorf("rate limit cluster %s is not known", name)
	}
	creds := insecure.NewCredentials()
	if c.dialTLS != nil {
		creds = credentials.NewTLS(c.dialTLS.Clone())
	}
	cc, err := grpc.NewClient("passthrough:///"+name,
		grpc.WithTransportCredentials(creds),
		// A fixed window turns off grpc-go's bandwidth-estimation pings, a
		// write and a read more per call on both sides for calls far too
		// small to fill any window.
		grpc.WithInitialWindowSize(1<<20), grpc.WithInitialConnWindowSize(1<<20),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			c := p.cluster(name)
			if c == nil {
				return nil, fmt.Errorf("rate limit cluster %s is gone", name)
			}
			h := c.pick(lb.Request{})
			if h == nil {
				return nil, fmt.Errorf("no healthy endpoint in rate limit cluster %s", name)
			}
			var d net.Dialer
			return d.DialContext(ctx, "tcp", h.Addr)
		}))
	if err != nil {
		return nil, fmt.Errorf("dial rate limit cluster %s: %w", name, err)
	}
	p.rls[name] = cc
	return cc, nil
}
