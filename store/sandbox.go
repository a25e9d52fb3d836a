package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/sessiond/sessiond/session"
	bolt "go.etcd.io/bbolt"
)

var _ session.SandboxStore = (*DB)(nil)

// ResetMerchant deletes every session of the merchant with its index
// entries, transactions, deliveries and timers, and its bank accounts, in
// one transaction. It
// reads every stored session: a sandbox's data is small.
func (db *DB) ResetMerchant(ctx context.Context, merchantID string) error {
	return db.submit(ctx, newWrite(func(tx *bolt.Tx, w *write) error {
		var owned []*session.Session
		err := tx.Bucket(bucketSessions).ForEach(func(k, v []byte) error {
			var head struct {
				MerchantID string `json:"merchant_id"`
			}
			if len(v) < 4 {
				return fmt.Errorf("store: session value of %d bytes", len(v))
			}
			if err := json.Unmarshal(v[4:], &head); err != nil {
				return fmt.Errorf("store: decode session %s: %w", k, err)
			}
			if head.MerchantID != merchantID {
				return nil
			}
			s, err := decodeSession(v)
			if err != nil {
				return err
			}
			owned = append(owned, s)
			return nil
		})
		if err != nil {
			return err
		}
		for _, s := range owned {
			if err := deleteSession(tx, w, s); err != nil {
				return err
			}
		}
		return resetAccounts(tx, merchantID)
	}))
}

// deleteSession deletes a session, its index entries, its transaction, its
// deliveries and the timers whose keys name it.
func deleteSession(tx *bolt.Tx, w *write, s *session.Session) error {
	del := func(bucket, key []byte) error {
		if err := tx.Bucket(bucket).Delete(key); err != nil {
			return fmt.Errorf("store: delete %s of session %s: %w", bucket, s.ID, err)
		}
		return nil
	}
	if err := del(bucketSessions, []byte(s.ID)); err != nil {
		return err
	}
	if ref := s.Params.MerchantReference; ref != "" {
		if err := del(bucketRefs, refKey(s.MerchantID, ref, s.ID)); err != nil {
			return err
		}
	}
	if err := del(bucketExpiry, timeKey(s.Expires, s.ID)); err != nil {
		return err
	}
	if s.TransactionID != "" {
		if err := del(bucketTransactions, []byte(s.TransactionID)); err != nil {
			return err
		}
	}
	prefix := []byte(s.ID)
	c := tx.Bucket(bucketSessionDeliv).Cursor()
	var keys [][]byte
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		id := k[len(prefix):]
		d := new(session.Delivery)
		if err := get(tx, bucketDeliveries, id, d); err != nil {
			return err
		}
		if d.Status == session.DeliveryPending {
			if err := del(bucketHostDue, hostDueKey(d)); err != nil {
				return err
			}
			if err := del(bucketPending, timeKey(d.Created, d.WebhookID)); err != nil {
				return err
			}
			w.pending--
		}
		if err := del(bucketDeliveries, id); err != nil {
			return err
		}
		if err := del(bucketSessionDeliv, k); err != nil {
			return err
		}
	}
	return deleteTimersOf(tx, s)
}

// deleteTimersOf deletes the timers whose keys name the session or its
// transaction.
func deleteTimersOf(tx *bolt.Tx, s *session.Session) error {
	var keys [][]byte
	err := tx.Bucket(bucketTimerKeys).ForEach(func(k, due []byte) error {
		if bytes.Contains(k, []byte(s.ID)) || (s.TransactionID != "" && bytes.Contains(k, []byte(s.TransactionID))) {
			keys = append(keys, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := putTimer(tx, session.Timer{Key: string(k)}); err != nil {
			return err
		}
	}
	return nil
}

// Delivery returns the delivery with the webhook id; session.ErrNotFound.
func (db *DB) Delivery(ctx context.Context, webhookID string) (*session.Delivery, error) {
	d := new(session.Delivery)
	err := db.view(func(tx *bolt.Tx) error { return get(tx, bucketDeliveries, []byte(webhookID), d) })
	if err != nil {
		return nil, err
	}
	return d, nil
}

// RequeueDelivery stores d, pending again, in place of the delivery with
// its webhook id; session.ErrNotFound if there is none.
func (db *DB) RequeueDelivery(ctx context.Context, d *session.Delivery) error {
	v, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("store: encode delivery %s: %w", d.WebhookID, err)
	}
	return db.submit(ctx, newWrite(func(tx *bolt.Tx, w *write) error {
		old := new(session.Delivery)
		if err := get(tx, bucketDeliveries, []byte(d.WebhookID), old); err != nil {
			return err
		}
		return putDelivery(tx, w, d, v, old)
	}))
}
