// Package store keeps sessiond's data in one bbolt file: it implements
// session.Store, and passes the shared suite in store/storetest. It is the
// only package that imports bbolt.
//
// Every write goes through one committer goroutine that coalesces the
// writes waiting at that moment into a single bbolt transaction and a single
// fsync (group commit), publishes the changes committed to the feed, and
// answers each writer after that commit. A lone writer is committed at
// once; it never waits on a timer.
package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessiond/sessiond/session"
	bolt "go.etcd.io/bbolt"
)

var _ session.Store = (*DB)(nil)

var (
	bucketMerchants    = []byte("merchants")     // id → Merchant
	bucketMerchantKeys = []byte("merchant_keys") // public key → id
	bucketTokens       = []byte("tokens")        // sha256(token) → Token
	bucketTokenExpiry  = []byte("token_expiry")  // expires (8 BE) + hash → nil
	bucketSessions     = []byte("sessions")      // id → version (4 BE) + Session
	bucketRefs         = []byte("refs")          // merchant id + len(ref) (2 BE) + ref + session id → nil
	bucketExpiry       = []byte("expiry")        // expires (8 BE) + session id → nil, non-final sessions only
	bucketTransactions = []byte("transactions")  // id → Transaction
	bucketDeliveries   = []byte("deliveries")    // webhook id → Delivery
	bucketHostDue      = []byte("host_due")      // len(host) (2 BE) + host + next attempt (8 BE) + webhook id → nil, pending only
	bucketPending      = []byte("pending")       // created (8 BE) + webhook id → nil, pending deliveries only
	bucketSessionDeliv = []byte("session_deliveries")
	bucketTimers       = []byte("timers")     // due (8 BE) + key → nil
	bucketTimerKeys    = []byte("timer_keys") // key → due (8 BE)

	bucketProbe = []byte("probe") // written by Probe only

	// bucketDue (next attempt + webhook id) is the due index of data files
	// written before host_due; Open moves it into host_due and pending.
	bucketDue = []byte("due")

	allBuckets = [][]byte{bucketMerchants, bucketMerchantKeys, bucketTokens, bucketTokenExpiry, bucketSessions,
		bucketRefs, bucketExpiry, bucketTransactions, bucketDeliveries, bucketHostDue, bucketPending,
		bucketSessionDeliv, bucketTimers, bucketTimerKeys}
)

// ErrClosed is returned by writes after Close.
var ErrClosed = errors.New("store: closed")

// ErrLocked is returned by Open when another process holds the file.
var ErrLocked = errors.New("store: the database is locked by another process (is sessiond running?)")

// Options tune Open.
type Options struct {
	// LockTimeout is how long Open waits for another process to release
	// the file; 0 means 2s.
	LockTimeout time.Duration
	// MaxBatch caps the writes coalesced into one transaction; 0 means 256.
	MaxBatch int
	// Feed, if set, is handed every committed change, in commit order,
	// before its writer is answered.
	Feed session.Publisher
	// OnCommit, if set, is told how many writes each commit carried.
	OnCommit func(writes int)
	// TouchInterval is how often touches are written; 0 means 1s.
	TouchInterval time.Duration
	// OnError, if set, is told of failures of work no writer waits for:
	// the zeroed room kept past the data (see runway), should it stop.
	OnError func(error)
	// NoSync commits without fdatasync: a write is answered once its
	// pages are in the kernel's cache. A killed process loses nothing;
	// a power cut or a kernel crash can lose answered writes and leave
	// the file damaged. For test harnesses and for measuring what the
	// fsyncs cost, never for data that matters.
	NoSync bool
}

// DB is sessiond's database. Open it with Open; call Close when finished.
//
// One process holds a bbolt file (Open refuses a second), so the claims
// of the contract live in this process's memory: a crash ends them with
// the only owner that could hold them.
type DB struct {
	bolt  *bolt.DB
	queue writeQueue
	done  chan struct{}
	once  sync.Once
	max   int
	feed  session.Publisher
	onCmt func(int)

	sessions  *recordCache[session.Session]
	merchants *recordCache[session.Merchant]
	// begun numbers the committer's write transactions (the committer's
	// own); ended is the last to have ended, committed or rolled back,
	// before its writers are answered. A read that loads ended before its
	// read transaction sees everything up to it, which the caches record.
	begun uint64
	ended atomic.Uint64
	// beforeCommit, if set (by tests), runs once the caches are marked,
	// before the commit.
	beforeCommit func()

	// high is bbolt's high-water mark, in bytes, as the last write
	// transaction began it; the runway is kept past it.
	high   int64
	runway *runway

	touches *session.TouchBuffer
	claims  claims
	pending atomic.Int64 // pending deliveries

	commits  atomic.Uint64         // bolt transactions committed by the committer
	written  atomic.Uint64         // writes answered by them
	failing  atomic.Pointer[error] // the error of the last commit, if it failed
	failures atomic.Uint64         // commits that failed
}

// Open opens (creating if needed) the database at path and starts its
// committer. It fails with ErrLocked, after opts.LockTimeout, if another
// process has the file open.
func Open(path string, opts Options) (*DB, error) {
	if opts.LockTimeout == 0 {
		opts.LockTimeout = 2 * time.Second
	}
	if opts.MaxBatch == 0 {
		opts.MaxBatch = 256
	}
	if opts.TouchInterval == 0 {
		opts.TouchInterval = time.Second
	}
	// A truncated file would fault (SIGBUS) on first use of its missing
	// pages: check what bbolt trusts before it maps the file.
	if err := checkHeader(path); err != nil {
		return nil, err
	}
	var b *bolt.DB
	err := guarded("open", func() (err error) {
		b, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.LockTimeout, NoSync: opts.NoSync})
		return err
	})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s", ErrLocked, path)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if err := guarded("open", func() error { return checkFormat(b, path) }); err != nil {
		b.Close()
		return nil, err
	}
	err = guarded("open", func() error {
		return b.Update(func(tx *bolt.Tx) error {
			for _, name := range allBuckets {
				if _, err := tx.CreateBucketIfNotExists(name); err != nil {
					return err
				}
			}
			if err := migrateDue(tx); err != nil {
				return err
			}
			return migrateFormat(tx)
		})
	})
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("store: create buckets in %s: %w", path, err)
	}
	db := &DB{
		begun: 1, // 0 is the caches' "not known"
		bolt:  b,
		queue: writeQueue{wake: make(chan struct{}, 1)},
		done:  make(chan struct{}),
		max:   opts.MaxBatch,
		feed:  opts.Feed,
		onCmt: opts.OnCommit,

		sessions:  newSessionCache(),
		merchants: newMerchantCache(),
		runway:    openRunway(path, opts.OnError),
	}
	var n int64
	if err := db.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketPending).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			n++
		}
		return nil
	}); err != nil {
		db.runway.stop()
		b.Close()
		return nil, fmt.Errorf("store: count pending deliveries in %s: %w", path, err)
	}
	db.pending.Store(n)
	db.ended.Store(db.begun) // what a read sees now is stored
	db.touches = session.StartTouchBuffer(opts.TouchInterval, db.writeTouches)
	go db.commitLoop()
	return db, nil
}

// Close writes the touches held, stops the committer once the writes it
// has taken are answered, and closes the file (synced first under
// Options.NoSync).
func (db *DB) Close() error {
	var err error
	db.once.Do(func() {
		db.touches.Stop()
		db.queue.close()
		<-db.done
		db.runway.stop()
		if db.bolt.NoSync { // a clean stop leaves the file on disk all the same
			err = db.bolt.Sync()
		}
		err = errors.Join(err, db.bolt.Close())
	})
	return err
}

// CommitStats returns how many transactions the committer has committed
// and how many writes they carried.
func (db *DB) CommitStats() (commits, writes uint64) {
	return db.commits.Load(), db.written.Load()
}

// write is one caller's part of a group commit.
type write struct {
	fn    func(*bolt.Tx, *write) error
	err   chan error
	saved *session.Change // published to the feed once committed
	after func()          // run on the committer once committed, before the answer
	// pending is the change to the count of pending deliveries made by
	// the last run of fn; the committer adds it once committed.
	pending int64
	// scoped says the write changes no cached record but the sessions
	// it names; a write not scoped may change any of them. fn may set
	// sessions as it runs: the committer reads them once it has run.
	scoped   bool
	sessions []string
	// stored is the session bytes the write leaves stored, if the write
	// is a session's save: once committed, the cache keeps them as
	// current unless a later write of the transaction names the session
	// too.
	stored *storedSession
}

type storedSession struct {
	raw []byte
	s   *session.Session
}

// newScopedWrite returns a write that changes no cached record but the
// sessions named.
func newScopedWrite(fn func(*bolt.Tx, *write) error, sessions ...string) *write {
	w := newWrite(fn)
	w.scoped, w.sessions = true, sessions
	return w
}

func newWrite(fn func(*bolt.Tx, *write) error) *write {
	return &write{fn: fn, err: make(chan error, 1)}
}

// update runs fn in a write transaction shared with other writers and
// returns once that transaction is on disk. If fn returns an error (or
// panics), nothing it wrote is kept: the shared transaction is rolled back
// and run again without it, and its caller gets the error.
func (db *DB) update(ctx context.Context, fn func(*bolt.Tx) error) error {
	return db.submit(ctx, newWrite(func(tx *bolt.Tx, _ *write) error { return fn(tx) }))
}

func (db *DB) submit(ctx context.Context, w *write) error {
	if err := db.submitAll(ctx, []*write{w}); err != nil {
		return err
	}
	return <-w.err
}

// submitAll hands ws to the committer, which puts them in one transaction
// as far as MaxBatch allows. Once taken, a write may commit, so its answer
// must be awaited whatever ctx says; submitAll returns an error only if
// none was taken: ctx is done already, or the database is closed.
func (db *DB) submitAll(ctx context.Context, ws []*write) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !db.queue.put(ws) {
		return ErrClosed
	}
	return nil
}

// writeQueue is where writers leave their writes for the committer. A
// writer never waits to hand one over: it waits once, for its answer.
// (Over a channel, a writer that found the committer busy waited to be
// taken, and then again to be answered: two wake-ups a write.)
type writeQueue struct {
	mu     sync.Mutex
	ws     []*write
	closed bool
	wake   chan struct{} // holds a token once there is something to take
}

// put queues ws; false if the queue is closed.
func (q *writeQueue) put(ws []*write) bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	q.ws = append(q.ws, ws...)
	q.mu.Unlock()
	q.signal()
	return true
}

func (q *writeQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default: // a token is there already
	}
}

// take moves up to max-len(batch) queued writes onto batch, oldest first.
// Done reports that the queue is closed and empty: nothing will come.
func (q *writeQueue) take(batch []*write, max int) (_ []*write, done bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := min(len(q.ws), max-len(batch))
	batch = append(batch, q.ws[:n]...)
	rest := copy(q.ws, q.ws[n:])
	clear(q.ws[rest:])
	q.ws = q.ws[:rest]
	return batch, q.closed && len(batch) == 0
}

// close refuses further writes; the committer takes those queued and
// then stops.
func (q *writeQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

// commitYields is how many times the committer yields to let writers join
// a commit: wrk measured 9-19% more creates a second with 3 than with none,
// and no more with 8.
const commitYields = 3

func (db *DB) commitLoop() {
	defer close(db.done)
	batch := make([]*write, 0, db.max)
	for {
		var done bool
		batch, done = db.queue.take(batch[:0], db.max)
		if done {
			return
		}
		if len(batch) == 0 {
			<-db.queue.wake
			continue
		}
		// The writers woken with this one are often runnable but not yet
		// queued; a yield lets them get there and share the commit,
		// instead of waiting for the next one. Yield again while a yield
		// brings more, up to commitYields times. With nothing else
		// runnable a yield returns at once, so a lone write does not wait
		// (bbolt's Batch waits 10ms for company).
		for y := 0; y < commitYields && len(batch) < db.max; y++ {
			runtime.Gosched()
			n := len(batch)
			if batch, _ = db.queue.take(batch, db.max); len(batch) == n {
				break
			}
		}
		db.commit(batch)
		db.runway.keep(db.high)
	}
}

// commit writes batch in one transaction. A write that fails rolls the
// transaction back; it is answered with its error, and the others are run
// again without it, so no failed write ever leaves anything behind (as
// bbolt's own Batch does, without its timer). A write's error is the one
// it met in the order of the batch, as if the writes before it had been
// committed alone first.
func (db *DB) commit(batch []*write) {
	batch = append([]*write(nil), batch...)
	for len(batch) > 0 {
		db.begun++
		tx := db.begun
		bad, err := db.transaction(tx, batch)
		if bad >= 0 {
			db.ended.Store(tx)
			batch[bad].err <- err
			batch = append(batch[:bad:bad], batch[bad+1:]...)
			continue
		}
		if err != nil {
			db.ended.Store(tx)
			err = fmt.Errorf("store: commit: %w", err)
			db.failing.Store(&err)
			db.failures.Add(1)
			for _, w := range batch {
				w.err <- err
			}
			return
		}
		db.failing.Store(nil)
		db.commits.Add(1)
		db.written.Add(uint64(len(batch)))
		if db.onCmt != nil {
			db.onCmt(len(batch))
		}
		var saved []*session.Change
		for i, w := range batch {
			db.pending.Add(w.pending)
			if w.stored != nil {
				seen := tx
				if namedAfter(batch[i+1:], w.stored.s.ID) {
					seen = 0 // the stored bytes may be another's
				}
				db.sessions.remember(w.stored.s.ID, w.stored.raw, w.stored.s, seen)
			}
			if w.after != nil {
				w.after()
			}
			if w.saved != nil {
				saved = append(saved, w.saved)
			}
		}
		db.ended.Store(tx)
		if db.feed != nil && len(saved) > 0 {
			db.feed.Publish(saved...)
		}
		for _, w := range batch {
			w.err <- nil
		}
		return
	}
}

// transaction runs batch as write transaction tx and commits it. bad is
// the index of the write that failed, with its error, or -1; err without
// a bad write is the commit's.
func (db *DB) transaction(tx uint64, batch []*write) (bad int, err error) {
	bad = -1
	err = guarded("commit", func() error {
		btx, err := db.bolt.Begin(true)
		if err != nil {
			return err
		}
		defer btx.Rollback() // after a commit, a no-op
		for i, w := range batch {
			w.pending = 0
			if err := run(w, btx); err != nil {
				bad = i
				return err
			}
		}
		db.high = btx.Size()
		db.mark(tx, batch)
		if db.beforeCommit != nil {
			db.beforeCommit()
		}
		return btx.Commit()
	})
	return bad, err
}

// mark tells the caches, before transaction tx commits, which records its
// writes may change.
func (db *DB) mark(tx uint64, batch []*write) {
	var sessions []string
	for _, w := range batch {
		if !w.scoped {
			db.sessions.markAll(tx)
			db.merchants.markAll(tx)
			return
		}
		sessions = append(sessions, w.sessions...)
	}
	db.sessions.mark(tx, sessions)
}

// namedAfter reports whether a write of ws names the session.
func namedAfter(ws []*write, id string) bool {
	for _, w := range ws {
		if !w.scoped || slices.Contains(w.sessions, id) {
			return true
		}
	}
	return false
}

// WriteErr returns the error of the last commit if it failed (the disk is
// full, say), or nil once a commit has succeeded since.
func (db *DB) WriteErr() error {
	if err := db.failing.Load(); err != nil {
		return *err
	}
	return nil
}

// CommitFailures returns how many commits have failed since Open.
func (db *DB) CommitFailures() uint64 { return db.failures.Load() }

// Probe commits a write of its own, so that WriteErr tells whether the
// file can be written now; it returns the commit's error.
func (db *DB) Probe(ctx context.Context) error {
	return db.update(ctx, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketProbe)
		if err != nil {
			return err
		}
		return b.Put([]byte("probe"), []byte(time.Now().UTC().Format(time.RFC3339Nano)))
	})
}

func run(w *write, tx *bolt.Tx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("store: panic in write: %v", r)
		}
	}()
	return w.fn(tx, w)
}

// view runs fn in a read transaction; a damaged page it meets is an error
// wrapping ErrDamaged, not a crash.
func (db *DB) view(fn func(*bolt.Tx) error) error {
	return guarded("read", func() error { return db.bolt.View(fn) })
}

// appendFill is the fill percent of buckets whose keys grow with time:
// their pages are filled before they split, instead of bbolt's half, since
// nothing will be inserted between the keys later.
const appendFill = 0.95

// wbucket returns the named bucket, set to fill its pages for appends if
// its keys grow with time.
func wbucket(tx *bolt.Tx, name []byte) *bolt.Bucket {
	b := tx.Bucket(name)
	switch string(name) {
	case string(bucketSessions), string(bucketExpiry), string(bucketTransactions),
		string(bucketDeliveries), string(bucketPending), string(bucketTokenExpiry), string(bucketTimers):
		b.FillPercent = appendFill
	}
	return b
}

// get decodes the JSON value at key into v; session.ErrNotFound if absent.
func get(tx *bolt.Tx, bucket, key []byte, v any) error {
	b := tx.Bucket(bucket).Get(key)
	if b == nil {
		return session.ErrNotFound
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("store: decode %s/%s: %w", bucket, key, err)
	}
	return nil
}

func put(tx *bolt.Tx, bucket, key []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("store: encode %s/%s: %w", bucket, key, err)
	}
	return wbucket(tx, bucket).Put(key, b)
}

// timeKey returns t as 8 big-endian bytes of Unix nanoseconds followed by
// suffix, so that keys sort by time.
func timeKey(t time.Time, suffix string) []byte {
	k := make([]byte, 8, 8+len(suffix))
	binary.BigEndian.PutUint64(k, uint64(t.UnixNano()))
	return append(k, suffix...)
}

// beforeOrAt reports whether a timeKey's time is at or before t.
func beforeOrAt(k []byte, t time.Time) bool {
	return len(k) >= 8 && binary.BigEndian.Uint64(k[:8]) <= uint64(t.UnixNano())
}

func decodeTime(k []byte) uint64 { return binary.BigEndian.Uint64(k[:8]) }
