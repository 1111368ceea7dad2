package harness

import (
	"testing"
	"time"
)

// PollInterval is how often Poll retries its condition.
const PollInterval = 50 * time.Millisecond

// Poll calls cond until it returns nil, failing the test with cond's last
// error if that has not happened within timeout.
func Poll(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	if err := poll(timeout, cond); err != nil {
		t.Fatalf("harness: condition not met within %s: %v", timeout, err)
	}
}

func poll(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(PollInterval)
	}
}
