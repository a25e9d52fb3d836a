package store

import (
	"context"
	"sync"
	"time"

	"github.com/sessiond/sessiond/session"
	bolt "go.etcd.io/bbolt"
)

// touch is the end user's latest request on a session, not yet written.
type touch struct {
	at     time.Time
	client session.Client
}

// touchBuffer holds touches between writes: every page view would
// otherwise be an fsync'd write of its own. A crash loses what it holds,
// at most one interval of touches.
type touchBuffer struct {
	mu      sync.Mutex
	held    map[string]touch
	stopped chan struct{}
	done    chan struct{}
}

func (b *touchBuffer) start(db *DB, interval time.Duration) {
	b.held = map[string]touch{}
	b.stopped = make(chan struct{})
	b.done = make(chan struct{})
	go func() {
		defer close(b.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-b.stopped:
				b.flush(db)
				return
			case <-t.C:
				b.flush(db)
			}
		}
	}()
}

// stop writes what is held and stops the writer.
func (b *touchBuffer) stop() {
	close(b.stopped)
	<-b.done
}

func (b *touchBuffer) add(id string, t touch) {
	b.mu.Lock()
	if old, ok := b.held[id]; !ok || t.at.After(old.at) {
		b.held[id] = t
	}
	b.mu.Unlock()
}

// merge applies a held touch to s, a session just read, if it is later
// than the request s records.
func (b *touchBuffer) merge(s *session.Session) {
	b.mu.Lock()
	t, ok := b.held[s.ID]
	b.mu.Unlock()
	if ok && t.at.After(s.LastRequest) {
		s.LastRequest, s.IP, s.UserAgent = t.at, t.client.IP, t.client.UserAgent
	}
}

// flush writes the held touches in one transaction. Each is applied to
// the session as stored then, at its stored version, and only if it is
// later than the request stored: a touch never undoes a newer save. If the
// write fails the touches are held again for the next one.
func (b *touchBuffer) flush(db *DB) {
	b.mu.Lock()
	held := b.held
	b.held = map[string]touch{}
	b.mu.Unlock()
	if len(held) == 0 {
		return
	}
	ids := make([]string, 0, len(held))
	for id := range held {
		ids = append(ids, id)
	}
	err := db.submit(context.Background(), newScopedWrite(func(tx *bolt.Tx, _ *write) error {
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
			if !t.at.After(s.LastRequest) {
				continue
			}
			s.LastRequest, s.IP, s.UserAgent = t.at, t.client.IP, t.client.UserAgent
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
	if err != nil {
		b.mu.Lock()
		for id, t := range held {
			if old, ok := b.held[id]; !ok || t.at.After(old.at) {
				b.held[id] = t
			}
		}
		b.mu.Unlock()
	}
}

// FlushTouches writes the touches held now, as the writer does every
// interval.
func (db *DB) FlushTouches() { db.touches.flush(db) }
