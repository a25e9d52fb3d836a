package session

import (
	"errors"
	"testing"
	"time"
)

// TestTouchBuffer: reads see the latest touch held, also while it is
// being written; a failed write holds its touches again, under any later
// one; Stop writes what is held.
func TestTouchBuffer(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	writes := make(chan map[string]Touch)
	results := make(chan error)
	b := StartTouchBuffer(time.Hour, func(held map[string]Touch) error {
		writes <- held
		return <-results
	})
	read := func() *Session {
		s := &Session{ID: "s1", LastRequest: t0}
		b.Merge(s)
		return s
	}

	b.Add("s1", Touch{At: t0.Add(2 * time.Second), Client: Client{IP: "192.0.2.2", UserAgent: "phone"}})
	b.Add("s1", Touch{At: t0.Add(time.Second), Client: Client{IP: "192.0.2.1"}}) // earlier: not kept
	if s := read(); !s.LastRequest.Equal(t0.Add(2*time.Second)) || s.IP != "192.0.2.2" || s.UserAgent != "phone" {
		t.Fatalf("read %v %q %q, want the later touch", s.LastRequest, s.IP, s.UserAgent)
	}
	// A touch older than the request read changes nothing.
	old := &Session{ID: "s1", LastRequest: t0.Add(time.Minute), IP: "198.51.100.1"}
	b.Merge(old)
	if old.IP != "198.51.100.1" {
		t.Errorf("an older touch replaced the request read: ip %q", old.IP)
	}

	// A failed write: merged while written, then held again; a later
	// touch added meanwhile wins.
	flushed := make(chan error)
	go func() { flushed <- b.Flush() }()
	held := <-writes
	if len(held) != 1 || held["s1"].Client.IP != "192.0.2.2" {
		t.Fatalf("write got %v, want the one touch held", held)
	}
	if s := read(); s.IP != "192.0.2.2" {
		t.Errorf("read ip %q while the touch was written, want it", s.IP)
	}
	b.Add("s2", Touch{At: t0, Client: Client{IP: "203.0.113.2"}})
	b.Add("s1", Touch{At: t0.Add(3 * time.Second), Client: Client{IP: "192.0.2.3"}})
	results <- errors.New("disk full")
	if err := <-flushed; err == nil {
		t.Error("Flush did not return the write's error")
	}
	if s := read(); s.IP != "192.0.2.3" {
		t.Errorf("after a failed write: ip %q, want the later touch", s.IP)
	}

	// A write that succeeds leaves nothing held.
	go func() { flushed <- b.Flush() }()
	held = <-writes
	if len(held) != 2 || held["s1"].Client.IP != "192.0.2.3" || held["s2"].Client.IP != "203.0.113.2" {
		t.Fatalf("second write got %v, want both sessions' latest", held)
	}
	results <- nil
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	if s := read(); s.IP != "" || !s.LastRequest.Equal(t0) {
		t.Errorf("after the write: read %v %q, want nothing merged", s.LastRequest, s.IP)
	}

	// Stop writes what is held; with nothing held, Flush writes nothing.
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	b.Add("s3", Touch{At: t0, Client: Client{IP: "192.0.2.9"}})
	stopped := make(chan struct{})
	go func() { b.Stop(); close(stopped) }()
	if held := <-writes; held["s3"].Client.IP != "192.0.2.9" {
		t.Errorf("Stop wrote %v, want the touch held", held)
	}
	results <- nil
	<-stopped
}
