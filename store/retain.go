package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/sessiond/sessiond/session"
	bolt "go.etcd.io/bbolt"
)

// Retain deletes final sessions created before cutoff with what belongs
// to them. Session ids are time-ordered, so the sessions created before
// the cutoff are the keys below session.IDAt(cutoff): it reads up to limit
// of them from the one after after, in a read transaction, then deletes
// the final ones through the committer in one write, checking each again
// there (a delivery may have been queued again meanwhile).
func (db *DB) Retain(ctx context.Context, cutoff time.Time, after string, limit int) (int, string, error) {
	bound := []byte(session.IDAt(cutoff))
	var ids [][]byte
	next := ""
	err := db.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketSessions).Cursor()
		var k, v []byte
		if after == "" {
			k, v = c.First()
		} else if k, v = c.Seek([]byte(after)); k != nil && string(k) == after {
			k, v = c.Next()
		}
		for seen := 0; k != nil && bytes.Compare(k, bound) < 0; k, v = c.Next() {
			if seen == limit {
				return nil // next is the last one looked at
			}
			seen++
			next = string(k)
			// The rest is read again in the write. A value that does not
			// decode is left for `sessiond check` to report, not retained.
			s, err := decodeSessionHead(v)
			if err == nil && s.State.Final() && s.Created.Before(cutoff) {
				ids = append(ids, bytes.Clone(k))
			}
		}
		next = "" // the range is walked
		return nil
	})
	if err != nil || len(ids) == 0 {
		return 0, next, err
	}
	var gone []string
	// The write names the sessions it deletes, once it knows them, so the
	// rest of the session cache stays current.
	w := newScopedWrite(func(tx *bolt.Tx, w *write) error {
		var err error
		gone, err = retainSessions(tx, ids, cutoff)
		w.sessions = gone
		return err
	})
	w.after = func() {
		for _, id := range gone {
			db.sessions.forget(id)
		}
	}
	if err := db.submit(ctx, w); err != nil {
		return 0, "", err
	}
	return len(gone), next, nil
}

// retainSessions deletes the sessions with the ids that are still final,
// created before cutoff, without a pending delivery and without refunds
// of their transaction, and returns the ids it deleted.
func retainSessions(tx *bolt.Tx, ids [][]byte, cutoff time.Time) ([]string, error) {
	var gone []string
	doomed := map[string]bool{} // ids whose timers go too
	for _, id := range ids {
		v := tx.Bucket(bucketSessions).Get(id)
		if v == nil {
			continue
		}
		s, err := decodeSession(v)
		if err != nil || !s.State.Final() || !s.Created.Before(cutoff) {
			continue
		}
		deliveries, keep, err := sessionDeliveries(tx, s.ID)
		if err != nil {
			return nil, err
		}
		if keep || hasPrefix(tx, bucketRefunds, s.TransactionID) {
			continue
		}
		for _, d := range deliveries {
			if err := deleteFinishedDelivery(tx, d); err != nil {
				return nil, err
			}
		}
		if s.TransactionID != "" {
			if err := deleteTransaction(tx, s.TransactionID); err != nil {
				return nil, err
			}
			doomed[s.TransactionID] = true
		}
		if s.BankAccount != nil {
			if err := deleteSessionAccount(tx, s.BankAccount.ID, s.ID); err != nil {
				return nil, err
			}
		}
		if err := del(tx, bucketSessions, id); err != nil {
			return nil, err
		}
		if ref := s.Params.MerchantReference; ref != "" {
			if err := del(tx, bucketRefs, refKey(s.MerchantID, ref, s.ID)); err != nil {
				return nil, err
			}
		}
		if err := del(tx, bucketExpiry, timeKey(s.Expires, s.ID)); err != nil {
			return nil, err
		}
		doomed[s.ID] = true
		gone = append(gone, s.ID)
	}
	if len(doomed) == 0 {
		return gone, nil
	}
	// Timers are few (the sandbox's next steps): one walk of their keys
	// finds those that name a deleted session or transaction at their end.
	var keys [][]byte
	err := tx.Bucket(bucketTimerKeys).ForEach(func(k, _ []byte) error {
		key := string(k)
		if doomed[key[strings.LastIndexByte(key, '/')+1:]] {
			keys = append(keys, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if err := putTimer(tx, session.Timer{Key: string(k)}); err != nil {
			return nil, err
		}
	}
	return gone, nil
}

// sessionDeliveries returns the deliveries of the session, and whether
// one of them is pending (or cannot be read), which keeps the session.
func sessionDeliveries(tx *bolt.Tx, sessionID string) ([]*session.Delivery, bool, error) {
	var out []*session.Delivery
	prefix := []byte(sessionID)
	c := tx.Bucket(bucketSessionDeliv).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		v := tx.Bucket(bucketDeliveries).Get(k[len(prefix):])
		d := new(session.Delivery)
		if v == nil || json.Unmarshal(v, d) != nil || d.Status == session.DeliveryPending {
			return nil, true, nil
		}
		out = append(out, d)
	}
	return out, false, nil
}

// deleteFinishedDelivery deletes a delivery that is no longer pending (so
// is in no due index), its session entry, and the bytes kept if it was set
// aside.
func deleteFinishedDelivery(tx *bolt.Tx, d *session.Delivery) error {
	if err := del(tx, bucketSessionDeliv, []byte(d.SessionID+d.WebhookID)); err != nil {
		return err
	}
	if err := del(tx, bucketDeliveries, []byte("damaged/"+d.WebhookID)); err != nil {
		return err
	}
	return del(tx, bucketDeliveries, []byte(d.WebhookID))
}

// deleteTransaction deletes a session's transaction and its index
// entries.
func deleteTransaction(tx *bolt.Tx, id string) error {
	t := new(session.Transaction)
	if err := get(tx, bucketTransactions, []byte(id), t); err != nil {
		if errors.Is(err, session.ErrNotFound) {
			return nil
		}
		return err
	}
	if err := del(tx, bucketMerchantTxs, []byte(t.MerchantID+t.ID)); err != nil {
		return err
	}
	if t.MerchantReference != "" {
		if err := del(tx, bucketTxRefs, prefixKey(t.MerchantID, t.MerchantReference, t.ID)); err != nil {
			return err
		}
	}
	if t.OriginalTransactionID != "" {
		if err := del(tx, bucketRefunds, []byte(t.OriginalTransactionID+t.ID)); err != nil {
			return err
		}
	}
	return del(tx, bucketTransactions, []byte(id))
}

// deleteSessionAccount deletes the bank account with the id if it was
// stored by the session (an end user's pick).
func deleteSessionAccount(tx *bolt.Tx, id, sessionID string) error {
	a := new(session.Account)
	if err := get(tx, bucketAccounts, []byte(id), a); err != nil {
		if errors.Is(err, session.ErrNotFound) {
			return nil
		}
		return err
	}
	if a.SessionID != sessionID {
		return nil
	}
	if err := del(tx, bucketCustomerAccounts, prefixKey(a.MerchantID, a.CustomerID, a.ID)); err != nil {
		return err
	}
	return del(tx, bucketAccounts, []byte(id))
}

// hasPrefix reports whether a key of the bucket starts with prefix (not
// empty).
func hasPrefix(tx *bolt.Tx, bucket []byte, prefix string) bool {
	if prefix == "" {
		return false
	}
	k, _ := tx.Bucket(bucket).Cursor().Seek([]byte(prefix))
	return k != nil && bytes.HasPrefix(k, []byte(prefix))
}
