// Package debugapi serves the ratelimit admin endpoints that explain
// decisions: /debug/decide answers "what would you decide for this
// descriptor" without consuming anything, and /debug/rules lists the rules
// in force.
package debugapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/decider"
	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/limits"
)

// limitJSON describes one limit.
type limitJSON struct {
	Name            string `json:"name,omitempty"`
	Unit            string `json:"unit"`
	RequestsPerUnit uint32 `json:"requests_per_unit"`
	Algorithm       string `json:"algorithm"`
	Burst           uint32 `json:"burst,omitempty"`
}

func toLimitJSON(l limits.Limit) limitJSON {
	out := limitJSON{Name: l.Name, Unit: l.Unit.String(), RequestsPerUnit: l.RequestsPerUnit, Algorithm: l.Algorithm.String()}
	if l.Algorithm == limits.GCRA {
		out.Burst = l.Burst
	}
	return out
}

type statusJSON struct {
	Code              string     `json:"code"`
	Rule              string     `json:"rule,omitempty"`
	Unlimited         bool       `json:"unlimited,omitempty"`
	Shadow            bool       `json:"shadow_mode,omitempty"`
	Limit             *limitJSON `json:"limit,omitempty"`
	Remaining         *int64     `json:"remaining,omitempty"`
	ResetSeconds      float64    `json:"reset_seconds,omitempty"`
	RetryAfterSeconds float64    `json:"retry_after_seconds,omitempty"`
}

type decisionJSON struct {
	Code     string            `json:"code"`
	Source   string            `json:"source"`
	Statuses []statusJSON      `json:"statuses"`
	Headers  map[string]string `json:"headers,omitempty"`
}

type ruleJSON struct {
	Domain     string      `json:"domain"`
	Descriptor string      `json:"descriptor"`
	Unlimited  bool        `json:"unlimited,omitempty"`
	Shadow     bool        `json:"shadow_mode,omitempty"`
	Limits     []limitJSON `json:"limits,omitempty"`
}

// Register adds the endpoints to an admin mux.
func Register(handle func(pattern string, h http.Handler), d *decider.Decider) {
	handle("GET /debug/decide", Decide(d))
	handle("GET /debug/rules", Rules(d))
}

// Decide answers GET /debug/decide?domain=api&descriptor=plan=free,user=alice
// (descriptor may repeat; hits optional) with the decision the service
// would make now, as JSON. It is a dry run: nothing is consumed.
func Decide(d *decider.Decider) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		req := decider.Request{Domain: q.Get("domain"), DryRun: true}
		for i, raw := range q["descriptor"] {
			desc, err := parseDescriptor(raw)
			if err != nil {
				http.Error(w, fmt.Sprintf("descriptor[%d]: %v", i, err), http.StatusBadRequest)
				return
			}
			req.Descriptors = append(req.Descriptors, desc)
		}
		if h := q.Get("hits"); h != "" {
			n, err := strconv.ParseUint(h, 10, 32)
			if err != nil {
				http.Error(w, fmt.Sprintf("hits: want a whole number, got %q", h), http.StatusBadRequest)
				return
			}
			req.Hits = uint32(n)
		}
		resp, err := d.Decide(r.Context(), req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		out := decisionJSON{Code: resp.Code.String(), Source: string(resp.Source)}
		for _, st := range resp.Statuses {
			sj := statusJSON{Code: st.Code.String(), Rule: st.Rule, Unlimited: st.Unlimited, Shadow: st.Shadow}
			if st.Limit != nil {
				l := toLimitJSON(*st.Limit)
				sj.Limit = &l
			}
			if st.Remaining >= 0 {
				rem := st.Remaining
				sj.Remaining = &rem
				sj.ResetSeconds = st.Reset.Seconds()
				sj.RetryAfterSeconds = st.RetryAfter.Seconds()
			}
			out.Statuses = append(out.Statuses, sj)
		}
		if len(resp.Headers) > 0 {
			out.Headers = map[string]string{}
			for _, h := range resp.Headers {
				out.Headers[h.Name] = h.Value
			}
		}
		writeJSON(w, out)
	})
}

// Rules answers GET /debug/rules with every configured descriptor.
func Rules(d *decider.Decider) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		out := []ruleJSON{}
		d.Rules().Walk(func(r limits.Rule) {
			rj := ruleJSON{Domain: r.Domain, Descriptor: r.Path, Unlimited: r.Unlimited, Shadow: r.Shadow}
			for _, l := range r.Limits {
				rj.Limits = append(rj.Limits, toLimitJSON(l))
			}
			out = append(out, rj)
		})
		writeJSON(w, out)
	})
}

// parseDescriptor reads "k=v,k2=v2"; an entry without "=" has an empty value.
func parseDescriptor(s string) (decider.Descriptor, error) {
	var d decider.Descriptor
	for i, part := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(part, "=")
		if k == "" {
			return d, fmt.Errorf("entry %d has no key (want k=v,k2=v2)", i)
		}
		d.Entries = append(d.Entries, limits.Entry{Key: k, Value: v})
	}
	return d, nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
