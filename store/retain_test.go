package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/session"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/argon2"
)

// churn is a service on a bbolt file whose clock the test moves, making
// sessions the way the sandbox does: created, moved to their end, with a
// callback at each move and the sandbox's timers.
type churn struct {
	db    *DB
	path  string
	svc   *session.Service
	m     *session.Merchant
	clock *session.Clock
}

func newChurn(t *testing.T) *churn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sessiond.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	c := &churn{db: db, path: path, svc: session.NewService(db, argon2.IDKey), clock: new(session.Clock)}
	c.svc.Now, c.svc.Sandbox, c.svc.SandboxDelay = c.clock.Now, true, time.Second
	if c.m, _, err = c.svc.AddMerchant(context.Background(), "churn", session.Credentials{}); err != nil {
		t.Fatal(err)
	}
	return c
}

// made is what one finished session left in the file.
type made struct {
	id, tx   string
	webhooks []string
}

// finish creates n sessions with workers at once (so that commits are
// shared, as under load), moves each to its end, delivers its callbacks,
// and returns what they left.
func (c *churn) finish(t *testing.T, n int) []made {
	t.Helper()
	ctx := context.Background()
	out := make([]made, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	const workers = 8
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				refs := []string{"completed", "aborted", "failed"}
				amount := session.Decimal("10.00")
				st := session.StateCompleted
				p := &session.Params{Amount: &amount, CountryID: "se", MerchantReference: refs[i%len(refs)],
					Callbacks: []session.Callback{{URL: "http://127.0.0.1:1/cb", SessionState: &st}}}
				s, _, err := c.svc.Create(ctx, c.m, session.TypeDeposit, p)
				if err != nil {
					errs <- err
					return
				}
				for !s.State.Final() {
					if s, err = c.svc.SandboxAdvance(ctx, s.ID); err != nil {
						errs <- fmt.Errorf("advance %s: %w", s.ID, err)
						return
					}
				}
				out[i] = made{id: s.ID, tx: s.TransactionID}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Every callback is delivered: a pending one would keep its session.
	now := c.clock.Now()
	for {
		got, err := c.db.ClaimDeliveries(ctx, session.Claim{Owner: "t", Now: now, Lease: time.Minute, Limit: 1000, PerHost: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Deliveries) == 0 {
			break
		}
		for _, d := range got.Deliveries {
			d.Status, d.Attempts, d.NextAttempt, d.LastStatusCode = session.DeliveryDelivered, 1, time.Time{}, 200
			if err := c.db.RecordAttempt(ctx, "t", d); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range out {
		ds, err := c.db.SessionDeliveries(ctx, out[i].id)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			out[i].webhooks = append(out[i].webhooks, d.WebhookID)
		}
	}
	c.db.FlushTouches()
	return out
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// used returns the bytes of the file's pages up to the highest in use:
// the file itself grows in steps of its memory map.
func (c *churn) used(t *testing.T) int64 {
	var n int64
	if err := c.db.bolt.View(func(tx *bolt.Tx) error { n = tx.Size(); return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRetainLeavesNothing deletes old finished sessions and then walks
// every bucket of the file: no key or value may still name one of them,
// their transactions or their deliveries, and the new sessions are whole.
func TestRetainLeavesNothing(t *testing.T) {
	c := newChurn(t)
	ctx := context.Background()
	old := c.finish(t, 60)
	var withTx int
	for _, m := range old {
		if m.tx != "" {
			withTx++
		}
	}
	if withTx == 0 || len(old[0].webhooks) == 0 {
		t.Fatalf("the sessions made have no transaction (%d) or no callback (%v): the test proves nothing", withTx, old[0].webhooks)
	}
	c.clock.Advance(48 * time.Hour)
	young := c.finish(t, 10)
	n, err := c.svc.RetainOnce(ctx, 24*time.Hour)
	if err != nil || n != len(old) {
		t.Fatalf("RetainOnce = %d, %v; want %d", n, err, len(old))
	}
	var names [][]byte
	for _, m := range old {
		names = append(names, []byte(m.id))
		if m.tx != "" {
			names = append(names, []byte(m.tx))
		}
		for _, w := range m.webhooks {
			names = append(names, []byte(w))
		}
	}
	entries := 0
	err = c.db.bolt.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(bucket []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				entries++
				for _, name := range names {
					if bytes.Contains(k, name) || bytes.Contains(v, name) {
						t.Errorf("bucket %s still names %s: key %q", bucket, name, k)
					}
				}
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if entries == 0 {
		t.Fatal("the walk saw no entries")
	}
	for _, m := range young {
		if _, err := c.svc.Get(ctx, c.m, m.id); err != nil {
			t.Errorf("young session %s: %v", m.id, err)
		}
		if ds, err := c.db.SessionDeliveries(ctx, m.id); err != nil || len(ds) != len(m.webhooks) {
			t.Errorf("young session %s deliveries: %d, %v; want %d", m.id, len(ds), err, len(m.webhooks))
		}
	}
	c.db.bolt.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			t.Errorf("bbolt check after retention: %v", err)
		}
		return nil
	})
}

// TestRetainChurn makes and finishes sessions in cycles an hour apart on
// the fake clock, keeping 3h, with retention after every cycle: once it
// deletes as much as a cycle makes, bbolt reuses the freed pages and the
// file stops growing.
func TestRetainChurn(t *testing.T) {
	c := newChurn(t)
	ctx := context.Background()
	const cycles, perCycle, keep = 12, 300, 3 * time.Hour
	// The sizes after the first cycle that deleted a full cycle, and
	// after the last: the file's, and the high-water mark of its pages.
	var steady, steadyUsed, last, lastUsed int64
	for i := range cycles {
		c.finish(t, perCycle)
		n, err := c.svc.RetainOnce(ctx, keep)
		if err != nil {
			t.Fatal(err)
		}
		size, used := fileSize(t, c.path), c.used(t)
		t.Logf("cycle %2d: %d sessions made, %d deleted, file %d bytes, %d bytes of pages in use", i+1, perCycle, n, size, used)
		if n == perCycle && steady == 0 {
			steady, steadyUsed = size, used
		}
		last, lastUsed = size, used
		c.clock.Advance(time.Hour)
	}
	if steady == 0 {
		t.Fatal("retention never deleted a full cycle")
	}
	// The pages in use may wander by some dozens of pages as the freelist
	// fragments (a cycle without retention adds about 140), and the file
	// keeps the runway past them: beyond those, it must not grow.
	const usedSlack = 64 * 4096
	if last > steady+usedSlack+ahead(lastUsed) || lastUsed > steadyUsed+usedSlack {
		t.Errorf("file grew to %d bytes (%d in use) after retention started at %d (%d in use): freed pages are not reused",
			last, lastUsed, steady, steadyUsed)
	}
}

// TestRetainSkipsDamaged: a stored session that does not decode is left
// where it is (for `sessiond check` to report) and does not stop retention
// of the sessions after it.
func TestRetainSkipsDamaged(t *testing.T) {
	c := newChurn(t)
	ctx := context.Background()
	damaged := session.IDAt(c.clock.Now()) // sorts before the sessions made now
	if err := c.db.update(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSessions).Put([]byte(damaged), []byte("\x00\x00\x00\x02\x01garbage"))
	}); err != nil {
		t.Fatal(err)
	}
	old := c.finish(t, 5)
	c.clock.Advance(48 * time.Hour)
	n, err := c.svc.RetainOnce(ctx, 24*time.Hour)
	if err != nil || n != len(old) {
		t.Fatalf("RetainOnce past a damaged session = %d, %v; want %d deleted", n, err, len(old))
	}
	if err := c.db.bolt.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketSessions).Get([]byte(damaged)) == nil {
			t.Error("the damaged session was deleted")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestRetainLeavesCacheCurrent: a retention batch names the sessions it
// deletes, so a cached session it keeps is still answered from memory,
// and a deleted one is gone.
func TestRetainLeavesCacheCurrent(t *testing.T) {
	db, _ := MustOpen(t)
	ctx := context.Background()
	oldID, keptID := session.IDAt(t0), session.IDAt(t0.Add(time.Minute)) // below the cutoff
	old := newSession(oldID, 1)
	old.State = session.StateAborted
	old.Params.MerchantReference = ""
	if err := db.Save(ctx, &session.Change{Session: old}); err != nil {
		t.Fatal(err)
	}
	if err := db.Save(ctx, &session.Change{Session: newSession(keptID, 1)}); err != nil {
		t.Fatal(err)
	}
	n, _, err := db.Retain(ctx, t0.Add(time.Hour), "", 100)
	if err != nil || n != 1 {
		t.Fatalf("Retain: %d deleted, %v; want 1", n, err)
	}
	if _, txs := readCounted(t, db, func() (*session.Session, error) { return db.Session(ctx, keptID) }); txs != 0 {
		t.Errorf("the kept session after retention: %d read transactions, want 0", txs)
	}
	if _, err := db.Session(ctx, oldID); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("the deleted session: %v, want ErrNotFound", err)
	}
}
