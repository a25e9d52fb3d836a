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

func refKey(merchantID, ref, sessionID string) []byte {
	k := make([]byte, 0, len(merchantID)+2+len(ref)+len(sessionID))
	k = append(k, merchantID...)
	k = binary.BigEndian.AppendUint16(k, uint16(len(ref)))
	k = append(k, ref...)
	return append(k, sessionID...)
}

// Session returns the session with the id; session.ErrNotFound. A
// session saved or read since the last write that named it is answered
// from memory, without a read transaction.
func (db *DB) Session(ctx context.Context, id string) (*session.Session, error) {
	s, ok := db.sessions.current(id)
	if !ok {
		ended := db.ended.Load()
		err := db.view(func(tx *bolt.Tx) error {
			v := tx.Bucket(bucketSessions).Get([]byte(id))
			if v == nil {
				return session.ErrNotFound
			}
			var err error
			s, err = db.sessions.get(id, v, ended)
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	db.touches.Merge(s)
	return s, nil
}

// SessionsByReference returns up to limit sessions of the merchant with
// the reference, newest first, read from the reference index.
func (db *DB) SessionsByReference(ctx context.Context, merchantID, ref string, limit int) ([]*session.Session, error) {
	prefix := refKey(merchantID, ref, "")
	var out []*session.Session
	err := db.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRefs).Cursor()
		// Session ids are time-ordered, so the newest is the last key
		// with the prefix: seek past it and walk back.
		k, _ := c.Seek(append(bytes.Clone(prefix), 0xff))
		if k == nil {
			k, _ = c.Last()
		} else {
			k, _ = c.Prev()
		}
		sessions := tx.Bucket(bucketSessions)
		for ; k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, _ = c.Prev() {
			v := sessions.Get(k[len(prefix):])
			if v == nil {
				return fmt.Errorf("store: reference index names missing session %s", k[len(prefix):])
			}
			s, err := decodeSession(v)
			if err != nil {
				return err
			}
			out = append(out, s)
		}
		return nil
	})
	for _, s := range out {
		db.touches.Merge(s)
	}
	return out, err
}

// Save writes a change in one transaction: the session, checked against
// its stored version, its transaction, its deliveries, its timers and the
// indexes. session.ErrVersionConflict if the stored version is not one
// less, or the transaction is no longer in TxFrom.
func (db *DB) Save(ctx context.Context, c *session.Change) error {
	return db.SaveBatch(ctx, []*session.Change{c})[0]
}

// SaveBatch saves each change as Save does, in one transaction as far as
// the committer's batch allows, and returns each change's result.
func (db *DB) SaveBatch(ctx context.Context, cs []*session.Change) []error {
	errs := make([]error, len(cs))
	ws := make([]*write, 0, len(cs))
	idx := make([]int, 0, len(cs))
	for i, c := range cs {
		w, err := db.changeWrite(c)
		if err != nil {
			errs[i] = err
			continue
		}
		ws = append(ws, w)
		idx = append(idx, i)
	}
	if len(ws) == 0 {
		return errs
	}
	if err := db.submitAll(ctx, ws); err != nil {
		for _, i := range idx {
			errs[i] = err
		}
		return errs
	}
	for j, w := range ws {
		errs[idx[j]] = <-w.err
	}
	return errs
}

// changeWrite encodes c and returns the write that applies it.
func (db *DB) changeWrite(c *session.Change) (*write, error) {
	e, err := encodeChange(c)
	if err != nil {
		return nil, err
	}
	w := newScopedWrite(e.apply)
	w.saved = c
	if c.Session != nil {
		// Once committed, the next read of this session can be answered
		// from memory (see DB.commit).
		w.sessions = []string{c.Session.ID}
		w.stored = &storedSession{raw: e.session, s: c.Session}
		w.after = func() { db.claims.end(claimSession, c.Session.ID) }
	}
	return w, nil
}

// encodedChange is a session change with its values encoded, done outside
// the committer so that the one writer goroutine only writes.
type encodedChange struct {
	c          *session.Change
	session    []byte
	tx         []byte
	deliveries [][]byte
}

func encodeChange(c *session.Change) (*encodedChange, error) {
	e := &encodedChange{c: c, deliveries: make([][]byte, len(c.Deliveries))}
	var err error
	if c.Session == nil && c.Transaction == nil {
		return nil, fmt.Errorf("store: a change without a session needs a transaction")
	}
	if c.Session != nil {
		if e.session, err = encodeSession(c.Session); err != nil {
			return nil, err
		}
	}
	if c.Transaction != nil {
		if e.tx, err = json.Marshal(c.Transaction); err != nil {
			return nil, fmt.Errorf("store: encode transaction %s: %w", c.Transaction.ID, err)
		}
	}
	for i, d := range c.Deliveries {
		if e.deliveries[i], err = json.Marshal(d); err != nil {
			return nil, fmt.Errorf("store: encode delivery %s: %w", d.WebhookID, err)
		}
	}
	return e, nil
}

// apply checks the session's version and the transaction's state, then
// writes the change and its index entries.
func (e *encodedChange) apply(btx *bolt.Tx, w *write) error {
	if e.c.Session != nil {
		if err := e.checkSession(btx); err != nil {
			return err
		}
	}
	if t := e.c.Transaction; t != nil && e.c.TxFrom != nil {
		var stored session.Transaction
		if err := get(btx, bucketTransactions, []byte(t.ID), &stored); err != nil {
			return err
		}
		if stored.State != *e.c.TxFrom {
			return session.ErrVersionConflict // moved meanwhile
		}
	} else if t != nil && btx.Bucket(bucketTransactions).Get([]byte(t.ID)) != nil {
		return session.ErrVersionConflict // a new transaction whose id is taken
	}
	if e.c.Session != nil {
		if err := e.putSession(btx); err != nil {
			return err
		}
	}
	if e.tx != nil {
		if err := wbucket(btx, bucketTransactions).Put([]byte(e.c.Transaction.ID), e.tx); err != nil {
			return fmt.Errorf("store: put transaction %s: %w", e.c.Transaction.ID, err)
		}
		if e.c.TxFrom == nil {
			if err := indexTransaction(btx, e.c.Transaction); err != nil {
				return err
			}
		}
	}
	if a := e.c.Account; a != nil {
		if err := putAccount(btx, a); err != nil {
			return err
		}
	}
	for i, d := range e.c.Deliveries {
		if err := putDelivery(btx, w, d, e.deliveries[i], nil); err != nil {
			return err
		}
	}
	for _, t := range e.c.Timers {
		if err := putTimer(btx, t); err != nil {
			return err
		}
	}
	return nil
}

func (e *encodedChange) checkSession(btx *bolt.Tx) error {
	s := e.c.Session
	cur := btx.Bucket(bucketSessions).Get([]byte(s.ID))
	switch {
	case s.Version == 1 && cur != nil:
		return session.ErrVersionConflict
	case s.Version > 1 && cur == nil:
		return session.ErrNotFound
	case s.Version > 1 && binary.BigEndian.Uint32(cur) != uint32(s.Version-1):
		return session.ErrVersionConflict
	}
	return nil
}

func (e *encodedChange) putSession(btx *bolt.Tx) error {
	s := e.c.Session
	if err := wbucket(btx, bucketSessions).Put([]byte(s.ID), e.session); err != nil {
		return fmt.Errorf("store: put session %s: %w", s.ID, err)
	}
	expiryKey := timeKey(s.Expires, s.ID)
	if s.Version == 1 {
		if ref := s.Params.MerchantReference; ref != "" {
			if err := wbucket(btx, bucketRefs).Put(refKey(s.MerchantID, ref, s.ID), nil); err != nil {
				return fmt.Errorf("store: index session %s: %w", s.ID, err)
			}
		}
		if !s.State.Final() {
			if err := wbucket(btx, bucketExpiry).Put(expiryKey, nil); err != nil {
				return fmt.Errorf("store: index session %s: %w", s.ID, err)
			}
		}
	} else if s.State.Final() {
		if err := wbucket(btx, bucketExpiry).Delete(expiryKey); err != nil {
			return fmt.Errorf("store: unindex session %s: %w", s.ID, err)
		}
	}
	return nil
}

// Touch records the end user's latest request on the session. It is held
// in memory (and seen by reads) until the next write of touches, at most
// TouchInterval later; session.ErrNotFound if the session is not stored.
func (db *DB) Touch(ctx context.Context, id string, at time.Time, c session.Client) error {
	found := db.sessions.has(id) // just read, mostly
	if !found {
		if err := db.view(func(tx *bolt.Tx) error {
			found = tx.Bucket(bucketSessions).Get([]byte(id)) != nil
			return nil
		}); err != nil {
			return err
		}
	}
	if !found {
		return session.ErrNotFound
	}
	db.touches.Add(id, session.Touch{At: at, Client: c})
	return nil
}

// ClaimDue returns up to limit non-final sessions due at or before now,
// earliest first, that no other owner holds, read from the expiry index:
// the cost is in the sessions due, not the sessions stored.
func (db *DB) ClaimDue(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]*session.Session, error) {
	var out []*session.Session
	db.claims.mu.Lock()
	defer db.claims.mu.Unlock()
	ended := db.ended.Load()
	err := db.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketExpiry).Cursor()
		sessions := tx.Bucket(bucketSessions)
		for k, _ := c.First(); k != nil && beforeOrAt(k, now) && len(out) < limit; k, _ = c.Next() {
			id := string(k[8:])
			if db.claims.heldLocked(claimSession, id, owner, now) {
				continue
			}
			v := sessions.Get(k[8:])
			if v == nil {
				return fmt.Errorf("store: expiry index names missing session %s", id)
			}
			s, err := db.sessions.get(id, v, ended)
			if err != nil {
				return err
			}
			out = append(out, s)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, s := range out {
		db.claims.takeLocked(claimSession, s.ID, owner, now.Add(lease))
		db.touches.Merge(s)
	}
	return out, nil
}

// Transaction returns the transaction with the id; session.ErrNotFound.
func (db *DB) Transaction(ctx context.Context, id string) (*session.Transaction, error) {
	t := new(session.Transaction)
	err := db.view(func(tx *bolt.Tx) error { return get(tx, bucketTransactions, []byte(id), t) })
	if err != nil {
		return nil, err
	}
	return t, nil
}
