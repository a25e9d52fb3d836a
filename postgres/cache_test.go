package postgres

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/session"
)

func encoded(t *testing.T, s *session.Session) []byte {
	t.Helper()
	raw, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// cachedVersion returns the version lookup finds, 0 if none.
func cachedVersion(c *sessionCache, id string) int {
	s, _, ok := c.lookup(id)
	if !ok {
		return 0
	}
	return s.Version
}

// TestCacheKeepsLaterStates: an entry is replaced only by a later state
// (a higher version, or a later request at the same version), whatever
// order the states arrive in.
func TestCacheKeepsLaterStates(t *testing.T) {
	c := newSessionCache()
	v1, v2, v3 := newSession("s1", 1), newSession("s1", 2), newSession("s1", 3)
	c.apply(encoded(t, v2), v2)
	c.apply(encoded(t, v1), v1)
	if got := cachedVersion(c, "s1"); got != 2 {
		t.Fatalf("after v2 then v1: cached version %d, want 2", got)
	}
	c.fill(encoded(t, v3), v3, c.ticket("s1"))
	c.apply(encoded(t, v2), v2)
	if got := cachedVersion(c, "s1"); got != 3 {
		t.Fatalf("after v3 then v2: cached version %d, want 3", got)
	}
	at := t0.Add(time.Minute)
	c.touch("s1", 3, at, "198.51.100.1", "phone")
	c.touch("s1", 3, t0, "203.0.113.9", "old")
	if s, _, _ := c.lookup("s1"); s.Version != 3 || !s.LastRequest.Equal(at) || s.IP != "198.51.100.1" || s.UserAgent != "phone" {
		t.Fatalf("after two touches: %+v, want the later touch at version 3", s)
	}
	// The same version without the touch is not later.
	c.apply(encoded(t, v3), v3)
	if s, _, _ := c.lookup("s1"); s.IP != "198.51.100.1" {
		t.Errorf("v3 again undid the touch: ip %q", s.IP)
	}
	// A touch of an earlier version was overwritten by the save cached.
	c.touch("s1", 2, at.Add(time.Minute), "192.0.2.1", "")
	if s, _, _ := c.lookup("s1"); s.IP != "198.51.100.1" {
		t.Errorf("a touch of version 2 changed version 3: ip %q", s.IP)
	}
	// A touch of a later version than cached: the entry is behind.
	c.touch("s1", 4, at.Add(time.Minute), "192.0.2.1", "")
	if got := cachedVersion(c, "s1"); got != 0 {
		t.Errorf("after a touch of version 4: cached version %d, want none", got)
	}
}

// TestCacheFillAfterRemoval: a read or save that took its ticket before
// an entry of its shard was removed (evicted, forgotten, cleared, or
// touched while not cached) does not keep what it got, which may be older
// than what the cache has been told since.
func TestCacheFillAfterRemoval(t *testing.T) {
	for name, remove := range map[string]func(c *sessionCache){
		"forget":            func(c *sessionCache) { c.forget("s1") },
		"clear":             func(c *sessionCache) { c.clear() },
		"touch, not cached": func(c *sessionCache) { c.touch("s1", 1, t0, "198.51.100.1", "") },
	} {
		t.Run(name, func(t *testing.T) {
			c := newSessionCache()
			v1 := newSession("s1", 1)
			if name != "touch, not cached" {
				c.apply(encoded(t, v1), v1)
			}
			gen := c.ticket("s1")
			remove(c)
			c.fill(encoded(t, v1), v1, gen)
			if got := cachedVersion(c, "s1"); got != 0 {
				t.Errorf("a fill with a ticket from before was kept (version %d)", got)
			}
			c.fill(encoded(t, v1), v1, c.ticket("s1"))
			if got := cachedVersion(c, "s1"); got != 1 {
				t.Errorf("a fill with a fresh ticket: cached version %d, want 1", got)
			}
		})
	}
}

// TestCacheDecodeComparesBytes: without the feed, an entry saves the
// decode only for the very bytes it was decoded from.
func TestCacheDecodeComparesBytes(t *testing.T) {
	c := newSessionCache()
	v1 := newSession("s1", 1)
	raw := encoded(t, v1)
	gen := c.ticket("s1")
	got, err := c.decode("s1", raw, &gen)
	if err != nil || got.Version != 1 {
		t.Fatalf("decode: %+v, %v", got, err)
	}
	got.State = session.StateAborted // a caller's change stays its own
	again, err := c.decode("s1", raw, nil)
	if err != nil || again.State != v1.State {
		t.Errorf("decode again: %+v, %v, want the session as stored", again, err)
	}
	v2 := newSession("s1", 2)
	if got, err := c.decode("s1", encoded(t, v2), nil); err != nil || got.Version != 2 {
		t.Errorf("decode of other bytes: %+v, %v, want version 2", got, err)
	}
}

// TestCacheBounded: the cache holds at most cacheSize sessions, and a
// session too large to keep drops what was kept of it.
func TestCacheBounded(t *testing.T) {
	c := newSessionCache()
	for i := range 2 * cacheSize {
		c.apply(nil, newSession(fmt.Sprintf("s%d", i), 1))
	}
	if n := c.len(); n > cacheSize || n < cacheSize/2 {
		t.Errorf("%d sessions cached after %d, want at most %d and most of them", n, 2*cacheSize, cacheSize)
	}
	small, big := newSession("s-big", 1), newSession("s-big", 2)
	c.apply(encoded(t, small), small)
	big.Params.BrandName = string(make([]byte, cacheValue))
	c.apply(encoded(t, big), big)
	if got := cachedVersion(c, "s-big"); got != 0 {
		t.Errorf("after a version too large to keep: cached version %d, want none", got)
	}
}

// TestCacheConcurrent runs lookups, fills, applies, touches and clears
// at once, for the race detector; then, states applied in any order, the
// latest of each session is what is cached.
func TestCacheConcurrent(t *testing.T) {
	c := newSessionCache()
	const n = 500
	var wg sync.WaitGroup
	for w := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for v := 1; v <= n; v++ {
				id := fmt.Sprintf("s%d", v%7)
				s := newSession(id, v)
				switch w {
				case 0:
					c.apply(nil, s)
				case 1:
					c.fill(nil, s, c.ticket(id))
				case 2:
					c.touch(id, v, t0.Add(time.Duration(v)), "192.0.2.1", "")
				case 3:
					if v%50 == 0 {
						c.clear()
					}
				case 4:
					if got, _, ok := c.lookup(id); ok {
						got.State = session.StateAborted // a copy of its own
					}
				}
			}
		}()
	}
	wg.Wait()
	for v := n; v >= 1; v-- {
		c.apply(nil, newSession(fmt.Sprintf("s%d", v%7), v))
	}
	for k := range 7 {
		id := fmt.Sprintf("s%d", k)
		s, _, ok := c.lookup(id)
		if !ok || s.State == session.StateAborted || s.Version < n-6 {
			t.Errorf("%s cached: %+v, %v, want its latest version, unchanged", id, s, ok)
		}
	}
}
