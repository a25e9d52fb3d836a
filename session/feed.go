package session

import (
	"context"
	"sync"
)

// Publisher is what a store needs of the change feed: somewhere to hand
// each committed change, in commit order. Publish must not block.
type Publisher interface {
	Publish(cs ...*Change)
}

// Changes is what consumers need of the change feed (the WebSocket hub,
// the callback engine, the sandbox, metrics): a subscription to every
// change committed from then on.
type Changes interface {
	Subscribe(buffer int) *Subscription
}

// Feed carries committed changes from the store that commits them to the
// subscriptions that follow them. Make it before the store opens, hand it
// to the store as its Publisher and to the consumers as their Changes.
// Publishing never waits for a consumer: each subscription queues up to its
// buffer, and a subscription that falls further behind loses the oldest
// changes and is told how many.
type Feed struct {
	mu   sync.Mutex
	subs map[*Subscription]struct{}
}

var (
	_ Publisher = (*Feed)(nil)
	_ Changes   = (*Feed)(nil)
)

// NewFeed returns a Feed without subscriptions.
func NewFeed() *Feed { return &Feed{subs: map[*Subscription]struct{}{}} }

// Publish queues cs, committed in this order, on every subscription. It
// never blocks.
func (f *Feed) Publish(cs ...*Change) {
	if len(cs) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range f.subs {
		s.push(cs)
	}
}

// Subscribe returns a subscription that receives every change published
// after it returns, queueing up to buffer of them (at least 1). Call Close
// when finished.
func (f *Feed) Subscribe(buffer int) *Subscription {
	s := &Subscription{feed: f, max: max(buffer, 1), ready: make(chan struct{}, 1)}
	f.mu.Lock()
	f.subs[s] = struct{}{}
	f.mu.Unlock()
	return s
}

// Subscription is one consumer's queue of committed changes.
type Subscription struct {
	feed  *Feed
	max   int
	ready chan struct{} // holds a token while changes are queued

	mu     sync.Mutex
	queue  []*Change
	lost   int
	closed bool
}

func (s *Subscription) push(cs []*Change) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.queue = append(s.queue, cs...)
	if over := len(s.queue) - s.max; over > 0 {
		// Reslicing drops the oldest in O(1); the next growth of the
		// queue copies only what is left.
		s.lost += over
		s.queue = s.queue[over:]
	}
	s.mu.Unlock()
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// Ready returns a channel that receives when changes are queued.
func (s *Subscription) Ready() <-chan struct{} { return s.ready }

// Take returns the queued changes, oldest first, and how many were lost
// before them because the queue was full.
func (s *Subscription) Take() (cs []*Change, lost int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs, lost = s.queue, s.lost
	s.queue, s.lost = nil, 0
	return cs, lost
}

// Follow calls f with every change taken, in order, and lost (if set) with
// each count of lost changes, until ctx is done or the subscription is
// closed; then it returns.
func (s *Subscription) Follow(ctx context.Context, f func(*Change), lost func(int)) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.ready:
		}
		cs, n := s.Take()
		if n > 0 && lost != nil {
			lost(n)
		}
		for _, c := range cs {
			f(c)
		}
		s.mu.Lock()
		closed := s.closed
		s.mu.Unlock()
		if closed {
			return
		}
	}
}

// Close ends the subscription: nothing more is queued, and Follow returns.
func (s *Subscription) Close() {
	s.feed.mu.Lock()
	delete(s.feed.subs, s)
	s.feed.mu.Unlock()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	select {
	case s.ready <- struct{}{}:
	default:
	}
}
