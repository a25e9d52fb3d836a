package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/sessiond/sessiond/session"
	bolt "go.etcd.io/bbolt"
)

// The outbox keeps each delivery under its webhook id, and two indexes of
// the pending ones: host_due, by host and then next attempt, so that the
// due deliveries of each host are the first keys of its range and a claim
// reads only what it claims; and pending, by creation, for the gauges.

// hostPrefix is the start of a host's range in host_due.
func hostPrefix(host string) []byte {
	k := make([]byte, 2, 2+len(host)+8+40)
	binary.BigEndian.PutUint16(k, uint16(len(host)))
	return append(k, host...)
}

func hostDueKey(d *session.Delivery) []byte {
	k := hostPrefix(d.Host())
	k = binary.BigEndian.AppendUint64(k, uint64(d.NextAttempt.UnixNano()))
	return append(k, d.WebhookID...)
}

// splitHostDue returns the host, the next attempt and the webhook id of a
// host_due key.
func splitHostDue(k []byte) (host string, at uint64, id string, ok bool) {
	if len(k) < 2 {
		return "", 0, "", false
	}
	n := int(binary.BigEndian.Uint16(k))
	if len(k) < 2+n+8 {
		return "", 0, "", false
	}
	return string(k[2 : 2+n]), binary.BigEndian.Uint64(k[2+n:]), string(k[2+n+8:]), true
}

// putDelivery writes a delivery (v is its JSON) and keeps the indexes and
// w's count of pending deliveries in step; old is the stored version it
// replaces, nil for a new one.
func putDelivery(tx *bolt.Tx, w *write, d *session.Delivery, v []byte, old *session.Delivery) error {
	due, pending := wbucket(tx, bucketHostDue), wbucket(tx, bucketPending)
	if old != nil && old.Status == session.DeliveryPending {
		if err := due.Delete(hostDueKey(old)); err != nil {
			return fmt.Errorf("store: unindex delivery %s: %w", d.WebhookID, err)
		}
		if err := pending.Delete(timeKey(old.Created, old.WebhookID)); err != nil {
			return fmt.Errorf("store: unindex delivery %s: %w", d.WebhookID, err)
		}
		w.pending--
	}
	if err := wbucket(tx, bucketDeliveries).Put([]byte(d.WebhookID), v); err != nil {
		return fmt.Errorf("store: put delivery %s: %w", d.WebhookID, err)
	}
	if d.Status == session.DeliveryPending {
		if err := due.Put(hostDueKey(d), nil); err != nil {
			return fmt.Errorf("store: index delivery %s: %w", d.WebhookID, err)
		}
		if err := pending.Put(timeKey(d.Created, d.WebhookID), nil); err != nil {
			return fmt.Errorf("store: index delivery %s: %w", d.WebhookID, err)
		}
		w.pending++
	}
	if old == nil {
		if err := wbucket(tx, bucketSessionDeliv).Put([]byte(d.SessionID+d.WebhookID), nil); err != nil {
			return fmt.Errorf("store: index delivery %s: %w", d.WebhookID, err)
		}
	}
	return nil
}

// ClaimDeliveries claims due deliveries host by host: for each host with
// room it reads the first keys of the host's range, skipping the few that
// are claimed, so a claim costs what it claims plus one seek per host,
// whatever the backlog.
func (db *DB) ClaimDeliveries(ctx context.Context, c session.Claim) (session.Claimed, error) {
	var out session.Claimed
	type bad struct {
		key  []byte
		id   string
		why  string
		host string
	}
	var damaged []bad
	// claims.mu is held while the due list is read and the claims taken,
	// and let go before any write below: the committer takes it too,
	// after each commit, so a write waited on under it would never end.
	db.claims.mu.Lock()
	now := uint64(c.Now.UnixNano())
	next := uint64(0)
	err := db.view(func(tx *bolt.Tx) error {
		cur := tx.Bucket(bucketHostDue).Cursor()
		deliveries := tx.Bucket(bucketDeliveries)
		k, _ := cur.First()
		for k != nil && len(out.Deliveries) < c.Limit {
			host, _, _, ok := splitHostDue(k)
			if !ok {
				return fmt.Errorf("store: bad due key %x", k)
			}
			prefix := hostPrefix(host)
			room := c.PerHost - c.Busy[host]
			for ; k != nil && bytes.HasPrefix(k, prefix) && room > 0 && len(out.Deliveries) < c.Limit; k, _ = cur.Next() {
				_, at, id, _ := splitHostDue(k)
				if at > now {
					if next == 0 || at < next {
						next = at
					}
					break
				}
				if db.claims.heldLocked(claimDelivery, id, c.Owner, c.Now) {
					continue
				}
				d := new(session.Delivery)
				v := deliveries.Get([]byte(id))
				switch {
				case v == nil:
					damaged = append(damaged, bad{bytes.Clone(k), id, "the due index names a delivery that is not stored", host})
					continue
				case json.Unmarshal(v, d) != nil || d.WebhookID != id || d.Status != session.DeliveryPending:
					why := "the stored delivery cannot be decoded"
					if err := json.Unmarshal(v, new(session.Delivery)); err != nil {
						why += ": " + err.Error()
					} else {
						why = "the stored delivery does not match its due entry"
					}
					damaged = append(damaged, bad{bytes.Clone(k), id, why, host})
					continue
				}
				out.Deliveries = append(out.Deliveries, d)
				room--
			}
			// On to the next host.
			k, _ = cur.Seek(append(prefix, 0xff))
		}
		return nil
	})
	if err != nil {
		db.claims.mu.Unlock()
		return session.Claimed{}, err
	}
	until := c.Now.Add(c.Lease)
	for _, d := range out.Deliveries {
		db.claims.takeLocked(claimDelivery, d.WebhookID, c.Owner, until)
	}
	db.claims.mu.Unlock()
	if next != 0 {
		out.Next = time.Unix(0, int64(next))
	}
	for _, b := range damaged {
		d := &session.Delivery{WebhookID: b.id, Status: session.DeliveryFailed, LastError: "set aside: " + b.why}
		if err := db.setAside(ctx, b.key, d); err != nil {
			// Nothing claimed here is handed out with an error: let the
			// claims go, so the next claim finds them at once.
			for _, d := range out.Deliveries {
				db.claims.release(claimDelivery, d.WebhookID, c.Owner)
			}
			return session.Claimed{}, err
		}
		out.Damaged = append(out.Damaged, d)
	}
	return out, nil
}

// setAside takes an unreadable delivery out of the indexes, keeping its
// stored bytes under "damaged/<id>" beside a failed delivery that says why.
func (db *DB) setAside(ctx context.Context, dueKey []byte, d *session.Delivery) error {
	return db.submit(ctx, newWrite(func(tx *bolt.Tx, w *write) error {
		deliveries := wbucket(tx, bucketDeliveries)
		id := []byte(d.WebhookID)
		raw := deliveries.Get(id)
		old := new(session.Delivery)
		readable := raw != nil && json.Unmarshal(raw, old) == nil
		if readable {
			// Readable but not what its due entry says: keep what it says.
			d.MerchantID, d.SessionID, d.TransactionID, d.URL = old.MerchantID, old.SessionID, old.TransactionID, old.URL
			d.SessionState, d.TransactionState, d.Attempts, d.Created = old.SessionState, old.TransactionState, old.Attempts, old.Created
		}
		if err := wbucket(tx, bucketHostDue).Delete(dueKey); err != nil {
			return err
		}
		// The pending entry of a delivery that cannot be read cannot be
		// found by its creation time: look for it by id (this is rare).
		pending := wbucket(tx, bucketPending)
		if readable && old.Status == session.DeliveryPending && pending.Get(timeKey(old.Created, old.WebhookID)) != nil {
			if err := pending.Delete(timeKey(old.Created, old.WebhookID)); err != nil {
				return err
			}
			w.pending--
		} else if !readable {
			c := pending.Cursor()
			for k, _ := c.First(); k != nil; k, _ = c.Next() {
				if string(k[8:]) == d.WebhookID {
					if err := c.Delete(); err != nil {
						return err
					}
					w.pending--
					break
				}
			}
		}
		if raw != nil {
			if err := deliveries.Put(append([]byte("damaged/"), id...), bytes.Clone(raw)); err != nil {
				return err
			}
		}
		v, err := json.Marshal(d)
		if err != nil {
			return err
		}
		return deliveries.Put(id, v)
	}))
}

// RecordAttempt stores the outcome of owner's attempt at a delivery it
// claimed, then ends the claim.
func (db *DB) RecordAttempt(ctx context.Context, owner string, d *session.Delivery) error {
	db.claims.mu.Lock()
	lost := db.claims.otherLocked(claimDelivery, d.WebhookID, owner)
	db.claims.mu.Unlock()
	if lost {
		return session.ErrClaimLost
	}
	v, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("store: encode delivery %s: %w", d.WebhookID, err)
	}
	// A delivery's record and indexes: no cached record changes.
	w := newScopedWrite(func(tx *bolt.Tx, w *write) error {
		old := new(session.Delivery)
		if err := get(tx, bucketDeliveries, []byte(d.WebhookID), old); err != nil {
			return err
		}
		return putDelivery(tx, w, d, v, old)
	})
	w.after = func() { db.claims.release(claimDelivery, d.WebhookID, owner) }
	return db.submit(ctx, w)
}

// ReleaseDeliveries ends owner's claims on the deliveries.
func (db *DB) ReleaseDeliveries(ctx context.Context, owner string, webhookIDs []string) error {
	for _, id := range webhookIDs {
		db.claims.release(claimDelivery, id, owner)
	}
	return nil
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

// OutboxStats returns the count of pending deliveries, kept by the
// committer, and the creation of the oldest, the first key of the pending
// index: no delivery is read.
func (db *DB) OutboxStats(ctx context.Context) (session.OutboxStats, error) {
	st := session.OutboxStats{Pending: int(db.pending.Load())}
	err := db.view(func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(bucketPending).Cursor().First(); k != nil {
			st.Oldest = time.Unix(0, int64(decodeTime(k))).UTC()
		}
		return nil
	})
	return st, err
}

// migrateDue moves the due index of older data files (next attempt +
// webhook id) into host_due and pending, once.
func migrateDue(tx *bolt.Tx) error {
	old := tx.Bucket(bucketDue)
	if old == nil {
		return nil
	}
	deliveries := tx.Bucket(bucketDeliveries)
	err := old.ForEach(func(k, _ []byte) error {
		if len(k) < 8 {
			return nil
		}
		d := new(session.Delivery)
		v := deliveries.Get(k[8:])
		if v == nil || json.Unmarshal(v, d) != nil {
			// Left out of the new indexes; nothing can claim it. It stays
			// visible in session.callbacks as it was.
			return nil
		}
		if err := tx.Bucket(bucketHostDue).Put(hostDueKey(d), nil); err != nil {
			return err
		}
		return tx.Bucket(bucketPending).Put(timeKey(d.Created, d.WebhookID), nil)
	})
	if err != nil {
		return fmt.Errorf("store: move the due index: %w", err)
	}
	return tx.DeleteBucket(bucketDue)
}
