// Package store keeps sessiond's data in one bbolt file: it implements
// session.Store, and the outbox that the callbacks package reads. It is the
// only package that imports bbolt.
//
// Every write goes through one committer goroutine that coalesces the
// writes waiting at that moment into a single bbolt transaction and a single
// fsync (group commit), and answers each writer after that commit. A lone
// writer is committed at once; it never waits on a timer.
package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
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
	bucketDue          = []byte("due")           // next attempt (8 BE) + webhook id → nil, pending deliveries only
	bucketSessionDeliv = []byte("session_deliveries")

	allBuckets = [][]byte{bucketMerchants, bucketMerchantKeys, bucketTokens, bucketTokenExpiry, bucketSessions,
		bucketRefs, bucketExpiry, bucketTransactions, bucketDeliveries, bucketDue, bucketSessionDeliv}
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
	// OnSave, if set, is called by the committer after each Save is on
	// disk, in commit order, before the caller is answered. It must not
	// block: it runs on the one goroutine every write waits for.
	OnSave func(*session.Change)
	// OnCommit, if set, is told how many writes each commit carried.
	OnCommit func(writes int)
}

// DB is sessiond's database. Open it with Open; call Close when finished.
type DB struct {
	bolt    *bolt.DB
	writes  chan *write
	closing chan struct{}
	done    chan struct{}
	once    sync.Once
	max     int
	onSave  func(*session.Change)
	onCmt   func(int)

	decoded sessionCache

	commits atomic.Uint64 // bolt transactions committed by the committer
	written atomic.Uint64 // writes answered by them
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
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.LockTimeout})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s", ErrLocked, path)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	err = b.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("store: create buckets in %s: %w", path, err)
	}
	db := &DB{
		bolt:    b,
		writes:  make(chan *write),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
		max:     opts.MaxBatch,
		onSave:  opts.OnSave,
		onCmt:   opts.OnCommit,
	}
	go db.commitLoop()
	return db, nil
}

// Close stops the committer, once the writes it has taken are answered, and
// closes the file.
func (db *DB) Close() error {
	var err error
	db.once.Do(func() {
		close(db.closing)
		<-db.done
		err = db.bolt.Close()
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
	fn    func(*bolt.Tx) error
	err   chan error
	saved *session.Change // for OnSave, if the write is a Save
}

// update runs fn in a write transaction shared with other writers and
// returns once that transaction is on disk. fn must make every check that
// can fail with a *session.Error before its first write: such an error is
// answered to its caller alone and the batch goes on. Any other error (or
// panic) rolls the batch back and the others are run again without it.
func (db *DB) update(ctx context.Context, fn func(*bolt.Tx) error) error {
	return db.submit(ctx, &write{fn: fn, err: make(chan error, 1)})
}

func (db *DB) submit(ctx context.Context, w *write) error {
	select {
	case db.writes <- w:
	case <-db.closing:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once taken, the write may commit: wait for the answer whatever ctx says.
	return <-w.err
}

func (db *DB) commitLoop() {
	defer close(db.done)
	batch := make([]*write, 0, db.max)
	for {
		select {
		case w := <-db.writes:
			batch = append(batch[:0], w)
		drain:
			for len(batch) < db.max {
				select {
				case w := <-db.writes:
					batch = append(batch, w)
				default:
					break drain
				}
			}
			db.commit(batch)
		case <-db.closing:
			return
		}
	}
}

func (db *DB) commit(batch []*write) {
	for len(batch) > 0 {
		errs := make([]error, len(batch))
		bad := -1
		err := db.bolt.Update(func(tx *bolt.Tx) error {
			for i, w := range batch {
				errs[i] = run(w.fn, tx)
				var se *session.Error
				if errs[i] != nil && !errors.As(errs[i], &se) {
					bad = i
					return errs[i]
				}
			}
			return nil
		})
		if bad >= 0 {
			batch[bad].err <- errs[bad]
			batch = append(batch[:bad:bad], batch[bad+1:]...)
			continue
		}
		db.commits.Add(1)
		db.written.Add(uint64(len(batch)))
		if db.onCmt != nil && err == nil {
			db.onCmt(len(batch))
		}
		for i, w := range batch {
			if err != nil {
				w.err <- fmt.Errorf("store: commit: %w", err)
				continue
			}
			if errs[i] == nil && w.saved != nil && db.onSave != nil {
				db.onSave(w.saved)
			}
			w.err <- errs[i]
		}
		return
	}
}

func run(fn func(*bolt.Tx) error, tx *bolt.Tx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("store: panic in write: %v", r)
		}
	}()
	return fn(tx)
}

func (db *DB) view(fn func(*bolt.Tx) error) error { return db.bolt.View(fn) }

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
		string(bucketDeliveries), string(bucketDue), string(bucketTokenExpiry):
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
