package session

import (
	"sync"
	"time"
)

// referenceEpoch is where session references start counting: they are
// microseconds since then, so that they stay well below 2^53 (exact in
// every JSON decoder) for centuries.
var referenceEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// refGen makes session references: positive numbers that strictly
// increase within the process and, since they follow the clock in
// microseconds, across restarts too unless sessions were made faster than
// one per microsecond for a while before the restart.
type refGen struct {
	mu   sync.Mutex
	last int64
}

func (g *refGen) next(now time.Time) int64 {
	n := now.Sub(referenceEpoch).Microseconds()
	g.mu.Lock()
	defer g.mu.Unlock()
	if n <= g.last {
		n = g.last + 1
	}
	if n < 1 {
		n = 1
	}
	g.last = n
	return n
}
