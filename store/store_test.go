package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/store/storetest"
	bolt "go.etcd.io/bbolt"
)

// MustOpen opens a database in a temp dir and closes it at the end of the
// test.
func MustOpen(tb testing.TB) (*DB, string) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "sessiond.db")
	db, err := Open(path, Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db, path
}

// reopen closes db and opens the file at path again, to be closed at the
// end of the test.
func reopen(tb testing.TB, db *DB, path string) *DB {
	tb.Helper()
	if err := db.Close(); err != nil {
		tb.Fatal(err)
	}
	db, err := Open(path, Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// TestContract runs the shared store suite on bbolt, with and without
// fsync: NoSync changes when the disk has a commit, nothing else.
func TestContract(t *testing.T) {
	for _, tt := range []struct {
		name   string
		noSync bool
	}{{"fsync", false}, {"no-fsync", true}} {
		t.Run(tt.name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T, feed session.Publisher) session.Store {
				db, err := Open(filepath.Join(t.TempDir(), "sessiond.db"), Options{Feed: feed, NoSync: tt.noSync})
				if err != nil {
					t.Fatal(err)
				}
				if db.bolt.NoSync != tt.noSync {
					t.Fatalf("bbolt's NoSync is %v, want %v", db.bolt.NoSync, tt.noSync)
				}
				t.Cleanup(func() {
					if err := db.Close(); err != nil {
						t.Error(err)
					}
				})
				return db
			})
		})
	}
}

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func newSession(id string, version int) *session.Session {
	return &session.Session{
		ID: id, Type: session.TypeDeposit, MerchantID: "m1", Version: version,
		Created: t0, Expires: t0.Add(30 * time.Minute),
		Params: session.Params{CountryID: "se", MerchantReference: "order-1"},
	}
}

func TestReopen(t *testing.T) {
	db, path := MustOpen(t)
	ctx := context.Background()
	m := &session.Merchant{ID: "m1", Name: "shop", PublicKey: "pk_1", SecretHash: []byte{1, 2}, CallbackSecret: "whsec_x"}
	if err := db.CreateMerchant(ctx, m); err != nil {
		t.Fatal(err)
	}
	tok := &session.Token{Hash: []byte("hash-of-token"), Kind: session.TokenAccess, MerchantID: "m1", Expires: t0.Add(time.Hour)}
	if err := db.PutTokens(ctx, []*session.Token{tok}, nil); err != nil {
		t.Fatal(err)
	}
	st := session.State(10)
	c := &session.Change{
		Session:     newSession("s1", 1),
		Transaction: &session.Transaction{ID: "t1", SessionID: "s1", MerchantID: "m1"},
		Deliveries:  []*session.Delivery{{WebhookID: "w1", SessionID: "s1", MerchantID: "m1", URL: "http://a.example/", SessionState: &st, Status: session.DeliveryPending, NextAttempt: t0, Created: t0}},
		Timers:      []session.Timer{{Key: "k", Due: t0}},
	}
	if err := db.Save(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := db.Touch(ctx, "s1", t0.Add(time.Minute), session.Client{IP: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got, err := db.MerchantByPublicKey(ctx, "pk_1"); err != nil || got.CallbackSecret != "whsec_x" {
		t.Errorf("merchant after reopen: %+v, %v", got, err)
	}
	if got, err := db.Token(ctx, []byte("hash-of-token")); err != nil || got.MerchantID != "m1" {
		t.Errorf("token after reopen: %+v, %v", got, err)
	}
	if got, err := db.Session(ctx, "s1"); err != nil || got.Params.MerchantReference != "order-1" || got.IP != "192.0.2.1" || got.Version != 1 {
		t.Errorf("session after reopen (touch written at close): %+v, %v", got, err)
	}
	if got, err := db.Transaction(ctx, "t1"); err != nil || got.SessionID != "s1" {
		t.Errorf("transaction after reopen: %+v, %v", got, err)
	}
	if st, err := db.OutboxStats(ctx); err != nil || st.Pending != 1 {
		t.Errorf("outbox after reopen: %+v, %v", st, err)
	}
	if got, err := db.ClaimDeliveries(ctx, session.Claim{Owner: "o", Now: t0, Lease: time.Minute, Limit: 10, PerHost: 4}); err != nil || len(got.Deliveries) != 1 {
		t.Errorf("due deliveries after reopen: %+v, %v", got, err)
	}
	if got, err := db.ClaimDue(ctx, "o", t0.Add(30*time.Minute), time.Minute, 10); err != nil || len(got) != 1 {
		t.Errorf("due sessions after reopen: %v, %v", got, err)
	}
	if got, _, err := db.ClaimTimers(ctx, "o", t0, time.Minute, 10); err != nil || len(got) != 1 {
		t.Errorf("timers after reopen: %v, %v", got, err)
	}
}

func TestLocked(t *testing.T) {
	_, path := MustOpen(t)
	start := time.Now()
	_, err := Open(path, Options{LockTimeout: 100 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("second Open took %v", d)
	}
}

// TestGroupCommitIsolation runs many writers at once, each of which writes
// and then some of which fail (with a domain error, a plain error or a
// panic), and checks that each failure stays with its writer and leaves
// nothing behind, while its batch-mates commit.
func TestGroupCommitIsolation(t *testing.T) {
	db, _ := MustOpen(t)
	ctx := context.Background()
	errBoom := errors.New("boom")
	const n = 64
	// Hold the committer so that all writers queue and share batches.
	hold := make(chan struct{})
	holding := make(chan struct{})
	go db.update(ctx, func(tx *bolt.Tx) error { close(holding); <-hold; return nil })
	<-holding
	var wg sync.WaitGroup
	errs := make([]error, n)
	queued := make(chan struct{}, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := []byte{byte(i)}
			queued <- struct{}{}
			errs[i] = db.update(ctx, func(tx *bolt.Tx) error {
				// The failing writers fail after their first Put, which
				// must not be committed with the batch.
				if err := tx.Bucket(bucketTransactions).Put(key, []byte("x")); err != nil {
					return err
				}
				switch i % 4 {
				case 1:
					return errBoom
				case 2:
					panic("writer panics")
				case 3:
					return session.ErrVersionConflict
				}
				return nil
			})
		}()
	}
	for range n {
		<-queued
	}
	close(hold)
	wg.Wait()
	for i, err := range errs {
		var want bool
		switch i % 4 {
		case 0:
			want = err == nil
		case 1:
			want = errors.Is(err, errBoom)
		case 2:
			want = err != nil && !errors.Is(err, errBoom)
		case 3:
			want = errors.Is(err, session.ErrVersionConflict)
		}
		if !want {
			t.Errorf("writer %d: %v", i, err)
		}
	}
	db.view(func(tx *bolt.Tx) error {
		for i := range n {
			if got, want := tx.Bucket(bucketTransactions).Get([]byte{byte(i)}) != nil, i%4 == 0; got != want {
				t.Errorf("writer %d's key present %v, want %v", i, got, want)
			}
		}
		return nil
	})
	commits, writes := db.CommitStats()
	if writes < n/4 || commits == 0 || commits >= writes {
		t.Errorf("commit stats: %d commits, %d writes: want writes shared", commits, writes)
	}
}

// TestPartialWriteLeavesNothing is the defect as reported: a write that
// returns a domain error after its first Put was committed with its batch.
// Here a change whose transaction is stale fails after its session is
// written; its batch-mates commit and it leaves nothing.
func TestPartialWriteLeavesNothing(t *testing.T) {
	db, _ := MustOpen(t)
	ctx := context.Background()
	created := session.TxCreated
	if err := db.Save(ctx, &session.Change{Session: newSession("s1", 1), Transaction: &session.Transaction{ID: "t1", SessionID: "s1", State: session.TxPending}}); err != nil {
		t.Fatal(err)
	}
	put := newWrite(func(tx *bolt.Tx, _ *write) error {
		if err := tx.Bucket(bucketSessions).Put([]byte("ghost"), []byte("half a write")); err != nil {
			return err
		}
		return session.ErrVersionConflict
	})
	stale := newSession("s1", 2)
	errs := make([]error, 3)
	ws := []*write{}
	mate1, _ := db.changeWrite(&session.Change{Session: newSession("a", 1)})
	bad, _ := db.changeWrite(&session.Change{Session: stale, Transaction: &session.Transaction{ID: "t1", SessionID: "s1"}, TxFrom: &created})
	mate2, _ := db.changeWrite(&session.Change{Session: newSession("b", 1)})
	ws = append(ws, mate1, put, bad, mate2)
	if err := db.submitAll(ctx, ws); err != nil {
		t.Fatal(err)
	}
	errs = []error{<-mate1.err, <-put.err, <-bad.err, <-mate2.err}
	if errs[0] != nil || errs[3] != nil || !errors.Is(errs[1], session.ErrVersionConflict) || !errors.Is(errs[2], session.ErrVersionConflict) {
		t.Fatalf("results %v, want nil, conflict, conflict, nil", errs)
	}
	if _, err := db.Session(ctx, "ghost"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("the failed write's Put was committed: %v", err)
	}
	if s, _ := db.Session(ctx, "s1"); s.Version != 1 {
		t.Errorf("s1 at version %d after a refused change, want 1", s.Version)
	}
	for _, id := range []string{"a", "b"} {
		if _, err := db.Session(ctx, id); err != nil {
			t.Errorf("batch-mate %s: %v", id, err)
		}
	}
}

func TestClosed(t *testing.T) {
	db, _ := MustOpen(t)
	db.Close()
	if err := db.Save(context.Background(), &session.Change{Session: newSession("s", 1)}); !errors.Is(err, ErrClosed) {
		t.Errorf("Save after Close: %v, want ErrClosed", err)
	}
}

// TestCloseAnswersEveryWrite races writers against Close: each is
// answered, either ErrClosed or committed, and every write answered nil
// is in the file when it is opened again.
func TestCloseAnswersEveryWrite(t *testing.T) {
	db, path := MustOpen(t)
	ctx := context.Background()
	const writers = 64
	results := make(chan string, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("s%02d", i)
			err := db.Save(ctx, &session.Change{Session: newSession(id, 1)})
			switch {
			case err == nil:
				results <- id
			case !errors.Is(err, ErrClosed):
				t.Errorf("Save %s: %v, want nil or ErrClosed", id, err)
			}
		}()
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait() // every writer was answered
	close(results)
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n := 0
	for id := range results {
		n++
		if _, err := db.Session(ctx, id); err != nil {
			t.Errorf("%s was answered as committed but is not stored: %v", id, err)
		}
	}
	t.Logf("%d of %d writes were committed before Close", n, writers)
}

// TestTouchCoalesced checks that touches cost no commit of their own: many
// touches are written in one commit, at the interval or on FlushTouches.
func TestTouchCoalesced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	db, err := Open(path, Options{TouchInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if err := db.Save(ctx, &session.Change{Session: newSession("s1", 1)}); err != nil {
		t.Fatal(err)
	}
	before, _ := db.CommitStats()
	for i := range 1000 {
		if err := db.Touch(ctx, "s1", t0.Add(time.Duration(i)*time.Second), session.Client{IP: "192.0.2.1"}); err != nil {
			t.Fatal(err)
		}
	}
	if after, _ := db.CommitStats(); after != before {
		t.Errorf("1000 touches made %d commits before the interval, want 0", after-before)
	}
	db.FlushTouches()
	if after, _ := db.CommitStats(); after != before+1 {
		t.Errorf("flush made %d commits, want 1", after-before)
	}
	var stored *session.Session
	db.view(func(tx *bolt.Tx) error {
		stored, err = decodeSession(tx.Bucket(bucketSessions).Get([]byte("s1")))
		return err
	})
	if !stored.LastRequest.Equal(t0.Add(999*time.Second)) || stored.Version != 1 {
		t.Errorf("stored after flush: last %v version %d", stored.LastRequest, stored.Version)
	}
}

// TestDamagedDelivery is the defect as reported: one undecodable delivery
// stopped every callback. It is set aside as failed, reported once, and
// the others are claimed.
func TestDamagedDelivery(t *testing.T) {
	db, _ := MustOpen(t)
	ctx := context.Background()
	st := session.StateCompleted
	var ds []*session.Delivery
	for _, id := range []string{"w1", "w2", "w3"} {
		ds = append(ds, &session.Delivery{WebhookID: id, SessionID: "s1", MerchantID: "m1", URL: "http://a.example/", SessionState: &st, Status: session.DeliveryPending, NextAttempt: t0, Created: t0})
	}
	if err := db.Save(ctx, &session.Change{Session: newSession("s1", 1), Deliveries: ds}); err != nil {
		t.Fatal(err)
	}
	if err := db.update(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDeliveries).Put([]byte("w2"), []byte("{not json"))
	}); err != nil {
		t.Fatal(err)
	}
	c := session.Claim{Owner: "o", Now: t0, Lease: time.Minute, Limit: 10, PerHost: 4}
	got, err := db.ClaimDeliveries(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Deliveries) != 2 || len(got.Damaged) != 1 || got.Damaged[0].WebhookID != "w2" || got.Damaged[0].Status != session.DeliveryFailed || got.Damaged[0].LastError == "" {
		t.Fatalf("claimed %d, damaged %+v: want w1, w3 and w2 set aside with a reason", len(got.Deliveries), got.Damaged)
	}
	if st, _ := db.OutboxStats(ctx); st.Pending != 2 {
		t.Errorf("pending = %d, want 2 (the damaged one is failed)", st.Pending)
	}
	c.Now = t0.Add(time.Hour)
	if got, _ := db.ClaimDeliveries(ctx, c); len(got.Damaged) != 0 {
		t.Errorf("damaged delivery reported again: %+v", got.Damaged)
	}
	all, err := db.SessionDeliveries(ctx, "s1")
	if err != nil || len(all) != 3 || all[1].Status != session.DeliveryFailed {
		t.Errorf("SessionDeliveries = %+v, %v, want w2 failed", all, err)
	}
}

// TestMigrateDue opens a file whose due index has the older layout.
func TestMigrateDue(t *testing.T) {
	db, path := MustOpen(t)
	ctx := context.Background()
	st := session.StateCompleted
	d := &session.Delivery{WebhookID: "w1", SessionID: "s1", MerchantID: "m1", URL: "http://a.example/", SessionState: &st, Status: session.DeliveryPending, NextAttempt: t0, Created: t0}
	if err := db.Save(ctx, &session.Change{Session: newSession("s1", 1), Deliveries: []*session.Delivery{d}}); err != nil {
		t.Fatal(err)
	}
	// Rewrite the indexes as an older sessiond left them.
	if err := db.update(ctx, func(tx *bolt.Tx) error {
		old, err := tx.CreateBucket(bucketDue)
		if err != nil {
			return err
		}
		if err := old.Put(timeKey(t0, "w1"), nil); err != nil {
			return err
		}
		for _, b := range [][]byte{bucketHostDue, bucketPending} {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
			if _, err := tx.CreateBucket(b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	db = reopen(t, db, path)
	if st, _ := db.OutboxStats(ctx); st.Pending != 1 {
		t.Errorf("pending after migration = %d, want 1", st.Pending)
	}
	got, err := db.ClaimDeliveries(ctx, session.Claim{Owner: "o", Now: t0, Lease: time.Minute, Limit: 10, PerHost: 4})
	if err != nil || len(got.Deliveries) != 1 {
		t.Errorf("claim after migration: %+v, %v", got, err)
	}
}

// readCounted returns what read returns and how many bbolt read
// transactions it took.
func readCounted[T any](t *testing.T, db *DB, read func() (*T, error)) (*T, int) {
	t.Helper()
	before := db.bolt.Stats().TxN
	got, err := read()
	if err != nil {
		t.Fatal(err)
	}
	return got, db.bolt.Stats().TxN - before
}

// TestSessionCacheFollowsCommits: a session just saved, or read with no
// write of it since, is answered without a read transaction; a write of
// another session leaves it so; a flush of touches that names it, or a
// write that does not say what it changes, makes the next read go to
// bbolt, which sees the write.
func TestSessionCacheFollowsCommits(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "s.db"), Options{TouchInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	s := newSession("s1", 1)
	if err := db.Save(ctx, &session.Change{Session: s}); err != nil {
		t.Fatal(err)
	}
	read := func() (*session.Session, int) {
		t.Helper()
		return readCounted(t, db, func() (*session.Session, error) { return db.Session(ctx, "s1") })
	}
	got, txs := read()
	if txs != 0 || got.Version != 1 {
		t.Errorf("first read after the save: version %d in %d read transactions, want version 1 from memory", got.Version, txs)
	}
	got.Params.CountryID = "no" // a caller's change stays its own
	if again, _ := read(); again.Params.CountryID != "se" {
		t.Errorf("a caller's change reached the cache: country %q", again.Params.CountryID)
	}

	next := *s
	next.Version, next.State = 2, session.StateAuthenticationStarted
	if err := db.Save(ctx, &session.Change{Session: &next}); err != nil {
		t.Fatal(err)
	}
	if got, txs := read(); got.Version != 2 || got.State != session.StateAuthenticationStarted || txs != 0 {
		t.Errorf("after the second save: version %d state %d in %d read transactions, want 2 from memory", got.Version, got.State, txs)
	}
	if err := db.Save(ctx, &session.Change{Session: newSession("s2", 1)}); err != nil {
		t.Fatal(err)
	}
	if got, txs := read(); got.Version != 2 || txs != 0 {
		t.Errorf("after a save of another session: version %d in %d read transactions, want 2 from memory", got.Version, txs)
	}

	before := db.bolt.Stats().TxN
	if err := db.Touch(ctx, "s1", t0.Add(time.Minute), session.Client{IP: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	if txs := db.bolt.Stats().TxN - before; txs != 0 {
		t.Errorf("a touch of the session just read: %d read transactions, want 0", txs)
	}
	if err := db.Touch(ctx, "nope", t0, session.Client{}); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("a touch of no session: %v, want ErrNotFound", err)
	}
	db.FlushTouches() // written into the stored session, no longer held
	got, txs = read()
	if !got.LastRequest.Equal(t0.Add(time.Minute)) || got.IP != "192.0.2.1" || txs != 1 {
		t.Errorf("after a flush of touches: last request %v ip %q in %d read transactions, want 1", got.LastRequest, got.IP, txs)
	}
	if _, txs := read(); txs != 0 {
		t.Errorf("a read again after the flush: %d read transactions, want 0", txs)
	}

	// A write that does not say what it changes: here it does change s1.
	changed := next
	changed.Version, changed.State = 3, session.StateAborted
	raw, err := encodeSession(&changed)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.update(ctx, func(tx *bolt.Tx) error { return tx.Bucket(bucketSessions).Put([]byte("s1"), raw) }); err != nil {
		t.Fatal(err)
	}
	if got, txs := read(); got.Version != 3 || txs != 1 {
		t.Errorf("after a write that names nothing: version %d in %d read transactions, want 3 from bbolt", got.Version, txs)
	}
}

// TestSessionCacheNeverStale: readers racing writers never see a version
// older than the last one whose save had returned before they asked, nor
// older than one another reader had already seen. The writes are saves,
// which name the session, and writes that name nothing.
func TestSessionCacheNeverStale(t *testing.T) {
	db, _ := MustOpen(t)
	ctx := context.Background()
	s := newSession("s1", 1)
	if err := db.Save(ctx, &session.Change{Session: s}); err != nil {
		t.Fatal(err)
	}
	var acked, seen atomic.Int64
	acked.Store(1)
	running, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { // after the saves, or a failed one
		stop()
		wg.Wait()
	}()
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for running.Err() == nil {
				want := max(acked.Load(), seen.Load())
				got, err := db.Session(ctx, "s1")
				if err != nil {
					t.Error(err)
					return
				}
				v := int64(got.Version)
				if v < want {
					t.Errorf("read version %d after version %d was saved or read", v, want)
					return
				}
				for old := seen.Load(); v > old && !seen.CompareAndSwap(old, v); old = seen.Load() {
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // writes that name nothing, so every entry is read again
		defer wg.Done()
		for running.Err() == nil {
			if err := db.Probe(ctx); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for v := 2; v <= 300; v++ {
		next := *s
		next.Version = v
		if err := db.Save(ctx, &session.Change{Session: &next}); err != nil {
			t.Fatal(err)
		}
		acked.Store(int64(v))
	}
}

// TestMerchantCacheFollowsCommits: a merchant read again with no write of
// merchants in between is answered without a read transaction or a decode, a caller's
// change to what it got (slices too) stays its own, and a write is seen by
// the next read, by id and by public key.
func TestMerchantCacheFollowsCommits(t *testing.T) {
	db, _ := MustOpen(t)
	ctx := context.Background()
	m := &session.Merchant{ID: "m1", Name: "shop", PublicKey: "pk_1", SecretHash: []byte{1, 2}, FrameAncestors: []string{"https://shop.example"}}
	if err := db.CreateMerchant(ctx, m); err != nil {
		t.Fatal(err)
	}
	read := func() (*session.Merchant, int) {
		t.Helper()
		return readCounted(t, db, func() (*session.Merchant, error) { return db.Merchant(ctx, "m1") })
	}
	read()
	got, txs := read()
	if txs != 0 || got.Name != "shop" {
		t.Errorf("second read: name %q in %d read transactions, want shop from memory", got.Name, txs)
	}
	got.Name, got.SecretHash[0], got.FrameAncestors[0] = "changed", 9, "https://other.example"
	if again, _ := read(); again.Name != "shop" || again.SecretHash[0] != 1 || again.FrameAncestors[0] != "https://shop.example" {
		t.Errorf("a caller's change reached the cache: %+v", again)
	}

	renamed := *m
	renamed.Name = "shop two"
	if err := db.PutMerchant(ctx, &renamed); err != nil {
		t.Fatal(err)
	}
	if got, _ := read(); got.Name != "shop two" {
		t.Errorf("after PutMerchant, by id: name %q", got.Name)
	}
	byKey, err := db.MerchantByPublicKey(ctx, "pk_1")
	if err != nil || byKey.Name != "shop two" {
		t.Errorf("after PutMerchant, by public key: %+v, %v", byKey, err)
	}
}

// TestSessionCacheMarkedBeforeCommit: a transaction under way that has
// not yet marked what it changes leaves reads answered from memory, with
// the value before it; once it has marked them, before its commit is seen
// by any read of bbolt, reads go to bbolt. Both for a write that names the
// session and for one that names nothing.
func TestSessionCacheMarkedBeforeCommit(t *testing.T) {
	for _, scoped := range []bool{true, false} {
		t.Run(fmt.Sprintf("scoped=%v", scoped), func(t *testing.T) { testMarkedBeforeCommit(t, scoped) })
	}
}

func testMarkedBeforeCommit(t *testing.T, scoped bool) {
	db, _ := MustOpen(t)
	ctx := context.Background()
	if err := db.Save(ctx, &session.Change{Session: newSession("s1", 1)}); err != nil {
		t.Fatal(err)
	}
	read := func() (int, int) {
		t.Helper()
		got, txs := readCounted(t, db, func() (*session.Session, error) { return db.Session(ctx, "s1") })
		return got.Version, txs
	}
	if _, txs := read(); txs != 0 {
		t.Fatalf("a read after the save took %d read transactions, want 0", txs)
	}
	changed := newSession("s1", 2)
	raw, err := encodeSession(changed)
	if err != nil {
		t.Fatal(err)
	}
	inside, marked, release := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var once sync.Once
	db.beforeCommit = func() {
		once.Do(func() {
			close(marked)
			<-release
		})
	}
	fn := func(tx *bolt.Tx, _ *write) error {
		close(inside)
		<-release
		return tx.Bucket(bucketSessions).Put([]byte("s1"), raw)
	}
	w := newWrite(fn)
	if scoped {
		w = newScopedWrite(fn, "s1")
	}
	if err := db.submitAll(ctx, []*write{w}); err != nil {
		t.Fatal(err)
	}
	<-inside
	if v, txs := read(); v != 1 || txs != 0 {
		t.Errorf("a read while the write runs: version %d in %d read transactions, want 1 from memory", v, txs)
	}
	release <- struct{}{} // the write returns; the caches are marked
	<-marked
	if v, txs := read(); v != 1 || txs != 1 {
		t.Errorf("a read once marked, before the commit: version %d in %d read transactions, want 1 from bbolt", v, txs)
	}
	close(release)
	if err := <-w.err; err != nil {
		t.Fatal(err)
	}
	if v, txs := read(); v != 2 || txs != 1 {
		t.Errorf("a read after the commit: version %d in %d read transactions, want 2 from bbolt", v, txs)
	}
	if v, txs := read(); v != 2 || txs != 0 {
		t.Errorf("a repeat read: version %d in %d read transactions, want 2 from memory", v, txs)
	}
}

// TestSessionCacheSameCommit: when a later write of the same commit names
// the session a save stored, the save's bytes are not taken as current;
// the read finds what the later write left.
func TestSessionCacheSameCommit(t *testing.T) {
	db, _ := MustOpen(t)
	ctx := context.Background()
	save, err := db.changeWrite(&session.Change{Session: newSession("s1", 1)})
	if err != nil {
		t.Fatal(err)
	}
	later := newSession("s1", 1)
	later.IP = "192.0.2.7"
	raw, err := encodeSession(later)
	if err != nil {
		t.Fatal(err)
	}
	touch := newScopedWrite(func(tx *bolt.Tx, _ *write) error {
		return tx.Bucket(bucketSessions).Put([]byte("s1"), raw)
	}, "s1")
	if err := db.submitAll(ctx, []*write{save, touch}); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(<-save.err, <-touch.err); err != nil {
		t.Fatal(err)
	}
	if commits, _ := db.CommitStats(); commits != 1 {
		t.Fatalf("%d commits, want the two writes in one", commits)
	}
	got, txs := readCounted(t, db, func() (*session.Session, error) { return db.Session(ctx, "s1") })
	if got.IP != "192.0.2.7" || txs != 1 {
		t.Errorf("read: ip %q in %d read transactions, want the later write's from bbolt", got.IP, txs)
	}
}

// TestSessionCacheAfterOpen: on a file just opened, with no commit yet, a
// session read once is answered from memory the second time.
func TestSessionCacheAfterOpen(t *testing.T) {
	db, path := MustOpen(t)
	ctx := context.Background()
	if err := db.Save(ctx, &session.Change{Session: newSession("s1", 1)}); err != nil {
		t.Fatal(err)
	}
	db = reopen(t, db, path)
	for i, want := range []int{1, 0} {
		if _, txs := readCounted(t, db, func() (*session.Session, error) { return db.Session(ctx, "s1") }); txs != want {
			t.Errorf("read %d after open: %d read transactions, want %d", i+1, txs, want)
		}
	}
}
