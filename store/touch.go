package store

import (
	"context"

	"github.com/sessiond/sessiond/session"
	bolt "go.etcd.io/bbolt"
)

// writeTouches writes the touches held, every page view's request, in one
// transaction (see session.TouchBuffer). Each is applied to the session as
// stored then, at its stored version, and only if it is later than the
// request stored: a touch never undoes a newer save.
func (db *DB) writeTouches(held map[string]session.Touch) error {
	ids := make([]string, 0, len(held))
	for id := range held {
		ids = append(ids, id)
	}
	return db.submit(context.Background(), newScopedWrite(func(tx *bolt.Tx, _ *write) error {
		sessions := wbucket(tx, bucketSessions)
		for id, t := range held {
			cur := sessions.Get([]byte(id))
			if cur == nil {
				continue
			}
			s, err := decodeSession(cur)
			if err != nil {
				return err
			}
			if !t.At.After(s.LastRequest) {
				continue
			}
			s.LastRequest, s.IP, s.UserAgent = t.At, t.Client.IP, t.Client.UserAgent
			v, err := encodeSession(s)
			if err != nil {
				return err
			}
			if err := sessions.Put([]byte(id), v); err != nil {
				return err
			}
		}
		return nil
	}, ids...))
}

// FlushTouches writes the touches held now, as the writer does every
// interval.
func (db *DB) FlushTouches() { db.touches.Flush() }
