package rpc

import (
	"encoding/json"
	"hash/maphash"
	"strconv"
	"sync"
	"time"

	"github.com/sessiond/sessiond/session"
)

// A read of a session that did not change since the last one answers with
// the same bytes but for view_state.session_management, which counts down
// with the clock. wireCache keeps, per session and view, the encoded
// answer with that member cut out; a read writes the bytes before it, the
// member computed for now, and the bytes after it.

// wireView is which answer an entry holds.
type wireView uint8

const (
	viewSession wireView = iota // session.get, session.get_by_token
	viewClient                  // client.get
)

// wireStamp is what the bytes of a session's answer depend on besides the
// clock: its version, which every change bumps, and what changes without
// a new version (the end user's latest request, held by touches). The
// other members are there so that a change that forgot its version bump
// still misses. merchant and message are what client.get's answer carries
// from outside the session: the merchant's name and the transaction's
// message.
type wireStamp struct {
	version     int
	state       session.State
	step        int
	approval    session.Approval
	txID        string
	errorCode   string
	expires     int64
	completed   int64
	lastRequest int64
	ip          string
	userAgent   string
	merchant    string
	message     string
}

func stampOf(v *session.Session, view wireView, merchant, message string) wireStamp {
	st := wireStamp{
		version: v.Version, state: v.State, step: v.Step, approval: v.Approval,
		txID: v.TransactionID, errorCode: v.ErrorCode,
		expires: v.Expires.UnixNano(), completed: unixNano(v.Completed),
		merchant: merchant, message: message,
	}
	if view == viewSession { // client.get does not show them
		st.lastRequest, st.ip, st.userAgent = unixNano(v.LastRequest), v.IP, v.UserAgent
	}
	return st
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// wireEntry is one cached answer: b with session_management cut out at
// cut. Entries are never changed once made, so a reader may use one after
// letting go of the lock.
type wireEntry struct {
	stamp wireStamp
	b     []byte
	cut   int
}

func (e *wireEntry) size() int { return len(e.b) + len(e.stamp.merchant) + len(e.stamp.message) + 256 } // 256: the map slot, entry and strings

type wireKey struct {
	id   string
	view wireView
}

// The cache holds at most wireCacheSize bytes in all, spread over
// wireShards shards so that readers rarely meet; an answer larger than
// wireEntryMax is never kept.
const (
	wireShards    = 32
	wireCacheSize = 32 << 20
	wireEntryMax  = 16 << 10
)

// wireCache is a bounded map from session to its encoded answer, safe for
// concurrent use. When a shard is full, entries picked at random make
// room for the new one.
type wireCache struct {
	seed   maphash.Seed
	max    int // bytes per shard
	shards [wireShards]wireShard
}

type wireShard struct {
	mu    sync.RWMutex
	m     map[wireKey]*wireEntry
	bytes int
}

// newWireCache returns a cache of at most size bytes; nil (no caching)
// for size < 0.
func newWireCache(size int) *wireCache {
	if size < 0 {
		return nil
	}
	if size == 0 {
		size = wireCacheSize
	}
	c := &wireCache{seed: maphash.MakeSeed(), max: size / wireShards}
	for i := range c.shards {
		c.shards[i].m = map[wireKey]*wireEntry{}
	}
	return c
}

func (c *wireCache) shard(id string) *wireShard {
	return &c.shards[maphash.String(c.seed, id)%wireShards]
}

func (c *wireCache) get(k wireKey, st *wireStamp) *wireEntry {
	sh := c.shard(k.id)
	sh.mu.RLock()
	e := sh.m[k]
	sh.mu.RUnlock()
	if e == nil || e.stamp != *st {
		return nil
	}
	return e
}

func (c *wireCache) put(k wireKey, e *wireEntry) {
	n := e.size()
	if n > wireEntryMax || n > c.max {
		return
	}
	sh := c.shard(k.id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if old := sh.m[k]; old != nil {
		sh.bytes -= old.size()
		delete(sh.m, k)
	}
	for key, old := range sh.m { // map order is random enough to evict by
		if sh.bytes+n <= c.max {
			break
		}
		sh.bytes -= old.size()
		delete(sh.m, key)
	}
	sh.m[k] = e
	sh.bytes += n
}

// len returns the entries held, for tests.
func (c *wireCache) len() (n int) {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.RLock()
		n += len(sh.m)
		sh.mu.RUnlock()
	}
	return n
}

// appendSessionManagement appends view_state.session_management at now,
// byte for byte as session.Session.ViewState encodes it.
func (s *Server) appendSessionManagement(b []byte, v *session.Session, now time.Time) []byte {
	secs := func(d time.Duration) int64 {
		if d < 0 {
			return 0
		}
		return int64(d / time.Second)
	}
	left := v.Expires.Sub(now)
	b = append(b, `{"active":`...)
	b = strconv.AppendBool(b, v.Active(now))
	b = append(b, `,"warning":`...)
	b = strconv.AppendInt(b, secs(left-s.cfg.SessionWarning), 10)
	b = append(b, `,"end":`...)
	b = strconv.AppendInt(b, secs(left), 10)
	return append(b, '}')
}

// render returns the answer of view for v at now: from the cache when v is
// as it was, else encoded by encode (the whole answer, view_state
// included) and remembered.
func (s *Server) render(v *session.Session, now time.Time, view wireView, merchant, message string, encode func() ([]byte, error)) (preEncoded, error) {
	st := stampOf(v, view, merchant, message)
	k := wireKey{id: v.ID, view: view}
	if s.wire != nil {
		if e := s.wire.get(k, &st); e != nil {
			b := make([]byte, 0, len(e.b)+64)
			b = append(b, e.b[:e.cut]...)
			b = s.appendSessionManagement(b, v, now)
			return append(b, e.b[e.cut:]...), nil
		}
	}
	b, err := encode()
	if err != nil {
		return nil, err
	}
	if s.wire != nil {
		if from, to, ok := sessionManagementSpan(b); ok {
			cut := make([]byte, 0, len(b)-(to-from))
			cut = append(append(cut, b[:from]...), b[to:]...)
			s.wire.put(k, &wireEntry{stamp: st, b: cut, cut: from})
		}
	}
	return b, nil
}

// sessionManagementSpan returns where the value of
// view_state.session_management sits in b, an encoded answer; ok false if
// it has none.
func sessionManagementSpan(b []byte) (from, to int, ok bool) {
	vs, ok := memberSpan(b, 0, "view_state")
	if !ok {
		return 0, 0, false
	}
	sm, ok := memberSpan(b, vs, "session_management")
	if !ok {
		return 0, 0, false
	}
	return sm, valueEnd(b, sm), true
}

// memberSpan returns the offset in b of the value of the member name of the
// object that starts at b[at]; b is valid JSON.
func memberSpan(b []byte, at int, name string) (int, bool) {
	off := -1
	obj := b[at:valueEnd(b, at)]
	members(obj, func(n string, v []byte) error {
		if n == name {
			off = at + cap(obj) - cap(v) // v is a slice of obj
			return errNotObject          // found: stop
		}
		return nil
	})
	return off, off >= 0
}

// sessionWire is the session object of v at now, encoded.
func (s *Server) sessionWire(v *session.Session, now time.Time) (preEncoded, error) {
	return s.render(v, now, viewSession, "", "", func() ([]byte, error) {
		return json.Marshal(s.sessionObject(v, now))
	})
}

// clientWire is client.get's answer for v at now, with the merchant's name
// and the transaction's message.
func (s *Server) clientWire(v *session.Session, now time.Time, merchantName, message string) (preEncoded, error) {
	return s.render(v, now, viewClient, merchantName, message, func() ([]byte, error) {
		o := s.clientObject(v, now)
		o.MerchantName, o.Message = merchantName, optString(message)
		return json.Marshal(o)
	})
}
