package session

import (
	"sync"
	"time"
)

// Touch is the end user's latest request on a session, as Store.Touch
// records it.
type Touch struct {
	At     time.Time
	Client Client
}

// TouchBuffer holds a store's touches between its writes of them, so that
// a page view costs no write of its own: Add holds a touch, Merge shows
// the held ones to a read, and a goroutine hands them to the store's write
// every interval, and once more on Stop. A touch being written is still
// merged until its write returns. A write that fails gives its touches
// back, to be written with the next; a crash loses what is held, at most
// one interval of touches.
type TouchBuffer struct {
	write func(map[string]Touch) error

	mu      sync.Mutex
	held    map[string]Touch
	writing map[string]Touch

	flushing sync.Mutex // one write at a time
	stop     chan struct{}
	done     chan struct{}
}

// StartTouchBuffer returns a TouchBuffer that calls write with the touches
// held, by session id, every interval; write must apply each only where
// it is later than the request stored.
func StartTouchBuffer(interval time.Duration, write func(map[string]Touch) error) *TouchBuffer {
	b := &TouchBuffer{write: write, held: map[string]Touch{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-b.stop:
				b.Flush()
				return
			case <-t.C:
				b.Flush()
			}
		}
	}()
	return b
}

// Stop writes what is held and stops the writer.
func (b *TouchBuffer) Stop() {
	close(b.stop)
	<-b.done
}

// Add holds the touch unless a later one of the session is held.
func (b *TouchBuffer) Add(id string, t Touch) {
	b.mu.Lock()
	b.addLocked(id, t)
	b.mu.Unlock()
}

func (b *TouchBuffer) addLocked(id string, t Touch) {
	if old, ok := b.held[id]; !ok || t.At.After(old.At) {
		b.held[id] = t
	}
}

// Merge applies to s, a session just read, the latest touch held or being
// written for it, if that is later than the request s records.
func (b *TouchBuffer) Merge(s *Session) {
	b.mu.Lock()
	t, ok := b.held[s.ID]
	if w, in := b.writing[s.ID]; in && (!ok || w.At.After(t.At)) {
		t, ok = w, true
	}
	b.mu.Unlock()
	if ok && t.At.After(s.LastRequest) {
		s.LastRequest, s.IP, s.UserAgent = t.At, t.Client.IP, t.Client.UserAgent
	}
}

// Flush writes the touches held now, as the writer does every interval,
// and returns the write's error; the touches of a failed write are held
// again.
func (b *TouchBuffer) Flush() error {
	b.flushing.Lock()
	defer b.flushing.Unlock()
	b.mu.Lock()
	if len(b.held) == 0 {
		b.mu.Unlock()
		return nil
	}
	b.writing, b.held = b.held, map[string]Touch{}
	writing := b.writing
	b.mu.Unlock()
	err := b.write(writing)
	b.mu.Lock()
	if err != nil {
		for id, t := range writing {
			b.addLocked(id, t)
		}
	}
	b.writing = nil
	b.mu.Unlock()
	return err
}
