package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
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

func (e *encodedChange) feedData() ([]byte, error) {
	fc := feedChange{Session: e.session, Transaction: e.tx, TxFrom: e.c.TxFrom, Moved: e.c.Moved}
	for _, d := range e.deliveries {
		fc.Deliveries = append(fc.Deliveries, d)
	}
	b, err := json.Marshal(fc)
	if err != nil {
		return nil, fmt.Errorf("postgres: encode change: %w", err)
	}
	return b, nil
}

func decodeFeedChange(b []byte) (*session.Change, error) {
	var fc feedChange
	if err := json.Unmarshal(b, &fc); err != nil {
		return nil, fmt.Errorf("postgres: decode change: %w", err)
	}
	c := &session.Change{TxFrom: fc.TxFrom, Moved: fc.Moved}
	if fc.Session != nil {
		c.Session = new(session.Session)
		if err := json.Unmarshal(fc.Session, c.Session); err != nil {
			return nil, fmt.Errorf("postgres: decode change: %w", err)
		}
	}
	if fc.Transaction != nil {
		c.Transaction = new(session.Transaction)
		if err := json.Unmarshal(fc.Transaction, c.Transaction); err != nil {
			return nil, fmt.Errorf("postgres: decode change: %w", err)
		}
	}
	for _, raw := range fc.Deliveries {
		d := new(session.Delivery)
		if err := json.Unmarshal(raw, d); err != nil {
			return nil, fmt.Errorf("postgres: decode change: %w", err)
		}
		c.Deliveries = append(c.Deliveries, d)
	}
	return c, nil
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
	done chan struct{}
}

// expect registers the change a save is about to commit under its seq, so
// that the feed publishes the saver's own value and tells it when it has.
// It returns nil if the DB has no feed.
func (db *DB) expect(seq int64, c *session.Change) *waiter {
	if db.feed == nil {
		return nil
	}
	w := &waiter{seq: seq, c: c, done: make(chan struct{})}
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

// listener is the DB's side of the feed: one connection LISTENing, and
// what it needs to catch up after a reconnect.
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
	pid     atomic.Uint32 // backend of the listening connection, for tests
	ready   chan struct{} // closed once the first LISTEN is in place
	done    chan struct{}
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
// connection fails or ctx ends.
func (l *listener) session(ctx context.Context, first bool) error {
	conn, err := pgx.ConnectConfig(ctx, l.cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+feedChannel+"; LISTEN "+merchantChannel); err != nil {
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
	} else if err := l.catchUp(ctx, conn); err != nil {
		return err
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if n.Channel == merchantChannel {
			l.merchant(n.Payload)
			continue
		}
		if err := l.handle(ctx, n.Payload); err != nil {
			l.onError(err)
		}
	}
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

func (l *listener) deliver(seq int64, at time.Time, origin string, data []byte) {
	if _, ok := l.seen[seq]; ok {
		return
	}
	l.mu.Lock()
	w := l.pending[seq]
	delete(l.pending, seq)
	l.mu.Unlock()
	var c *session.Change
	if w != nil {
		c = w.c
		defer close(w.done)
	} else {
		var err error
		if c, err = decodeFeedChange(data); err != nil {
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
	l.publish(c)
}
