package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/sessiond/sessiond/session"
)

// The feed across replicas. Every save inserts its change into the
// changes table and notifies the row's seq on feedChannel in the same
// transaction, so a change is announced exactly when it commits, and
// PostgreSQL delivers notifications in commit order. Each DB holds one
// listening connection; when it drops, the DB reconnects, listens again,
// then reads the changes it may have missed from the table (seq order,
// which within one session is version order) and skips those it has
// seen.

const (
	feedChannel = "sessiond_changes"
	// sessionChannel carries what the session cache needs besides the
	// changes: touches ("t", the version and JSON) and sessions deleted
	// ("f" and their ids, or "f" alone for all of them).
	sessionChannel = "sessiond_sessions"
	// merchantChannel carries the id of each merchant changed (its
	// secret, its callback secret, its tokens' generation) or whose token
	// was revoked, so that every replica forgets what it remembers of it.
	merchantChannel = "sessiond_merchants"
	// maxPayload bounds the change data sent in a notification (PostgreSQL
	// refuses payloads of 8000 bytes or more); a larger change is sent as
	// its seq alone and read from the table.
	maxPayload = 7000
	// catchUpMargin is how far before the last change seen a catch-up
	// reads: a transaction that inserted its change that long before it
	// committed is still found. Seen seqs are remembered twice as long.
	catchUpMargin = 30 * time.Second
	// changeRetention is how long the changes table keeps a change.
	changeRetention = time.Hour
)

// feedChange is a session.Change as logged and notified, with the values
// already encoded for the save.
type feedChange struct {
	Session     json.RawMessage           `json:"s,omitempty"`
	Transaction json.RawMessage           `json:"t,omitempty"`
	TxFrom      *session.TransactionState `json:"f,omitempty"`
	Deliveries  []json.RawMessage         `json:"d,omitempty"`
	Moved       bool                      `json:"m,omitempty"`
}

// feedData is the change as logged and notified: feedChange's JSON, put
// together from the values already encoded for the save. json.Marshal of
// a feedChange would reflect on it and scan each encoded value again to
// compact it, 6% of the server's CPU under moves; the values come from
// json.Marshal, compact and escaped already, so the bytes are the same.
func (e *encodedChange) feedData() []byte {
	n := len(e.session) + len(e.tx) + 32
	for _, d := range e.deliveries {
		n += len(d) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, '{')
	member := func(name string) {
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, '"', ':')
	}
	if len(e.session) > 0 {
		member("s")
		b = append(b, e.session...)
	}
	if len(e.tx) > 0 {
		member("t")
		b = append(b, e.tx...)
	}
	if e.c.TxFrom != nil {
		member("f")
		b = strconv.AppendInt(b, int64(*e.c.TxFrom), 10)
	}
	if len(e.deliveries) > 0 {
		member("d")
		b = append(b, '[')
		for i, d := range e.deliveries {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, d...)
		}
		b = append(b, ']')
	}
	if e.c.Moved {
		member("m")
		b = append(b, "true"...)
	}
	return append(b, '}')
}

// decodeFeedChange decodes a logged change, and returns the session's
// encoding too.
func decodeFeedChange(b []byte) (*session.Change, []byte, error) {
	var fc feedChange
	if err := json.Unmarshal(b, &fc); err != nil {
		return nil, nil, fmt.Errorf("postgres: decode change: %w", err)
	}
	c := &session.Change{TxFrom: fc.TxFrom, Moved: fc.Moved}
	if fc.Session != nil {
		c.Session = new(session.Session)
		if err := json.Unmarshal(fc.Session, c.Session); err != nil {
			return nil, nil, fmt.Errorf("postgres: decode change: %w", err)
		}
	}
	if fc.Transaction != nil {
		c.Transaction = new(session.Transaction)
		if err := json.Unmarshal(fc.Transaction, c.Transaction); err != nil {
			return nil, nil, fmt.Errorf("postgres: decode change: %w", err)
		}
	}
	for _, raw := range fc.Deliveries {
		d := new(session.Delivery)
		if err := json.Unmarshal(raw, d); err != nil {
			return nil, nil, fmt.Errorf("postgres: decode change: %w", err)
		}
		c.Deliveries = append(c.Deliveries, d)
	}
	return c, fc.Session, nil
}

// queueFeed adds to b the statement that logs the change, notifies it and
// returns its seq.
func queueFeed(b *pgx.Batch, origin string, data []byte) {
	inline := ""
	if len(data) <= maxPayload {
		inline = string(data)
	}
	b.Queue(`WITH c AS (INSERT INTO changes (origin, data) VALUES ($1, $2) RETURNING seq, at),
		n AS (SELECT pg_notify('`+feedChannel+`', c.seq || ' ' || (extract(epoch FROM c.at) * 1000000)::bigint || ' ' || $1 || ' ' || $3::text) FROM c)
		SELECT c.seq FROM c, n`,
		origin, data, inline)
}

// publishWait bounds how long a save waits for its own change to come
// back on the feed (it is published then, or by the catch-up after the
// feed's connection returns).
const publishWait = 5 * time.Second

// waiter is a save waiting for its change to be published.
type waiter struct {
	seq  int64
	c    *session.Change
	raw  []byte // c.Session encoded
	done chan struct{}
}

// expect registers the change a save is about to commit under its seq, so
// that the feed publishes the saver's own value and tells it when it has.
// It returns nil if the DB has no feed.
func (db *DB) expect(seq int64, e *encodedChange) *waiter {
	if db.feed == nil {
		return nil
	}
	w := &waiter{seq: seq, c: e.c, raw: e.session, done: make(chan struct{})}
	db.feed.mu.Lock()
	db.feed.pending[seq] = w
	db.feed.mu.Unlock()
	return w
}

func (db *DB) unexpect(w *waiter) {
	if w == nil {
		return
	}
	db.feed.mu.Lock()
	delete(db.feed.pending, w.seq)
	db.feed.mu.Unlock()
}

// awaitPublished waits until the feed has published w's change, or
// publishWait passes, or ctx ends.
func (db *DB) awaitPublished(ctx context.Context, w *waiter) {
	if w == nil {
		return
	}
	t := time.NewTimer(publishWait)
	defer t.Stop()
	select {
	case <-w.done:
		return
	case <-ctx.Done():
	case <-t.C:
	case <-db.feed.done:
	}
	db.unexpect(w)
}

// listener is the DB's side of the feed: one connection LISTENing, what
// it needs to catch up after a reconnect, and the syncs of cached reads.
type listener struct {
	db       *DB
	cfg      *pgx.ConnConfig
	publish  func(...*session.Change)
	merchant func(id string)
	onError  func(error)

	mu      sync.Mutex
	pending map[int64]*waiter // saves of this DB not yet published, by seq

	seen    map[int64]time.Time // seq → at of the changes handed on recently
	lastAt  time.Time           // at of the latest change handed on
	handled int
	inbox   []*pgconn.Notification // received, not yet handled
	pid     atomic.Uint32          // backend of the listening connection, for tests

	// syncs: while current, the listening connection has caught up and
	// reads may sync; next is the barrier the next syncs wait for, sent
	// when the connection is free; wake says one is wanted.
	bmu     sync.Mutex
	current bool
	next    *barrier
	wake    chan struct{}
	// barrierSQL is the query of a barrier; tests replace it to inject a
	// silent connection.
	barrierSQL atomic.Pointer[string]
	// beforeRelisten, if set, runs before each reconnect's LISTEN (tests).
	beforeRelisten atomic.Pointer[func()]

	ready chan struct{} // closed once the first LISTEN is in place
	done  chan struct{}
}

// barrier is one query on the listening connection that syncs wait for;
// ok once it was answered, every notification before it handled.
type barrier struct {
	done chan struct{}
	ok   bool
}

const (
	// barrierTimeout bounds a barrier's query: a listening connection
	// that does not answer is dropped and connected again.
	barrierTimeout = 2 * time.Second
	// probeInterval is how long the listening connection may be idle
	// before a barrier checks that it still answers.
	probeInterval = 10 * time.Second
)

// sync waits until every notification of a transaction committed before
// it was called has been handled. It returns false, at once, if the
// listening connection is not current (down, or catching up), or if it
// fails meanwhile or ctx ends: the caller reads the database.
func (l *listener) sync(ctx context.Context) bool {
	l.bmu.Lock()
	if !l.current {
		l.bmu.Unlock()
		return false
	}
	b := l.next
	if b == nil {
		b = &barrier{done: make(chan struct{})}
		l.next = b
	}
	l.bmu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	select {
	case <-b.done:
		return b.ok
	case <-ctx.Done():
		return false
	}
}

// live reports whether the listening connection is current: the cache
// misses only what is still on its way.
func (l *listener) live() bool {
	l.bmu.Lock()
	defer l.bmu.Unlock()
	return l.current
}

// setCurrent says whether reads may sync; when they may not, the syncs
// waiting fail.
func (l *listener) setCurrent(current bool) {
	l.bmu.Lock()
	defer l.bmu.Unlock()
	l.current = current
	if !current && l.next != nil {
		close(l.next.done)
		l.next = nil
	}
}

func (l *listener) run(ctx context.Context) {
	defer close(l.done)
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		first := true
		select {
		case <-l.ready:
			first = false
		default:
		}
		err := l.session(ctx, first)
		l.setCurrent(false)
		if ctx.Err() != nil {
			return
		}
		l.onError(fmt.Errorf("postgres: change feed: %w (reconnecting)", err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// session connects, listens and hands on notifications until the
// connection fails, a barrier is not answered in time, or ctx ends.
func (l *listener) session(ctx context.Context, first bool) error {
	cfg := l.cfg.Copy()
	l.inbox = l.inbox[:0]
	// Notifications arrive during any query on the connection, in the
	// goroutine reading it, which is this one.
	cfg.OnNotification = func(_ *pgconn.PgConn, n *pgconn.Notification) { l.inbox = append(l.inbox, n) }
	// A wait for notifications is cut short for each barrier: by a
	// deadline on the socket, which leaves the connection usable, rather
	// than by a cancel request to the server.
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: c.Conn()}
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if f := l.beforeRelisten.Load(); !first && f != nil {
		(*f)()
	}
	if _, err := conn.Exec(ctx, "LISTEN "+feedChannel+"; LISTEN "+merchantChannel+"; LISTEN "+sessionChannel); err != nil {
		return err
	}
	l.pid.Store(conn.PgConn().PID())
	if !first {
		// Merchant changes missed while not listening are not logged:
		// forget every merchant.
		l.merchant("")
	}
	if first {
		if err := conn.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&l.lastAt); err != nil {
			return err
		}
		close(l.ready)
	} else {
		if err := l.catchUp(ctx, conn); err != nil {
			return err
		}
		// Touches and deletions missed are not logged: forget every
		// session, and what reads that began before read.
		l.db.cache.clear()
	}
	l.setCurrent(true)
	for {
		if err := l.handleInbox(ctx); err != nil {
			return err
		}
		l.bmu.Lock()
		b := l.next
		l.next = nil
		l.bmu.Unlock()
		if b != nil {
			if err := l.barrier(ctx, conn); err != nil {
				close(b.done)
				return err
			}
			b.ok = true
			close(b.done)
			continue
		}
		probe, err := l.wait(ctx, conn)
		if err != nil {
			return err
		}
		if probe {
			if err := l.barrier(ctx, conn); err != nil {
				return err
			}
		}
	}
}

// wait waits for notifications until one arrives, a sync wants a barrier
// (wake), or the connection has been idle for probeInterval (then probe).
func (l *listener) wait(ctx context.Context, conn *pgx.Conn) (probe bool, err error) {
	wctx, cancel := context.WithTimeout(ctx, probeInterval)
	defer cancel()
	woke := make(chan struct{})
	go func() {
		defer close(woke)
		select {
		case <-l.wake:
			cancel()
		case <-wctx.Done():
		}
	}()
	err = conn.PgConn().WaitForNotification(wctx)
	cut := wctx.Err() // before the cancel below
	cancel()
	<-woke
	switch {
	case err == nil:
		return false, nil
	case ctx.Err() != nil:
		return false, ctx.Err()
	case errors.Is(cut, context.DeadlineExceeded):
		return true, nil
	case cut != nil:
		return false, nil // woken
	}
	return false, err
}

// barrier sends a query on the listening connection and handles the
// notifications that came before its answer.
func (l *listener) barrier(ctx context.Context, conn *pgx.Conn) error {
	sql := ""
	if p := l.barrierSQL.Load(); p != nil {
		sql = *p
	}
	bctx, cancel := context.WithTimeout(ctx, barrierTimeout)
	defer cancel()
	if err := conn.PgConn().Exec(bctx, sql).Close(); err != nil {
		return fmt.Errorf("barrier: %w", err)
	}
	return l.handleInbox(ctx)
}

// handleInbox handles the notifications received, in order. One that
// cannot be handled means a change is unknown (which session it touched,
// or the change itself): the error ends the listening session, and the
// next one catches up from the changes table and forgets every cached
// session, as after any gap.
func (l *listener) handleInbox(ctx context.Context) error {
	for len(l.inbox) > 0 {
		n := l.inbox[0]
		l.inbox[0] = nil
		l.inbox = l.inbox[1:]
		var err error
		switch n.Channel {
		case merchantChannel:
			l.merchant(n.Payload)
		case sessionChannel:
			err = l.sessionNote(n.Payload)
		default:
			err = l.handle(ctx, n.Payload)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// touchNote is a touch as notified: with the session's version after
// the note's "t" and a space. Without At, the touch was too large to
// send: the session is to be read from the database again.
type touchNote struct {
	ID        string     `json:"id"`
	At        *time.Time `json:"at,omitempty"`
	IP        string     `json:"ip,omitempty"`
	UserAgent string     `json:"ua,omitempty"`
}

// sessionNote applies a notification of sessionChannel to the cache.
func (l *listener) sessionNote(payload string) error {
	kind, rest, _ := strings.Cut(payload, " ")
	switch kind {
	case "t":
		v, note, _ := strings.Cut(rest, " ")
		version, err := strconv.Atoi(v)
		var t touchNote
		if err == nil {
			err = json.Unmarshal([]byte(note), &t)
		}
		if err != nil {
			return fmt.Errorf("postgres: change feed: malformed touch")
		}
		if t.At == nil {
			l.db.cache.forget(t.ID)
			return nil
		}
		l.db.cache.touch(t.ID, version, *t.At, t.IP, t.UserAgent)
	case "f":
		if rest == "" {
			l.db.cache.clear()
		} else {
			l.db.cache.forget(strings.Fields(rest)...)
		}
	default:
		return fmt.Errorf("postgres: change feed: unknown session note %q", kind)
	}
	return nil
}

// catchUp hands on the changes committed while the feed was not
// listening, in seq order, skipping those handed on already.
func (l *listener) catchUp(ctx context.Context, conn *pgx.Conn) error {
	rows, err := conn.Query(ctx, "SELECT seq, at, origin, data FROM changes WHERE at >= $1 ORDER BY seq", l.lastAt.Add(-catchUpMargin))
	if err != nil {
		return err
	}
	type row struct {
		seq    int64
		at     time.Time
		origin string
		data   []byte
	}
	var missed []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.seq, &r.at, &r.origin, &r.data); err != nil {
			return err
		}
		if _, ok := l.seen[r.seq]; !ok {
			missed = append(missed, r)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, r := range missed {
		l.deliver(r.seq, r.at, r.origin, r.data)
	}
	return nil
}

// handle hands on the change of one notification: "seq at origin data",
// data empty if the change was too large to send, then read from the
// table.
func (l *listener) handle(ctx context.Context, payload string) error {
	parts := strings.SplitN(payload, " ", 4)
	if len(parts) != 4 {
		return fmt.Errorf("postgres: change feed: malformed notification")
	}
	seq, err1 := strconv.ParseInt(parts[0], 10, 64)
	us, err2 := strconv.ParseInt(parts[1], 10, 64)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("postgres: change feed: malformed notification")
	}
	data := []byte(parts[3])
	if len(data) == 0 {
		if err := l.db.pool.QueryRow(ctx, "SELECT data FROM changes WHERE seq = $1", seq).Scan(&data); err != nil {
			return fmt.Errorf("postgres: change feed: read change %d: %w", seq, err)
		}
	}
	l.deliver(seq, time.UnixMicro(us), parts[2], data)
	return nil
}

// deliver brings the cache up to the change and hands it on.
func (l *listener) deliver(seq int64, at time.Time, origin string, data []byte) {
	if _, ok := l.seen[seq]; ok {
		return
	}
	l.mu.Lock()
	w := l.pending[seq]
	delete(l.pending, seq)
	l.mu.Unlock()
	var c *session.Change
	var raw []byte
	if w != nil {
		c, raw = w.c, w.raw
		defer close(w.done)
	} else {
		var err error
		if c, raw, err = decodeFeedChange(data); err != nil {
			// Which session changed is unknown: forget them all.
			l.db.cache.clear()
			l.onError(fmt.Errorf("%w (change %d skipped)", err, seq))
			return
		}
	}
	l.seen[seq] = at
	if at.After(l.lastAt) {
		l.lastAt = at
	}
	if l.handled++; l.handled%4096 == 0 {
		for s, t := range l.seen {
			if t.Before(l.lastAt.Add(-2 * catchUpMargin)) {
				delete(l.seen, s)
			}
		}
	}
	if c.Session != nil {
		l.db.cache.apply(raw, c.Session)
	}
	l.publish(c)
}
