package session_test

import (
	"context"
	"testing"

	"github.com/sessiond/sessiond/session"
)

func TestFeed(t *testing.T) {
	f := session.NewFeed()
	fast, slow := f.Subscribe(10), f.Subscribe(3)
	for v := 1; v <= 5; v++ {
		f.Publish(&session.Change{Session: &session.Session{Version: v}})
	}
	cs, lost := fast.Take()
	if len(cs) != 5 || lost != 0 || cs[0].Session.Version != 1 || cs[4].Session.Version != 5 {
		t.Errorf("fast subscriber: %d changes, %d lost, want 5 in order, none lost", len(cs), lost)
	}
	cs, lost = slow.Take()
	if len(cs) != 3 || lost != 2 || cs[0].Session.Version != 3 {
		t.Errorf("slow subscriber: %d changes, %d lost, want the newest 3 and 2 lost", len(cs), lost)
	}
	// A subscriber nobody reads never slows publishing: a million
	// publishes into a buffer of 3 (this would take minutes if dropping
	// copied the queue).
	for range 1_000_000 {
		f.Publish(&session.Change{})
	}
	if _, lost := slow.Take(); lost != 1_000_000-3 {
		t.Errorf("lost %d, want %d", lost, 1_000_000-3)
	}
	// Follow delivers in order and returns once the subscription closes.
	done := make(chan []int)
	sub := f.Subscribe(100)
	go func() {
		var got []int
		sub.Follow(context.Background(), func(c *session.Change) { got = append(got, c.Session.Version) }, nil)
		done <- got
	}()
	for v := 1; v <= 3; v++ {
		f.Publish(&session.Change{Session: &session.Session{Version: v}})
	}
	sub.Close()
	got := <-done
	if len(got) > 3 {
		t.Errorf("Follow got %v", got)
	}
	for i, v := range got {
		if v != i+1 {
			t.Errorf("Follow got %v, want in order", got)
		}
	}
}
