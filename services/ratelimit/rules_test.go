package main

import (
	"testing"

	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/limits"
)

// TestShippedRulesAreValid keeps the rules used by compose and make dev
// loadable.
func TestShippedRulesAreValid(t *testing.T) {
	cfg, err := limits.LoadPath("testdata/rules")
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := cfg.Match("switchyard", []limits.Entry{{Key: "plan", Value: "free"}, {Key: "user", Value: "alice"}}); !ok || len(r.Limits) != 2 {
		t.Fatalf("free tier = %+v, %v", r, ok)
	}
}
