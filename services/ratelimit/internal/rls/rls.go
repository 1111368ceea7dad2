// Package rls serves the Envoy Rate Limit Service v3 gRPC API
// (envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit) on top of
// a decider, so a stock Envoy can use the ratelimit binary as well as
// Switchyard's own proxies.
package rls

import (
	"context"
	"errors"
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	commonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/decider"
	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/limits"
)

// Server implements RateLimitServiceServer.
type Server struct {
	rlsv3.UnimplementedRateLimitServiceServer
	d *decider.Decider
}

var _ rlsv3.RateLimitServiceServer = (*Server)(nil)

// New serves decisions from d.
func New(d *decider.Decider) *Server { return &Server{d: d} }

// ShouldRateLimit implements RateLimitServiceServer. An invalid request is
// answered with InvalidArgument naming the field.
func (s *Server) ShouldRateLimit(ctx context.Context, in *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
	req, err := FromProto(in)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	resp, err := s.d.Decide(ctx, req)
	if errors.Is(err, decider.ErrInvalidRequest) {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return ToProto(resp), nil
}

// FromProto reads an RLS request, refusing what the service does not
// implement rather than ignoring it.
func FromProto(in *rlsv3.RateLimitRequest) (decider.Request, error) {
	req := decider.Request{Domain: in.GetDomain(), Hits: in.GetHitsAddend(), Descriptors: make([]decider.Descriptor, len(in.GetDescriptors()))}
	for i, d := range in.GetDescriptors() {
		out := &req.Descriptors[i]
		if d.GetIsNegativeHits() {
			return req, fmt.Errorf("descriptors[%d].is_negative_hits: not supported", i)
		}
		if h := d.GetHitsAddend(); h != nil {
			if h.GetValue() > uint64(^uint32(0)) {
				return req, fmt.Errorf("descriptors[%d].hits_addend: %d is too large", i, h.GetValue())
			}
			out.Hits = uint32(h.GetValue())
		}
		out.Entries = make([]limits.Entry, len(d.GetEntries()))
		for j, e := range d.GetEntries() {
			out.Entries[j] = limits.Entry{Key: e.GetKey(), Value: e.GetValue()}
		}
		if o := d.GetLimit(); o != nil {
			l, err := override(o)
			if err != nil {
				return req, fmt.Errorf("descriptors[%d].limit.%w", i, err)
			}
			out.Override = &l
		}
	}
	return req, nil
}

func override(o *commonv3.RateLimitDescriptor_RateLimitOverride) (limits.Limit, error) {
	if m := o.GetUnitMultiplier(); m != nil && m.GetValue() > 1 {
		return limits.Limit{}, fmt.Errorf("unit_multiplier: %d not supported (only 1)", m.GetValue())
	}
	u, ok := map[typev3.RateLimitUnit]limits.Unit{
		typev3.RateLimitUnit_SECOND: limits.Second, typev3.RateLimitUnit_MINUTE: limits.Minute,
		typev3.RateLimitUnit_HOUR: limits.Hour, typev3.RateLimitUnit_DAY: limits.Day,
		typev3.RateLimitUnit_MONTH: limits.Month, typev3.RateLimitUnit_YEAR: limits.Year,
	}[o.GetUnit()]
	if !ok {
		return limits.Limit{}, fmt.Errorf("unit: %v not supported", o.GetUnit())
	}
	return limits.Limit{Unit: u, RequestsPerUnit: o.GetRequestsPerUnit(), Burst: o.GetRequestsPerUnit()}, nil
}

var protoUnits = map[limits.Unit]rlsv3.RateLimitResponse_RateLimit_Unit{
	limits.Second: rlsv3.RateLimitResponse_RateLimit_SECOND, limits.Minute: rlsv3.RateLimitResponse_RateLimit_MINUTE,
	limits.Hour: rlsv3.RateLimitResponse_RateLimit_HOUR, limits.Day: rlsv3.RateLimitResponse_RateLimit_DAY,
	limits.Week: rlsv3.RateLimitResponse_RateLimit_WEEK, limits.Month: rlsv3.RateLimitResponse_RateLimit_MONTH,
	limits.Year: rlsv3.RateLimitResponse_RateLimit_YEAR,
}

func code(c decider.Code) rlsv3.RateLimitResponse_Code {
	if c == decider.OverLimit {
		return rlsv3.RateLimitResponse_OVER_LIMIT
	}
	return rlsv3.RateLimitResponse_OK
}

// ToProto writes a decision as an RLS response: overall code, one status
// per descriptor, and the X-RateLimit-* / Retry-After headers as response
// headers to add.
func ToProto(resp decider.Response) *rlsv3.RateLimitResponse {
	// One allocation per kind of message rather than one per message: this
	// runs for every decision.
	n := len(resp.Statuses)
	out := &rlsv3.RateLimitResponse{OverallCode: code(resp.Code), Statuses: make([]*rlsv3.RateLimitResponse_DescriptorStatus, n)}
	statuses := make([]rlsv3.RateLimitResponse_DescriptorStatus, n)
	var limits []rlsv3.RateLimitResponse_RateLimit
	var durations []durationpb.Duration
	for i, st := range resp.Statuses {
		ps := &statuses[i]
		ps.Code = code(st.Code)
		if st.Limit != nil {
			if limits == nil {
				limits = make([]rlsv3.RateLimitResponse_RateLimit, n)
			}
			ps.CurrentLimit = &limits[i]
			ps.CurrentLimit.Name = st.Limit.Name
			ps.CurrentLimit.RequestsPerUnit = st.Limit.RequestsPerUnit
			ps.CurrentLimit.Unit = protoUnits[st.Limit.Unit]
			if st.Remaining >= 0 {
				if durations == nil {
					durations = make([]durationpb.Duration, n)
				}
				ps.LimitRemaining = uint32(min(st.Remaining, int64(^uint32(0))))
				nanos := st.Reset.Nanoseconds()
				durations[i].Seconds, durations[i].Nanos = nanos/1e9, int32(nanos%1e9)
				ps.DurationUntilReset = &durations[i]
			}
		}
		out.Statuses[i] = ps
	}
	if len(resp.Headers) > 0 {
		hs := make([]corev3.HeaderValue, len(resp.Headers))
		out.ResponseHeadersToAdd = make([]*corev3.HeaderValue, len(resp.Headers))
		for i, h := range resp.Headers {
			hs[i].Key, hs[i].Value = h.Name, h.Value
			out.ResponseHeadersToAdd[i] = &hs[i]
		}
	}
	return out
}
