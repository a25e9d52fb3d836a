package store

import (
	"bytes"
	"encoding/json"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/sessiond/sessiond/session"
)

// recordCache keeps recently decoded records (sessions, merchants) with the
// bytes they were decoded from. A hit is checked against the stored bytes,
// so it is never stale, and saves the decode. An entry also records the
// count of write transactions (DB.transactions) read before a read that
// found its bytes stored: while the count has not moved, nothing can have
// changed them, and the entry is current without a read transaction. Any
// transaction, whatever it wrote, moves the count, so no write path has to
// name what it changed. The count is odd while a transaction is under way,
// and then nothing is current: a read of bbolt that sees the transaction's
// commit must not be followed by one from memory that does not.
type recordCache[T any] struct {
	decode func([]byte) (*T, error)
	clone  func(*T) *T // a copy the caller may change
	size   int         // entries kept at most
	value  int         // bytes of a value kept at most

	mu      sync.RWMutex
	entries map[string]*cachedRecord[T]
}

type cachedRecord[T any] struct {
	raw     []byte
	v       *T
	checked atomic.Uint64 // the count raw was last seen stored after; 0: unknown
}

// current returns a copy of the record with the key if it was seen stored
// since transaction count n; ok false if it must be read.
func (c *recordCache[T]) current(key string, n uint64) (*T, bool) {
	if !settled(n) {
		return nil, false
	}
	c.mu.RLock()
	e := c.entries[key]
	c.mu.RUnlock()
	if e == nil || e.checked.Load() != n {
		return nil, false
	}
	return c.clone(e.v), true
}

// has reports whether the record with the key was seen stored since
// transaction count n: it is stored now.
func (c *recordCache[T]) has(key string, n uint64) bool {
	if !settled(n) {
		return false
	}
	c.mu.RLock()
	e := c.entries[key]
	c.mu.RUnlock()
	return e != nil && e.checked.Load() == n
}

// settled reports whether transaction count n was read while no
// transaction was under way, after at least one: only such a count can
// make an entry current.
func settled(n uint64) bool { return n != 0 && n%2 == 0 }

// get returns a copy of the record whose stored value is raw (valid only
// for the transaction it was read in, which began when the count was
// checked): the cached one if raw is what it was decoded from, else a
// fresh decode, which it remembers.
func (c *recordCache[T]) get(key string, raw []byte, checked uint64) (*T, error) {
	c.mu.RLock()
	e := c.entries[key]
	c.mu.RUnlock()
	if e != nil && bytes.Equal(e.raw, raw) {
		if settled(checked) {
			e.checked.Store(checked)
		}
		return c.clone(e.v), nil
	}
	v, err := c.decode(raw)
	if err != nil {
		return nil, err
	}
	c.remember(key, bytes.Clone(raw), v, checked)
	return v, nil
}

// remember caches v as the decoding of raw, keeping both (the caller must
// not change either, and keeps its own v), seen stored after count
// checked (0: not known to be stored).
func (c *recordCache[T]) remember(key string, raw []byte, v *T, checked uint64) {
	if len(raw) > c.value {
		return
	}
	e := &cachedRecord[T]{raw: raw, v: c.clone(v)}
	if settled(checked) {
		e.checked.Store(checked)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = make(map[string]*cachedRecord[T], c.size)
	}
	if _, ok := c.entries[key]; !ok && len(c.entries) >= c.size {
		for k := range c.entries { // map order is random: evict one at random
			delete(c.entries, k)
			break
		}
	}
	c.entries[key] = e
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
