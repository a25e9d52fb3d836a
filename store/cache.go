package store

import (
	"bytes"
	"encoding/json"
	"slices"
	"sync"

	"github.com/sessiond/sessiond/session"
)

// recordCache keeps recently decoded records (sessions, merchants) with the
// bytes they were decoded from. A read that finds an entry's bytes stored
// is spared the decode. An entry is also current, answered without a read
// transaction, while no write transaction has marked its key since a read
// found its bytes stored with every transaction up to a known one ended.
//
// The committer marks, before a transaction commits (so before any read of
// bbolt can see it), the keys its writes name, or the whole cache for a
// write that does not say what it changes: a write path that says nothing
// is safe, one that names its keys spares the rest of the cache. A read
// that does not find its entry marked began before the mark, and so
// before the commit: it may answer the value from before it.
type recordCache[T any] struct {
	decode func([]byte) (*T, error)
	clone  func(*T) *T // a copy the caller may change
	size   int         // entries kept at most
	value  int         // bytes of a value kept at most

	mu      sync.RWMutex
	entries map[string]*cachedRecord[T]
	// all is the last transaction that marked every key, marked the last
	// that marked any: a key not in entries may have been marked by it.
	all, marked uint64
}

// cachedRecord is one entry; its fields change under the cache's lock.
type cachedRecord[T any] struct {
	raw []byte
	v   *T
	// seen: raw was stored once every transaction up to this one had
	// ended (0: not known). dirty: the last transaction that marked the
	// key. The entry is current while neither it nor the whole cache has
	// been marked since seen.
	seen, dirty uint64
}

func (c *recordCache[T]) currentLocked(e *cachedRecord[T]) bool {
	return e != nil && e.seen != 0 && e.dirty <= e.seen && c.all <= e.seen
}

// current returns a copy of the record with the key if its entry is
// current; ok false if it must be read.
func (c *recordCache[T]) current(key string) (*T, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e := c.entries[key]
	if !c.currentLocked(e) {
		return nil, false
	}
	return c.clone(e.v), true
}

// has reports whether the record with the key has a current entry: it is
// stored now.
func (c *recordCache[T]) has(key string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.currentLocked(c.entries[key])
}

// get returns a copy of the record whose stored value is raw, read in a
// transaction begun once every write transaction up to ended had ended
// (raw is valid only for that transaction): the cached one if raw is what
// it was decoded from, else a fresh decode, which it remembers.
func (c *recordCache[T]) get(key string, raw []byte, ended uint64) (*T, error) {
	c.mu.Lock()
	if e := c.entries[key]; e != nil && bytes.Equal(e.raw, raw) {
		e.seen = max(e.seen, ended)
		v := c.clone(e.v)
		c.mu.Unlock()
		return v, nil
	}
	c.mu.Unlock()
	v, err := c.decode(raw)
	if err != nil {
		return nil, err
	}
	c.remember(key, bytes.Clone(raw), v, ended)
	return v, nil
}

// remember caches v as the decoding of raw, keeping both (the caller must
// not change either, and keeps its own v), stored once every transaction
// up to seen had ended (0: not known to be stored).
func (c *recordCache[T]) remember(key string, raw []byte, v *T, seen uint64) {
	if len(raw) > c.value {
		return
	}
	e := &cachedRecord[T]{raw: raw, v: c.clone(v), seen: seen}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = make(map[string]*cachedRecord[T], c.size)
	}
	old, ok := c.entries[key]
	switch {
	case ok:
		e.dirty = old.dirty // the marks of the key so far
	case len(c.entries) >= c.size:
		for k := range c.entries { // map order is random: evict one at random
			delete(c.entries, k)
			break
		}
		fallthrough
	default:
		e.dirty = c.marked // the key's own marks were not kept
	}
	c.entries[key] = e
}

// mark records that transaction tx may change the records with the keys:
// their entries are not current until read again after it.
func (c *recordCache[T]) mark(tx uint64, keys []string) {
	if len(keys) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range keys {
		if e := c.entries[k]; e != nil {
			e.dirty = tx
		}
	}
	c.marked = tx
}

// markAll records that transaction tx may change any record.
func (c *recordCache[T]) markAll(tx uint64) {
	c.mu.Lock()
	c.all, c.marked = tx, tx
	c.mu.Unlock()
}

// forget drops the record with the key.
func (c *recordCache[T]) forget(key string) {
	c.mu.Lock()
	delete(c.entries, key)
	c.mu.Unlock()
}

// newSessionCache keeps up to 16 384 sessions of up to 4 KiB stored (most
// are under 1 KiB; callbacks and free-form fields can make one far larger,
// and those are not kept). A copy shares what the fields point to: callers
// change fields, never what they point to.
func newSessionCache() *recordCache[session.Session] {
	return &recordCache[session.Session]{
		decode: decodeSession,
		clone:  func(s *session.Session) *session.Session { c := *s; return &c },
		size:   16384,
		value:  4 << 10,
	}
}

// newMerchantCache keeps up to 4 096 merchants; a copy has slices of its
// own.
func newMerchantCache() *recordCache[session.Merchant] {
	return &recordCache[session.Merchant]{
		decode: func(b []byte) (*session.Merchant, error) {
			m := new(session.Merchant)
			return m, json.Unmarshal(b, m)
		},
		clone: func(m *session.Merchant) *session.Merchant {
			c := *m
			c.SecretSalt = bytes.Clone(m.SecretSalt)
			c.SecretHash = bytes.Clone(m.SecretHash)
			c.FrameAncestors = slices.Clone(m.FrameAncestors)
			return &c
		},
		size:  4096,
		value: 64 << 10,
	}
}
