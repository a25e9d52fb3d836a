package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/sessiond/sessiond/session"
	bolt "go.etcd.io/bbolt"
)

var _ session.SandboxStore = (*DB)(nil)

// ResetMerchant deletes every session, transaction, delivery and bank
// account of the merchant, with their index entries and timers, in one
// transaction. It reads every stored session and delivery: a sandbox's
// data is small.
func (db *DB) ResetMerchant(ctx context.Context, merchantID string) error {
	return db.submit(ctx, newWrite(func(tx *bolt.Tx, w *write) error {
		sessions, err := ownedSessions(tx, merchantID)
		if err != nil {
			return err
		}
		for _, s := range sessions {
			if err := deleteSession(tx, s); err != nil {
				return err
			}
		}
		deliveries, err := owned[session.Delivery](tx, bucketDeliveries, 0, merchantID)
		if err != nil {
			return err
		}
		for _, d := range deliveries {
			if err := deleteDelivery(tx, w, d); err != nil {
				return err
			}
		}
		if err := deleteTransactions(tx, merchantID); err != nil {
			return err
		}
		return deleteAccounts(tx, merchantID)
	}))
}

// owned decodes the values of bucket (after skip bytes of header) that
// belong to the merchant. Keys under "damaged/" are left alone.
func owned[T any](tx *bolt.Tx, bucket []byte, skip int, merchantID string) ([]*T, error) {
	var out []*T
	err := tx.Bucket(bucket).ForEach(func(k, v []byte) error {
		if bytes.HasPrefix(k, []byte("damaged/")) || len(v) < skip {
			return nil
		}
		var head struct {
			MerchantID string `json:"merchant_id"`
		}
		if json.Unmarshal(v[skip:], &head) != nil || head.MerchantID != merchantID {
			return nil
		}
		x := new(T)
		if err := json.Unmarshal(v[skip:], x); err != nil {
			return fmt.Errorf("store: decode %s/%s: %w", bucket, k, err)
		}
		out = append(out, x)
		return nil
	})
	return out, err
}

// ownedSessions decodes the stored sessions of the merchant, reading only
// the head of the others.
func ownedSessions(tx *bolt.Tx, merchantID string) ([]*session.Session, error) {
	var out []*session.Session
	err := tx.Bucket(bucketSessions).ForEach(func(k, v []byte) error {
		if h, err := decodeSessionHead(v); err != nil || h.MerchantID != merchantID {
			return nil // as owned does: what cannot be read is nobody's
		}
		s, err := decodeSession(v)
		if err != nil {
			return fmt.Errorf("store: decode session %s: %w", k, err)
		}
		out = append(out, s)
		return nil
	})
	return out, err
}

func del(tx *bolt.Tx, bucket, key []byte) error {
	if err := tx.Bucket(bucket).Delete(key); err != nil {
		return fmt.Errorf("store: delete %s/%x: %w", bucket, key, err)
	}
	return nil
}

// deleteSession deletes a session, its index entries and the timers whose
// keys name it.
func deleteSession(tx *bolt.Tx, s *session.Session) error {
	if err := del(tx, bucketSessions, []byte(s.ID)); err != nil {
		return err
	}
	if ref := s.Params.MerchantReference; ref != "" {
		if err := del(tx, bucketRefs, refKey(s.MerchantID, ref, s.ID)); err != nil {
			return err
		}
	}
	if err := del(tx, bucketExpiry, timeKey(s.Expires, s.ID)); err != nil {
		return err
	}
	return deleteTimersOf(tx, s.ID)
}

// deleteDelivery deletes a delivery and its index entries.
func deleteDelivery(tx *bolt.Tx, w *write, d *session.Delivery) error {
	if d.Status == session.DeliveryPending {
		if err := del(tx, bucketHostDue, hostDueKey(d)); err != nil {
			return err
		}
		if tx.Bucket(bucketPending).Get(timeKey(d.Created, d.WebhookID)) != nil {
			if err := del(tx, bucketPending, timeKey(d.Created, d.WebhookID)); err != nil {
				return err
			}
			w.pending--
		}
	}
	if err := del(tx, bucketSessionDeliv, []byte(d.SessionID+d.WebhookID)); err != nil {
		return err
	}
	return del(tx, bucketDeliveries, []byte(d.WebhookID))
}

// deleteTransactions deletes the merchant's transactions, found by its
// index, with their index entries and timers.
func deleteTransactions(tx *bolt.Tx, merchantID string) error {
	prefix := []byte(merchantID)
	var keys [][]byte
	c := tx.Bucket(bucketMerchantTxs).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		id := k[len(prefix):]
		t := new(session.Transaction)
		if err := get(tx, bucketTransactions, id, t); err != nil && !errors.Is(err, session.ErrNotFound) {
			return err
		}
		if t.MerchantReference != "" {
			if err := del(tx, bucketTxRefs, prefixKey(merchantID, t.MerchantReference, t.ID)); err != nil {
				return err
			}
		}
		if t.OriginalTransactionID != "" {
			if err := del(tx, bucketRefunds, []byte(t.OriginalTransactionID+t.ID)); err != nil {
				return err
			}
		}
		if err := del(tx, bucketTransactions, id); err != nil {
			return err
		}
		if err := del(tx, bucketMerchantTxs, k); err != nil {
			return err
		}
		if err := deleteTimersOf(tx, string(id)); err != nil {
			return err
		}
	}
	return nil
}

// deleteAccounts deletes the merchant's bank accounts, found by their
// customer index.
func deleteAccounts(tx *bolt.Tx, merchantID string) error {
	prefix := []byte(merchantID)
	var keys [][]byte
	c := tx.Bucket(bucketCustomerAccounts).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		// merchant id + len(customer) (2 BE) + customer + account id
		n := int(binary.BigEndian.Uint16(k[len(prefix):]))
		id := k[len(prefix)+2+n:]
		if err := del(tx, bucketAccounts, id); err != nil {
			return err
		}
		if err := del(tx, bucketCustomerAccounts, k); err != nil {
			return err
		}
	}
	return nil
}

// deleteTimersOf deletes the timers whose keys name the id (of a session
// or a transaction).
func deleteTimersOf(tx *bolt.Tx, id string) error {
	var keys [][]byte
	err := tx.Bucket(bucketTimerKeys).ForEach(func(k, _ []byte) error {
		if bytes.Contains(k, []byte(id)) {
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
