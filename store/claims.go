package store

import (
	"sync"
	"time"
)

// claimKind separates the claims on sessions (expiry), deliveries and
// timers, whose ids could meet.
type claimKind uint8

const (
	claimSession claimKind = iota
	claimDelivery
	claimTimer
)

type claimKey struct {
	kind claimKind
	id   string
}

type claim struct {
	owner string
	until time.Time
}

// claims are the live claims of this process. mu is held across a claim's
// read of the file, and a claim ends only after the write that settles it
// is committed, so a claimant never reads a stale due entry for work
// whose outcome is being written.
type claims struct {
	mu sync.Mutex
	m  map[claimKey]claim
}

// heldLocked reports whether another owner holds a live claim on the id,
// or owner itself does (the work is in hand); an expired claim is dropped.
func (c *claims) heldLocked(kind claimKind, id, owner string, now time.Time) bool {
	cl, ok := c.m[claimKey{kind, id}]
	if !ok {
		return false
	}
	if !now.Before(cl.until) {
		delete(c.m, claimKey{kind, id})
		return false
	}
	return true
}

// otherLocked reports whether the claim on the id is another owner's:
// owner's own has run out and been taken.
func (c *claims) otherLocked(kind claimKind, id, owner string) bool {
	cl, ok := c.m[claimKey{kind, id}]
	return ok && cl.owner != owner
}

func (c *claims) takeLocked(kind claimKind, id, owner string, until time.Time) {
	if c.m == nil {
		c.m = make(map[claimKey]claim)
	}
	c.m[claimKey{kind, id}] = claim{owner: owner, until: until}
}

// end drops the claim on the id, whoever holds it.
func (c *claims) end(kind claimKind, id string) {
	c.mu.Lock()
	delete(c.m, claimKey{kind, id})
	c.mu.Unlock()
}

// release drops owner's claim on the id, if it holds it.
func (c *claims) release(kind claimKind, id, owner string) {
	c.mu.Lock()
	if cl, ok := c.m[claimKey{kind, id}]; ok && cl.owner == owner {
		delete(c.m, claimKey{kind, id})
	}
	c.mu.Unlock()
}
