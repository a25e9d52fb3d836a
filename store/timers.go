package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/sessiond/sessiond/session"
	bolt "go.etcd.io/bbolt"
)

// putTimer sets (or, with a zero Due, deletes) the timer with t's key.
func putTimer(tx *bolt.Tx, t session.Timer) error {
	keys, timers := wbucket(tx, bucketTimerKeys), wbucket(tx, bucketTimers)
	if old := keys.Get([]byte(t.Key)); len(old) == 8 {
		if err := timers.Delete(append(old[:8:8], t.Key...)); err != nil {
			return fmt.Errorf("store: delete timer %s: %w", t.Key, err)
		}
	}
	if t.Due.IsZero() {
		if err := keys.Delete([]byte(t.Key)); err != nil {
			return fmt.Errorf("store: delete timer %s: %w", t.Key, err)
		}
		return nil
	}
	k := timeKey(t.Due, t.Key)
	if err := keys.Put([]byte(t.Key), k[:8]); err != nil {
		return fmt.Errorf("store: put timer %s: %w", t.Key, err)
	}
	if err := timers.Put(k, nil); err != nil {
		return fmt.Errorf("store: put timer %s: %w", t.Key, err)
	}
	return nil
}

// ClaimTimers returns up to limit timers due at or before now that no
// other owner holds, earliest first, and when the next one not returned is
// due.
func (db *DB) ClaimTimers(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]session.Timer, time.Time, error) {
	var out []session.Timer
	var next time.Time
	db.claims.mu.Lock()
	defer db.claims.mu.Unlock()
	err := db.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketTimers).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			due := time.Unix(0, int64(binary.BigEndian.Uint64(k))).UTC()
			key := string(k[8:])
			if due.After(now) || len(out) == limit {
				next = due
				return nil
			}
			if db.claims.heldLocked(claimTimer, key, owner, now) {
				continue
			}
			out = append(out, session.Timer{Key: key, Due: due})
		}
		return nil
	})
	if err != nil {
		return nil, time.Time{}, err
	}
	for _, t := range out {
		db.claims.takeLocked(claimTimer, t.Key, owner, now.Add(lease))
	}
	return out, next, nil
}

// DoneTimer deletes the timer if it is still due at t.Due and ends owner's
// claim on it.
func (db *DB) DoneTimer(ctx context.Context, owner string, t session.Timer) error {
	w := newScopedWrite(func(tx *bolt.Tx, _ *write) error { // no cached record changes
		old := tx.Bucket(bucketTimerKeys).Get([]byte(t.Key))
		if len(old) != 8 || binary.BigEndian.Uint64(old) != uint64(t.Due.UnixNano()) {
			return nil
		}
		return putTimer(tx, session.Timer{Key: t.Key})
	})
	w.after = func() { db.claims.release(claimTimer, t.Key, owner) }
	return db.submit(ctx, w)
}
