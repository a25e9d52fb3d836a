package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/sessiond/sessiond/session"
	bolt "go.etcd.io/bbolt"
)

// putDelivery writes a delivery (v is its JSON) and keeps the due and
// per-session indexes in step; old is the stored version it replaces, nil
// for a new one.
func putDelivery(tx *bolt.Tx, d *session.Delivery, v []byte, old *session.Delivery) error {
	due := wbucket(tx, bucketDue)
	if old != nil && old.Status == session.DeliveryPending {
		if err := due.Delete(timeKey(old.NextAttempt, old.WebhookID)); err != nil {
			return fmt.Errorf("store: unindex delivery %s: %w", d.WebhookID, err)
		}
	}
	if err := wbucket(tx, bucketDeliveries).Put([]byte(d.WebhookID), v); err != nil {
		return fmt.Errorf("store: put delivery %s: %w", d.WebhookID, err)
	}
	if d.Status == session.DeliveryPending {
		if err := due.Put(timeKey(d.NextAttempt, d.WebhookID), nil); err != nil {
			return fmt.Errorf("store: index delivery %s: %w", d.WebhookID, err)
		}
	}
	if old == nil {
		if err := wbucket(tx, bucketSessionDeliv).Put([]byte(d.SessionID+d.WebhookID), nil); err != nil {
			return fmt.Errorf("store: index delivery %s: %w", d.WebhookID, err)
		}
	}
	return nil
}

// DueDeliveries returns up to limit pending deliveries whose next attempt
// is at or before now, earliest first.
func (db *DB) DueDeliveries(ctx context.Context, now time.Time, limit int) ([]*session.Delivery, error) {
	var out []*session.Delivery
	err := db.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketDue).Cursor()
		for k, _ := c.First(); k != nil && beforeOrAt(k, now) && len(out) < limit; k, _ = c.Next() {
			d := new(session.Delivery)
			if err := get(tx, bucketDeliveries, k[8:], d); err != nil {
				return err
			}
			out = append(out, d)
		}
		return nil
	})
	return out, err
}

// NextDelivery returns when the earliest pending delivery is due, and false
// if none is pending.
func (db *DB) NextDelivery(ctx context.Context) (time.Time, bool, error) {
	var at time.Time
	var ok bool
	err := db.view(func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bucketDue).Cursor().First()
		if k != nil {
			at, ok = time.Unix(0, int64(decodeTime(k))), true
		}
		return nil
	})
	return at, ok, err
}

// UpdateDelivery records the outcome of an attempt: d replaces the stored
// delivery with its webhook id; session.ErrNotFound if there is none.
func (db *DB) UpdateDelivery(ctx context.Context, d *session.Delivery) error {
	v, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("store: encode delivery %s: %w", d.WebhookID, err)
	}
	return db.update(ctx, func(tx *bolt.Tx) error {
		old := new(session.Delivery)
		if err := get(tx, bucketDeliveries, []byte(d.WebhookID), old); err != nil {
			return err
		}
		return putDelivery(tx, d, v, old)
	})
}

// SessionDeliveries returns the deliveries of a session, oldest first.
func (db *DB) SessionDeliveries(ctx context.Context, sessionID string) ([]*session.Delivery, error) {
	out := []*session.Delivery{}
	err := db.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketSessionDeliv).Cursor()
		prefix := []byte(sessionID)
		for k, _ := c.Seek(prefix); k != nil && len(k) > len(prefix) && string(k[:len(prefix)]) == sessionID; k, _ = c.Next() {
			d := new(session.Delivery)
			if err := get(tx, bucketDeliveries, k[len(prefix):], d); err != nil {
				return err
			}
			out = append(out, d)
		}
		return nil
	})
	return out, err
}

// OutboxStats returns how many deliveries are pending and when the oldest
// of them was recorded (zero if none). It reads every pending delivery: a
// scrape's cost grows with the backlog, which stays small while merchants
// answer.
func (db *DB) OutboxStats(ctx context.Context) (pending int, oldest time.Time, err error) {
	err = db.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketDue).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			d := new(session.Delivery)
			if err := get(tx, bucketDeliveries, k[8:], d); err != nil {
				return err
			}
			pending++
			if oldest.IsZero() || d.Created.Before(oldest) {
				oldest = d.Created
			}
		}
		return nil
	})
	return pending, oldest, err
}
