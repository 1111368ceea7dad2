// Package store keeps rate-limit state and decides every check of one
// request atomically: in Redis with one Lua script per request (one round
// trip), or in process memory when no Redis is configured. Both run the
// arithmetic of package quota, so they answer the same.
package store

import (
	"context"
	"time"

	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/quota"
)

// Store decides the checks of one request together.
type Store interface {
	// Decide applies checks at now: Result.Allowed is true when no
	// non-shadow check is over, and only then, and only if commit is set,
	// is anything consumed.
	Decide(ctx context.Context, now time.Time, checks []quota.Check, commit bool) (Result, error)
	// Ping reports whether the store can answer.
	Ping(ctx context.Context) error
}

// Result is the decision on one request, with one outcome per check.
type Result struct {
	Allowed  bool
	Outcomes []quota.Outcome
}

func params(checks []quota.Check, now int64) []quota.Params {
	out := make([]quota.Params, len(checks))
	for i, c := range checks {
		out[i] = quota.ParamsFor(c, now)
	}
	return out
}
