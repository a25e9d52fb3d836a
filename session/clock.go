package session

import (
	"sync/atomic"
	"time"
)

// Clock is a clock that can be moved forward: it reads the wall clock
// plus every duration Advance added. A sandbox server gives one Clock to
// everything time-driven (expiry, callback retries, token lifetimes, the
// sandbox's steps), so that a test can make time pass. The zero Clock
// reads the wall clock; it is safe for concurrent use.
type Clock struct {
	offset atomic.Int64 // nanoseconds added to the wall clock
}

// Now returns the wall clock plus the offset.
func (c *Clock) Now() time.Time {
	return time.Now().Add(time.Duration(c.offset.Load()))
}

// Advance moves the clock forward by d (never back: a negative d is
// ignored) and returns the time it then reads.
func (c *Clock) Advance(d time.Duration) time.Time {
	if d > 0 {
		c.offset.Add(int64(d))
	}
	return c.Now()
}

// Offset returns how far the clock is ahead of the wall clock.
func (c *Clock) Offset() time.Duration { return time.Duration(c.offset.Load()) }
