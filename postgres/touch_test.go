package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/sessiond/sessiond/postgres/pgtest"
	"github.com/sessiond/sessiond/session"
)

// TestTouchesWrittenTogether: touches are held, seen by the DB's own reads
// at once and written to the database together; a write that finds a
// session's row locked gives up and is written again later, without
// waiting for the lock; Close writes what is held.
func TestTouchesWrittenTogether(t *testing.T) {
	url := pgtest.URL(t)
	ctx := context.Background()
	a := openReplica(t, url, &feedLog{})
	b, err := Open(ctx, url, Options{TouchInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, id := range []string{"s1", "s2"} {
		if err := a.Save(ctx, &session.Change{Session: newSession(id, 1)}); err != nil {
			t.Fatal(err)
		}
	}
	stored := func(id string) (ip string, version int) {
		t.Helper()
		var p *string
		if err := a.pool.QueryRow(ctx, "SELECT data->>'ip', version FROM sessions WHERE id = $1", id).Scan(&p, &version); err != nil {
			t.Fatal(err)
		}
		if p != nil {
			ip = *p
		}
		return ip, version
	}

	// b has read neither session: its touches ask the database whether
	// they are stored.
	at := t0.Add(time.Minute)
	for _, id := range []string{"s1", "s2"} {
		if err := b.Touch(ctx, id, at, session.Client{IP: "198.51.100.1", UserAgent: "phone"}); err != nil {
			t.Fatal(err)
		}
	}
	if ip, _ := stored("s1"); ip != "" {
		t.Fatalf("a touch was written at once: ip %q stored", ip)
	}
	if got, err := b.Session(ctx, "s1"); err != nil || got.IP != "198.51.100.1" || !got.LastRequest.Equal(at) {
		t.Fatalf("b's read of its held touch: %+v, %v", got, err)
	}

	// Another transaction holds s2's row: the write gives up.
	lock, err := a.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Exec(ctx, "SELECT 1 FROM sessions WHERE id = 's2' FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	if err := b.FlushTouches(); err == nil {
		t.Error("a write of touches waited out a locked row")
	}
	if ip, _ := stored("s1"); ip != "" {
		t.Errorf("a failed write of touches left s1's: ip %q", ip)
	}
	if got, err := b.Session(ctx, "s2"); err != nil || got.IP != "198.51.100.1" {
		t.Errorf("b's read after a failed write: %+v, %v, want the touch still held", got, err)
	}
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.FlushTouches(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"s1", "s2"} {
		if ip, version := stored(id); ip != "198.51.100.1" || version != 1 {
			t.Errorf("%s stored ip %q at version %d, want the touch at version 1", id, ip, version)
		}
	}

	// Close writes what is held.
	if err := b.Touch(ctx, "s1", at.Add(time.Minute), session.Client{IP: "203.0.113.7"}); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if ip, _ := stored("s1"); ip != "203.0.113.7" {
		t.Errorf("after Close: s1 stored ip %q, want the touch held", ip)
	}
}
