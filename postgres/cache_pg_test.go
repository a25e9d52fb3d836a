package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/postgres/pgtest"
	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/store/storetest"
)

// waitLive waits until db's feed is current: its reads may sync.
func waitLive(t *testing.T, db *DB) {
	t.Helper()
	waitFor(t, "the feed to be current", func() bool { return isCurrent(db) })
}

func isCurrent(db *DB) bool {
	db.feed.bmu.Lock()
	defer db.feed.bmu.Unlock()
	return db.feed.current
}

// liveWithSession opens a replica on a new database, waits for its feed
// to be live and saves session s1 at version 1 through it, so s1 is
// cached.
func liveWithSession(t *testing.T) *DB {
	t.Helper()
	a := openReplica(t, pgtest.URL(t), &feedLog{})
	waitLive(t, a)
	if err := a.Save(context.Background(), &session.Change{Session: newSession("s1", 1)}); err != nil {
		t.Fatal(err)
	}
	return a
}

// cached reports whether db's cache holds the session at the version.
func cached(db *DB, id string, version int) bool {
	s, _, ok := db.cache.lookup(id)
	return ok && s.Version == version
}

// TestCacheAcrossReplicas: what one DB saves, touches or deletes, the
// other's next read gives, at once (its read syncs with the feed), from
// its cache.
func TestCacheAcrossReplicas(t *testing.T) {
	url := pgtest.URL(t)
	a, b := openReplica(t, url, &feedLog{}), openReplica(t, url, &feedLog{})
	waitLive(t, a)
	waitLive(t, b)
	ctx := context.Background()
	read := func(db *DB, id string) *session.Session {
		t.Helper()
		s, err := db.Session(ctx, id)
		if err != nil {
			t.Fatalf("read %s: %v", id, err)
		}
		return s
	}

	// Created on A: B reads it, and caches it.
	s := newSession("s1", 1)
	if err := a.Save(ctx, &session.Change{Session: s}); err != nil {
		t.Fatal(err)
	}
	if got := read(b, "s1"); got.Version != 1 {
		t.Fatalf("B read version %d, want 1", got.Version)
	}
	waitFor(t, "B to cache version 1", func() bool { return cached(b, "s1", 1) })

	// Moved on B, again and again: A's next read has each move.
	for v := 2; v <= 20; v++ {
		sv := newSession("s1", v)
		sv.State = session.StateAuthenticationStarted
		if err := b.Save(ctx, &session.Change{Session: sv, Moved: true}); err != nil {
			t.Fatal(err)
		}
		if got := read(a, "s1"); got.Version != v {
			t.Fatalf("A read version %d right after B saved %d", got.Version, v)
		}
		if got := read(b, "s1"); got.Version != v {
			t.Fatalf("B read version %d right after it saved %d", got.Version, v)
		}
	}
	if !cached(a, "s1", 20) {
		t.Error("A's read of version 20 is not cached")
	}

	// Touched on B: B's reads have the touch at once, A's once B has
	// written it; touched on A: B's has, once written.
	at := t0.Add(time.Minute)
	if err := b.Touch(ctx, "s1", at, session.Client{IP: "198.51.100.1", UserAgent: "phone"}); err != nil {
		t.Fatal(err)
	}
	if got := read(b, "s1"); got.IP != "198.51.100.1" {
		t.Errorf("B read its own touch as ip %q", got.IP)
	}
	flush(t, b)
	if got := read(a, "s1"); got.IP != "198.51.100.1" || got.UserAgent != "phone" || !got.LastRequest.Equal(at) || got.Version != 20 {
		t.Errorf("A read %+v right after B wrote its touch, want the touch at version 20", got)
	}
	if err := a.Touch(ctx, "s1", at.Add(time.Minute), session.Client{IP: "203.0.113.7"}); err != nil {
		t.Fatal(err)
	}
	flush(t, a)
	if got := read(b, "s1"); got.IP != "203.0.113.7" {
		t.Errorf("B read ip %q right after A wrote its touch", got.IP)
	}
	if !cached(b, "s1", 20) || !cached(a, "s1", 20) {
		t.Error("the touched session is not cached")
	}
	// The cache gives what the database holds.
	fromDB := func(d *DB) *session.Session {
		var raw []byte
		if err := d.pool.QueryRow(ctx, "SELECT data FROM sessions WHERE id = 's1'").Scan(&raw); err != nil {
			t.Fatal(err)
		}
		s, err := decodeSession(raw)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for name, d := range map[string]*DB{"A": a, "B": b} {
		got, want := read(d, "s1"), fromDB(d)
		if got.Version != want.Version || !got.LastRequest.Equal(want.LastRequest) || got.IP != want.IP || got.UserAgent != want.UserAgent || got.State != want.State {
			t.Errorf("%s's cache has %+v, the database %+v", name, got, want)
		}
	}

	// A touch too large to notify makes the others read the database.
	big := strings.Repeat("x", 2*maxTouchNote)
	if err := b.Touch(ctx, "s1", at.Add(2*time.Minute), session.Client{IP: "192.0.2.9", UserAgent: big}); err != nil {
		t.Fatal(err)
	}
	flush(t, b)
	if got := read(a, "s1"); got.IP != "192.0.2.9" {
		t.Errorf("A read ip %q right after a large touch on B", got.IP)
	}

	// Deleted on B (a sandbox reset): A's read says not found.
	if err := b.ResetMerchant(ctx, "m1"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Session(ctx, "s1"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("A's read right after B's reset: %v, want not found", err)
	}
}

// TestCacheStaleMoveConflicts: a move decided on a cached read that is
// behind the database gets a version conflict from the database, and the
// next read is the database's.
func TestCacheStaleMoveConflicts(t *testing.T) {
	a := liveWithSession(t)
	ctx := context.Background()
	// Version 2 is stored without A's feed hearing of it (as if its
	// notification were still on its way): A's cache is behind.
	if _, err := a.pool.Exec(ctx, `UPDATE sessions SET version = 2, data = (data::jsonb || '{"version": 2}')::json WHERE id = 's1'`); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Session(ctx, "s1"); err != nil || got.Version != 1 {
		t.Fatalf("A's cached read: %+v, %v, want version 1", got, err)
	}
	err := a.Save(ctx, &session.Change{Session: newSession("s1", 2)})
	if !errors.Is(err, session.ErrVersionConflict) {
		t.Fatalf("a move from the cached version 1: %v, want a version conflict", err)
	}
	if got, err := a.Session(ctx, "s1"); err != nil || got.Version != 2 {
		t.Errorf("A's read after the conflict: %+v, %v, want version 2", got, err)
	}
}

// TestCacheEarlyRead: an early read answers a cached session while the
// feed is current, even one the database is ahead of (a notification on
// its way), and reads the database while the feed is not current.
func TestCacheEarlyRead(t *testing.T) {
	a := liveWithSession(t)
	ctx := context.Background()
	if _, err := a.pool.Exec(ctx, `UPDATE sessions SET version = 2, data = (data::jsonb || '{"version": 2}')::json WHERE id = 's1'`); err != nil {
		t.Fatal(err)
	}
	if got, early, err := a.SessionEarly(ctx, "s1"); err != nil || got.Version != 1 || !early {
		t.Errorf("early read with the feed current: %+v, %v, %v; want the cached version 1, early", got, early, err)
	}
	a.feed.setCurrent(false)
	if got, early, err := a.SessionEarly(ctx, "s1"); err != nil || got.Version != 2 || early {
		t.Errorf("early read with the feed not current: %+v, %v, %v; want the database's version 2, not early", got, early, err)
	}
}

// TestCacheAnswersWithoutTheDatabase: while the feed is live, a read of a
// cached session does not go to the database: a write that bypasses the
// feed (there is none in sessiond) is not seen until the session is
// forgotten.
func TestCacheAnswersWithoutTheDatabase(t *testing.T) {
	a := liveWithSession(t)
	ctx := context.Background()
	if _, err := a.pool.Exec(ctx, `UPDATE sessions SET data = (data::jsonb || '{"ip": "192.0.2.1"}')::json WHERE id = 's1'`); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Session(ctx, "s1"); err != nil || got.IP != "" {
		t.Errorf("cached read: %+v, %v, want the session as saved", got, err)
	}
	a.cache.forget("s1")
	if got, err := a.Session(ctx, "s1"); err != nil || got.IP != "192.0.2.1" {
		t.Errorf("read after forget: %+v, %v, want the database's", got, err)
	}
}

// flush writes the touches d holds.
func flush(t *testing.T, d *DB) {
	t.Helper()
	if err := d.FlushTouches(); err != nil {
		t.Fatal(err)
	}
}

// TestCacheAfterReconnect kills A's listening connection and, while A is
// not listening, has B move and touch a session A has cached: reads on A
// go to the database meanwhile, and after the reconnect A's cache gives
// both the move (caught up from the log) and the touch (not logged).
func TestCacheAfterReconnect(t *testing.T) {
	url := pgtest.URL(t)
	var fa feedLog
	a, b := openReplica(t, url, &fa), openReplica(t, url, &feedLog{})
	waitLive(t, a)
	ctx := context.Background()
	if err := a.Save(ctx, &session.Change{Session: newSession("s1", 1)}); err != nil {
		t.Fatal(err)
	}
	if err := a.Save(ctx, &session.Change{Session: newSession("s2", 1)}); err != nil {
		t.Fatal(err)
	}
	if !cached(a, "s1", 1) || !cached(a, "s2", 1) {
		t.Fatal("A's saves are not cached")
	}
	hold := make(chan struct{})
	held := make(chan struct{}, 10)
	relisten := func() {
		held <- struct{}{}
		<-hold
	}
	a.feed.beforeRelisten.Store(&relisten)
	kill := func() {
		t.Helper()
		var ok bool
		if err := b.pool.QueryRow(ctx, "SELECT pg_terminate_backend($1)", a.feed.pid.Load()).Scan(&ok); err != nil || !ok {
			t.Fatalf("terminate A's listener: %v, %v", ok, err)
		}
		<-held // A is reconnecting, not listening
	}
	kill()
	if a.feed.sync(ctx) {
		t.Error("a read on A synced while A is not listening")
	}
	at := t0.Add(time.Minute)
	if err := b.Save(ctx, &session.Change{Session: newSession("s1", 2), Moved: true}); err != nil {
		t.Fatal(err)
	}
	if err := b.Touch(ctx, "s1", at, session.Client{IP: "198.51.100.1", UserAgent: "phone"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Touch(ctx, "s2", at, session.Client{IP: "198.51.100.2"}); err != nil {
		t.Fatal(err)
	}
	flush(t, b)
	// Not listening, A reads the database: s2 shows B's touch now.
	if got, err := a.Session(ctx, "s2"); err != nil || got.IP != "198.51.100.2" {
		t.Errorf("A's read while not listening: %+v, %v, want B's touch", got, err)
	}
	close(hold)
	waitLive(t, a)
	got, err := a.Session(ctx, "s1")
	if err != nil || got.Version != 2 || got.IP != "198.51.100.1" || !got.LastRequest.Equal(at) {
		t.Errorf("A's read after the reconnect: %+v, %v, want version 2 with B's touch", got, err)
	}
	if !cached(a, "s1", 2) {
		t.Error("A's read after the reconnect is not cached")
	}
	if vs := fa.versions("s1"); len(vs) != 2 || vs[1] != 2 {
		t.Errorf("A's feed published versions %v of s1, want 1 and 2", vs)
	}
}

// TestCacheSilentFeed: a listening connection that does not answer a
// barrier in time (dead without having failed) is dropped and connected
// again, and the read that waited goes to the database.
func TestCacheSilentFeed(t *testing.T) {
	a := liveWithSession(t)
	ctx := context.Background()
	// Written past the feed, so that only a read of the database sees it.
	if _, err := a.pool.Exec(ctx, `UPDATE sessions SET data = (data::jsonb || '{"ip": "192.0.2.1"}')::json WHERE id = 's1'`); err != nil {
		t.Fatal(err)
	}
	pid := a.feed.pid.Load()
	silent := "SELECT pg_sleep(5)"
	a.feed.barrierSQL.Store(&silent)
	got, err := a.Session(ctx, "s1")
	a.feed.barrierSQL.Store(nil)
	if err != nil || got.IP != "192.0.2.1" {
		t.Errorf("read while the feed is silent: %+v, %v, want the database's", got, err)
	}
	waitFor(t, "the feed to connect again", func() bool { return a.feed.pid.Load() != pid && isCurrent(a) })
}

// TestCacheAfterRetain: a session retention deletes on B is gone from
// A's cache too: A's next read says not found.
func TestCacheAfterRetain(t *testing.T) {
	url := pgtest.URL(t)
	a, b := openReplica(t, url, &feedLog{}), openReplica(t, url, &feedLog{})
	waitLive(t, a)
	ctx := context.Background()
	s := storetest.NewSession(storetest.IDAt(t0))
	if err := a.Save(ctx, &session.Change{Session: s}); err != nil {
		t.Fatal(err)
	}
	done := *s
	done.Version, done.State = 2, session.StateAborted
	if err := a.Save(ctx, &session.Change{Session: &done, Moved: true}); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Session(ctx, s.ID); err != nil || !cached(a, s.ID, 2) {
		t.Fatalf("A's read before retention: %+v, %v, want version 2 cached", got, err)
	}
	if n, _, err := b.Retain(ctx, t0.Add(24*time.Hour), "", 500); err != nil || n != 1 {
		t.Fatalf("Retain = %d, %v; want the session deleted", n, err)
	}
	if _, err := a.Session(ctx, s.ID); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("A's read right after B's retention: %v, want not found", err)
	}
}

// TestCacheAfterUndeliverableNotification: a feed notification that
// cannot be handed on (here malformed; in practice a large change whose
// read from the changes table fails) means some change is unknown, so
// the replica listens again, catches up and forgets what it cached, and
// the next read is the database's.
func TestCacheAfterUndeliverableNotification(t *testing.T) {
	a := liveWithSession(t)
	ctx := context.Background()
	// Written past the feed: only a read of the database sees it.
	if _, err := a.pool.Exec(ctx, `UPDATE sessions SET data = (data::jsonb || '{"ip": "192.0.2.1"}')::json WHERE id = 's1'`); err != nil {
		t.Fatal(err)
	}
	if !cached(a, "s1", 1) {
		t.Fatal("s1 is not cached")
	}
	if _, err := a.pool.Exec(ctx, `SELECT pg_notify($1, 'not a change')`, feedChannel); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the cache to forget s1", func() bool { return !cached(a, "s1", 1) })
	waitLive(t, a)
	if got, err := a.Session(ctx, "s1"); err != nil || got.IP != "192.0.2.1" {
		t.Errorf("read after the undeliverable notification: %+v, %v, want the database's", got, err)
	}
}
