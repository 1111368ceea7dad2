package identity

import "time"

// Renewal timing. An SVID is renewed when about half its lifetime is gone;
// the jitter spreads renewals of processes started together.
const (
	renewJitter    = 0.1 // fraction of lifetime renewals may come early
	backoffInitial = 500 * time.Millisecond
	backoffMax     = 30 * time.Second
	// backoffMaxNoSVID caps retries when there is no valid SVID (start-up,
	// or expired during an outage): the process cannot talk to anyone, so
	// it retries more eagerly.
	backoffMaxNoSVID = 5 * time.Second
	minRetry         = 100 * time.Millisecond
)

// renewAt is when to renew an SVID received at received and valid until
// notAfter: at half its remaining life, up to renewJitter of that life
// earlier. r is uniform in [0,1).
func renewAt(received, notAfter time.Time, r float64) time.Time {
	life := notAfter.Sub(received)
	return received.Add(life/2 - time.Duration(float64(life)*renewJitter*r))
}

// retryDelay is the wait before retry number attempt (0-based) after a
// failed fetch: exponential from backoffInitial to backoffMax with "equal
// jitter", but never more than a quarter of the time left on the current
// SVID, so a short-lived SVID still gets several tries before it expires.
// remaining <= 0 means there is no valid SVID: the cap is backoffMaxNoSVID.
func retryDelay(attempt int, remaining time.Duration, r float64) time.Duration {
	ceiling := backoffMax
	if remaining <= 0 {
		ceiling = backoffMaxNoSVID
	}
	d := ceiling
	if attempt < 16 {
		d = min(backoffInitial<<attempt, ceiling)
	}
	d = d/2 + time.Duration(float64(d/2)*r)
	if remaining > 0 {
		d = min(d, max(remaining/4, minRetry))
	}
	return d
}
