// Package retry paces the retries of the loops that reconnect to a broker or republish
// events after a failure.
package retry

import (
	"math/rand/v2"
	"time"
)

// Backoff returns the wait before attempt n (0-based): exponential from 100 ms up to 10 s,
// with full jitter so that replicas do not retry in lockstep.
func Backoff(n int) time.Duration {
	ceiling := min(100*time.Millisecond<<min(n, 7), 10*time.Second)
	return ceiling/2 + rand.N(ceiling/2+1)
}
