// Package debounce turns a burst of change signals into one action: after
// a signal it waits until no further signal arrives for a quiet period, but
// never longer than a maximum delay after the first one.
package debounce

import (
	"context"
	"time"
)

// Run calls fire once per burst of signals on in until ctx ends.
func Run(ctx context.Context, in <-chan struct{}, quiet, maxDelay time.Duration, fire func()) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-in:
		}
		deadline := time.Now().Add(maxDelay)
		timer := time.NewTimer(min(quiet, maxDelay))
	burst:
		for {
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-in:
				timer.Reset(max(0, min(quiet, time.Until(deadline))))
			case <-timer.C:
				break burst
			}
		}
		fire()
	}
}
