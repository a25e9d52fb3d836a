package postgres

import (
	"bytes"
	"hash/maphash"
	"sync"
	"time"

	"github.com/sessiond/sessiond/session"
)

// The session cache. Session reads are the most frequent request, and a
// read from the database costs a round trip through the pool and a query.
// The DB keeps the sessions it has read or saved in memory, and the change
// feed keeps them current: a replica's own saves and touches update them
// at commit, other replicas' saves and touches when their notification
// arrives (notifications come in commit order on the one listening
// connection).
//
// A read answered from the cache first syncs with the feed (listener.sync):
// it waits until the listening connection has answered a query sent after
// the read began. PostgreSQL sends a listening backend the notifications
// of every transaction committed before it answers a query, so by then
// every change committed before the read began, on any replica, has been
// applied: a read on one replica sees what a client was told committed on
// another. Reads waiting at once share one such query, on a connection
// that does nothing else, so it costs far less than a read each.
//
// While the listening connection is down, or catching up after a
// reconnect, nothing syncs and every read goes to the database; after the
// catch-up the cache is cleared, since touches and deletions are not
// logged and may have been missed.
//
// A session's states are ordered: a save raises its version, a touch
// raises its last request at the same version. An entry is only ever
// replaced by a later state, so updates may arrive in any order. What
// could still go wrong is an entry coming back older than the feed has
// seen: a read (or save) that began before a change, finishing after the
// change was applied and its entry evicted. So each shard counts its
// removals (gen), a read or save notes the count before it goes to the
// database, and it may put what it got into the cache only if nothing was
// removed from the shard meanwhile.
//
// Without a feed (no Publisher), the cache never answers on its own: a
// read goes to the database, and the entry only saves decoding bytes
// equal to those it was decoded from.

const (
	cacheShards = 64
	// cacheSize caps the sessions kept; a shard full drops one at random
	// to make room.
	cacheSize = 16384
	// cacheValue caps the stored size of a session kept.
	cacheValue = 4 << 10
)

type sessionCache struct {
	seed   maphash.Seed
	shards [cacheShards]cacheShard
}

type cacheShard struct {
	mu      sync.RWMutex
	gen     uint64 // entries removed so far
	entries map[string]cachedSession
}

type cachedSession struct {
	raw []byte // the stored bytes s was decoded from; nil if not known
	s   *session.Session
}

func newSessionCache() *sessionCache {
	c := &sessionCache{seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].entries = make(map[string]cachedSession)
	}
	return c
}

func (c *sessionCache) shard(id string) *cacheShard {
	return &c.shards[maphash.String(c.seed, id)%cacheShards]
}

// lookup returns the cached session with the id, a copy the caller may
// change, and the shard's gen, for a fill.
func (c *sessionCache) lookup(id string) (*session.Session, uint64, bool) {
	sh := c.shard(id)
	sh.mu.RLock()
	e, ok := sh.entries[id]
	gen := sh.gen
	sh.mu.RUnlock()
	if !ok {
		return nil, gen, false
	}
	s := *e.s // callers change fields, never what the fields point to
	return &s, gen, true
}

// has reports whether the session with the id is cached.
func (c *sessionCache) has(id string) bool {
	sh := c.shard(id)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	_, ok := sh.entries[id]
	return ok
}

// ticket returns the gen of the id's shard, to pass to fill.
func (c *sessionCache) ticket(id string) uint64 {
	sh := c.shard(id)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return sh.gen
}

// decode returns the session stored as raw: the cached one if it was
// decoded from the same bytes, else raw decoded. With gen (from lookup or
// ticket, taken before raw was read) it keeps what it decoded.
func (c *sessionCache) decode(id string, raw []byte, gen *uint64) (*session.Session, error) {
	sh := c.shard(id)
	sh.mu.RLock()
	e, ok := sh.entries[id]
	sh.mu.RUnlock()
	if ok && e.raw != nil && bytes.Equal(e.raw, raw) {
		s := *e.s
		return &s, nil
	}
	s, err := decodeSession(raw)
	if err != nil {
		return nil, err
	}
	if gen != nil {
		c.fill(raw, s, *gen)
	}
	return s, nil
}

// later reports whether a is a later state of a session than b.
func later(a, b *session.Session) bool {
	return a.Version > b.Version || a.Version == b.Version && a.LastRequest.After(b.LastRequest)
}

// fill keeps s, stored as raw (nil if not known), read or saved after gen
// was taken from its shard: unless an entry was removed from the shard
// since, or a later state is cached.
func (c *sessionCache) fill(raw []byte, s *session.Session, gen uint64) {
	sh := c.shard(s.ID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.gen != gen {
		return
	}
	sh.putLocked(raw, s)
}

// apply keeps s, stored as raw, a state the feed delivered, unless a later
// state is cached.
func (c *sessionCache) apply(raw []byte, s *session.Session) {
	sh := c.shard(s.ID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.putLocked(raw, s)
}

func (sh *cacheShard) putLocked(raw []byte, s *session.Session) {
	if len(raw) > cacheValue {
		sh.removeLocked(s.ID)
		return
	}
	e, ok := sh.entries[s.ID]
	if ok && !later(s, e.s) {
		return
	}
	if !ok && len(sh.entries) >= cacheSize/cacheShards {
		for id := range sh.entries { // map order is random: evict one at random
			sh.removeLocked(id)
			break
		}
	}
	cp := *s
	sh.entries[s.ID] = cachedSession{raw: raw, s: &cp}
}

func (sh *cacheShard) removeLocked(id string) {
	delete(sh.entries, id)
	sh.gen++
}

// touch applies a touch the database stored on the session with the id
// at its version: if that version is cached, a later request than the one
// cached replaces it; a cached earlier version is dropped (the database
// is known to be past it). With nothing cached, a fill that began before
// the touch may not keep what it read.
func (c *sessionCache) touch(id string, version int, at time.Time, ip, userAgent string) {
	sh := c.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, ok := sh.entries[id]
	switch {
	case !ok:
		sh.gen++
	case e.s.Version < version:
		sh.removeLocked(id)
	case e.s.Version == version && at.After(e.s.LastRequest):
		cp := *e.s
		cp.LastRequest, cp.IP, cp.UserAgent = at, ip, userAgent
		sh.entries[id] = cachedSession{s: &cp}
	}
}

// forget drops the sessions with the ids (deleted from the database).
func (c *sessionCache) forget(ids ...string) {
	for _, id := range ids {
		sh := c.shard(id)
		sh.mu.Lock()
		sh.removeLocked(id)
		sh.mu.Unlock()
	}
}

// clear drops every entry.
func (c *sessionCache) clear() {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		clear(sh.entries)
		sh.gen++
		sh.mu.Unlock()
	}
}

// len returns how many sessions are cached.
func (c *sessionCache) len() int {
	n := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.RLock()
		n += len(sh.entries)
		sh.mu.RUnlock()
	}
	return n
}
