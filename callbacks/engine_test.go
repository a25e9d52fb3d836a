package callbacks_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/sessiond/sessiond/callbacks"
	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/store"
)

// countingReceiver counts the POSTs of each webhook id.
type countingReceiver struct {
	mu    sync.Mutex
	count map[string]int
	total atomic.Int64
}

func (c *countingReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.count[r.Header.Get("webhook-id")]++
	c.mu.Unlock()
	c.total.Add(1)
}

// waitFor polls cond until it holds, failing after the deadline.
func waitFor(tb testing.TB, within time.Duration, what string, cond func() bool) {
	tb.Helper()
	end := time.Now().Add(within)
	for !cond() {
		if time.Now().After(end) {
			tb.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestExactlyOncePerDelivery is the duplicate defect as reported: 3 453
// deliveries to a healthy receiver produced 6 025 POSTs, because the
// dispatcher worked from a stale snapshot. Here 5 000 deliveries are saved
// by 8 writers while the dispatcher runs, next to session writes without
// callbacks, and the receiver gets exactly one POST per delivery.
func TestExactlyOncePerDelivery(t *testing.T) {
	const n, writers = 5000, 8
	feed := session.NewFeed()
	db, err := store.Open(t.TempDir()+"/s.db", store.Options{Feed: feed})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	rcv := &countingReceiver{count: map[string]int{}}
	rc := newReceiver(t, rcv.ServeHTTP)
	go func() {
		for range rc.got {
		}
	}()
	m := addMerchant(t, db)
	disp := callbacks.New(db, callbacks.Config{AllowPrivate: true})
	ctx, cancel := context.WithCancel(context.Background())
	var workers sync.WaitGroup
	workers.Add(2)
	sub := feed.Subscribe(1024)
	go func() { defer workers.Done(); disp.Follow(ctx, sub) }()
	go func() { defer workers.Done(); disp.Run(ctx) }()
	t.Cleanup(func() { cancel(); workers.Wait() })

	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += writers {
				now := time.Now()
				addDeliveries(t, db, m.ID, rc.URL+"/cb", now, 1)
				// Session load beside the callbacks: a create with none.
				s := &session.Session{ID: newID(), Type: session.TypeDeposit, MerchantID: m.ID, Created: now, Expires: now.Add(time.Hour), Version: 1}
				if err := db.Save(context.Background(), &session.Change{Session: s}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	waitFor(t, 2*time.Minute, "every delivery delivered", func() bool {
		st, err := db.OutboxStats(context.Background())
		return err == nil && st.Pending == 0
	})
	cancel()
	workers.Wait()
	if got := rcv.total.Load(); got != n {
		t.Errorf("%d POSTs for %d deliveries", got, n)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.count) != n {
		t.Errorf("%d webhook ids POSTed, want %d", len(rcv.count), n)
	}
	for id, c := range rcv.count {
		if c != 1 {
			t.Errorf("%s POSTed %d times", id, c)
		}
	}
}

// failingRecords is the real store, whose RecordAttempt fails (as on a
// full disk) until healed.
type failingRecords struct {
	*store.DB
	failing atomic.Bool
	fails   atomic.Int64
}

var errDiskFull = errors.New("write: no space left on device")

func (f *failingRecords) RecordAttempt(ctx context.Context, owner string, d *session.Delivery) error {
	if f.failing.Load() {
		f.fails.Add(1)
		return errDiskFull
	}
	return f.DB.RecordAttempt(ctx, owner, d)
}

// TestUnrecordedOutcomeBacksOff is the disk-full defect as reported: when
// an outcome could not be recorded the same callbacks were POSTed again in
// a loop (569 duplicates in 5 s). Here the store refuses to record for a
// while: each delivery is POSTed once, the dispatcher says it is stuck and
// retries the write with a backoff, and once the store heals every outcome
// is recorded without a second POST. The error is logged once.
func TestUnrecordedOutcomeBacksOff(t *testing.T) {
	db := &failingRecords{DB: mustOpen(t)}
	db.failing.Store(true)
	rcv := &countingReceiver{count: map[string]int{}}
	rc := newReceiver(t, rcv.ServeHTTP)
	m := addMerchant(t, db.DB)
	const n = 20
	ds := addDeliveries(t, db.DB, m.ID, rc.URL+"/cb", time.Now(), n)
	var logs syncBuffer
	disp := callbacks.New(db, callbacks.Config{AllowPrivate: true, Log: zerolog.New(&logs)})
	stop, done := runDispatcher(t, disp)

	waitFor(t, deadline, "every delivery POSTed", func() bool { return rcv.total.Load() == n })
	waitFor(t, deadline, "the dispatcher stuck", func() bool { return disp.Stuck() != nil })
	// Enough failed writes for a loop to have shown itself many times over.
	waitFor(t, deadline, "writes retried", func() bool { return db.fails.Load() >= 3*n })
	if got := rcv.total.Load(); got != n {
		t.Fatalf("%d POSTs while outcomes could not be recorded, want %d", got, n)
	}
	db.failing.Store(false)
	for _, d := range ds {
		waitFor(t, 10*time.Second, "outcome recorded", func() bool {
			return stored(t, db.DB, d).Status == session.DeliveryDelivered
		})
	}
	waitFor(t, deadline, "the dispatcher not stuck", func() bool { return disp.Stuck() == nil })
	stop()
	waitRun(t, done)
	if got := rcv.total.Load(); got != n {
		t.Errorf("%d POSTs in all, want %d", got, n)
	}
	if got := strings.Count(logs.String(), "cannot record callback attempt"); got != n {
		t.Errorf("the write failure logged %d times for %d deliveries, want once each", got, n)
	}
}

// damagedOnce is the real store, whose first claim also reports a
// delivery it could not read and has set aside, as the store does.
type damagedOnce struct {
	*store.DB
	once sync.Once
}

func (d *damagedOnce) ClaimDeliveries(ctx context.Context, c session.Claim) (session.Claimed, error) {
	got, err := d.DB.ClaimDeliveries(ctx, c)
	d.once.Do(func() {
		got.Damaged = append(got.Damaged, &session.Delivery{WebhookID: "msg_damaged", Status: session.DeliveryFailed, LastError: "set aside: the stored delivery cannot be decoded"})
	})
	return got, err
}

// TestDamagedDeliveryDelaysNothing is the defect as reported: one
// undecodable delivery stopped every callback of every merchant. The store
// sets it aside (TestDamagedDelivery in store); the dispatcher logs it
// once and delivers the others.
func TestDamagedDeliveryDelaysNothing(t *testing.T) {
	db := &damagedOnce{DB: mustOpen(t)}
	rc := newReceiver(t, answer(http.StatusOK))
	m := addMerchant(t, db.DB)
	ds := addDeliveries(t, db.DB, m.ID, rc.URL+"/cb", t0, 3)
	var logs syncBuffer
	outcomes := map[string]int{}
	var mu sync.Mutex
	disp := callbacks.New(db, callbacks.Config{AllowPrivate: true, Now: func() time.Time { return t0 }, Log: zerolog.New(&logs),
		OnAttempt: func(o string) { mu.Lock(); outcomes[o]++; mu.Unlock() }})
	flush(t, disp)
	flush(t, disp)
	for _, d := range ds {
		checkStored(t, db.DB, after(d, session.DeliveryDelivered, 1, t0, http.StatusOK, time.Time{}))
	}
	if got := strings.Count(logs.String(), "msg_damaged"); got != 1 {
		t.Errorf("damaged delivery logged %d times, want once:\n%s", got, logs.String())
	}
	if outcomes["failed"] != 1 || outcomes["delivered"] != 3 {
		t.Errorf("outcomes %v, want 1 failed and 3 delivered", outcomes)
	}
}
