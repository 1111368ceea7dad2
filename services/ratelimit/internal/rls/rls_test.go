package rls

import (
	"strings"
	"testing"
	"time"

	commonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/decider"
	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/limits"
)

func desc(kv ...string) *commonv3.RateLimitDescriptor {
	d := &commonv3.RateLimitDescriptor{}
	for i := 0; i+1 < len(kv); i += 2 {
		d.Entries = append(d.Entries, &commonv3.RateLimitDescriptor_Entry{Key: kv[i], Value: kv[i+1]})
	}
	return d
}

func TestFromProto(t *testing.T) {
	withHits := desc("user", "a")
	withHits.HitsAddend = wrapperspb.UInt64(4)
	withLimit := desc("user", "b")
	withLimit.Limit = &commonv3.RateLimitDescriptor_RateLimitOverride{RequestsPerUnit: 7, Unit: typev3.RateLimitUnit_MINUTE}
	req, err := FromProto(&rlsv3.RateLimitRequest{Domain: "api", HitsAddend: 2, Descriptors: []*commonv3.RateLimitDescriptor{withHits, withLimit}})
	if err != nil {
		t.Fatal(err)
	}
	if req.Domain != "api" || req.Hits != 2 || req.Descriptors[0].Hits != 4 || req.Descriptors[0].Entries[0] != (limits.Entry{Key: "user", Value: "a"}) {
		t.Fatalf("req = %+v", req)
	}
	if o := req.Descriptors[1].Override; o == nil || o.RequestsPerUnit != 7 || o.Unit != limits.Minute {
		t.Fatalf("override = %+v", o)
	}

	neg := desc("k", "v")
	neg.IsNegativeHits = true
	mult := desc("k", "v")
	mult.Limit = &commonv3.RateLimitDescriptor_RateLimitOverride{RequestsPerUnit: 1, Unit: typev3.RateLimitUnit_SECOND, UnitMultiplier: wrapperspb.UInt32(30)}
	unknown := desc("k", "v")
	unknown.Limit = &commonv3.RateLimitDescriptor_RateLimitOverride{RequestsPerUnit: 1}
	for want, d := range map[string]*commonv3.RateLimitDescriptor{
		"descriptors[1].is_negative_hits: not supported":         neg,
		"descriptors[1].limit.unit_multiplier: 30 not supported": mult,
		"descriptors[1].limit.unit: UNKNOWN not supported":       unknown,
	} {
		_, err := FromProto(&rlsv3.RateLimitRequest{Domain: "api", Descriptors: []*commonv3.RateLimitDescriptor{desc("k", "v"), d}})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %q", err, want)
		}
	}
}

func TestToProto(t *testing.T) {
	l := limits.Limit{Name: "seed", Unit: limits.Second, RequestsPerUnit: 10}
	out := ToProto(decider.Response{
		Code: decider.OverLimit,
		Statuses: []decider.Status{
			{Code: decider.OverLimit, Limit: &l, Remaining: 0, Reset: 300 * time.Millisecond},
			{Code: decider.OK, Remaining: -1},
			{Code: decider.OK, Limit: &l, Remaining: -1},
		},
		Headers: []decider.Header{{Name: "Retry-After", Value: "1"}},
	})
	if out.OverallCode != rlsv3.RateLimitResponse_OVER_LIMIT || len(out.Statuses) != 3 {
		t.Fatalf("out = %v", out)
	}
	s := out.Statuses[0]
	if s.Code != rlsv3.RateLimitResponse_OVER_LIMIT || s.CurrentLimit.GetName() != "seed" || s.CurrentLimit.GetUnit() != rlsv3.RateLimitResponse_RateLimit_SECOND || s.DurationUntilReset.AsDuration() != 300*time.Millisecond {
		t.Fatalf("status 0 = %v", s)
	}
	if out.Statuses[1].CurrentLimit != nil || out.Statuses[2].DurationUntilReset != nil {
		t.Fatalf("unknown fields filled: %v", out.Statuses)
	}
	if h := out.ResponseHeadersToAdd; len(h) != 1 || h[0].Key != "Retry-After" {
		t.Fatalf("headers = %v", h)
	}
}
