package store

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/session"
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
		Deliveries:  []*session.Delivery{{WebhookID: "w1", SessionID: "s1", MerchantID: "m1", SessionState: &st, Status: session.DeliveryPending, NextAttempt: t0}},
	}
	if err := db.Save(ctx, c); err != nil {
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
	if got, err := db.Session(ctx, "s1"); err != nil || got.Params.MerchantReference != "order-1" || !got.Expires.Equal(t0.Add(30*time.Minute)) {
		t.Errorf("session after reopen: %+v, %v", got, err)
	}
	if got, err := db.Transaction(ctx, "t1"); err != nil || got.SessionID != "s1" {
		t.Errorf("transaction after reopen: %+v, %v", got, err)
	}
	if got, err := db.SessionsByReference(ctx, "m1", "order-1", 10); err != nil || len(got) != 1 {
		t.Errorf("by reference after reopen: %d, %v", len(got), err)
	}
	if got, err := db.DueDeliveries(ctx, t0, 10); err != nil || len(got) != 1 || got[0].WebhookID != "w1" {
		t.Errorf("due deliveries after reopen: %+v, %v", got, err)
	}
	if got, err := db.Due(ctx, t0.Add(30*time.Minute), 10); err != nil || len(got) != 1 {
		t.Errorf("due sessions after reopen: %v, %v", got, err)
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

func TestSaveVersions(t *testing.T) {
	db, _ := MustOpen(t)
	ctx := context.Background()
	if err := db.Save(ctx, &session.Change{Session: newSession("s1", 1)}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		version int
		want    error
	}{
		{1, session.ErrVersionConflict}, // exists
		{3, session.ErrVersionConflict}, // skips 2
		{2, nil},
		{2, session.ErrVersionConflict}, // replayed
	} {
		if err := db.Save(ctx, &session.Change{Session: newSession("s1", tt.version)}); !errors.Is(err, tt.want) {
			t.Errorf("Save version %d: %v, want %v", tt.version, err, tt.want)
		}
	}
	if err := db.Save(ctx, &session.Change{Session: newSession("nope", 2)}); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Save of a missing session at version 2: %v, want not found", err)
	}
}

func TestFinalLeavesExpiryIndex(t *testing.T) {
	db, _ := MustOpen(t)
	ctx := context.Background()
	for _, id := range []string{"a", "b", "c"} {
		if err := db.Save(ctx, &session.Change{Session: newSession(id, 1)}); err != nil {
			t.Fatal(err)
		}
	}
	s := newSession("b", 2)
	s.State = session.StateCompleted
	if err := db.Save(ctx, &session.Change{Session: s}); err != nil {
		t.Fatal(err)
	}
	got, err := db.Due(ctx, t0.Add(time.Hour), 10)
	if err != nil || len(got) != 2 || got[0] != "a" || got[1] != "c" {
		t.Errorf("Due = %v, %v, want [a c]", got, err)
	}
	if got, _ := db.Due(ctx, t0.Add(29*time.Minute), 10); len(got) != 0 {
		t.Errorf("Due before the deadline = %v, want none", got)
	}
}

// TestGroupCommitIsolation runs many writers at once, some of which fail,
// and checks that each failure stays with its writer.
func TestGroupCommitIsolation(t *testing.T) {
	db, _ := MustOpen(t)
	ctx := context.Background()
	errBoom := errors.New("boom")
	const n = 64
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := []byte{byte(i)}
			errs[i] = db.update(ctx, func(tx *bolt.Tx) error {
				// Every writer writes; every third then fails after writing,
				// which must roll back its write and only its write.
				if err := tx.Bucket(bucketTransactions).Put(key, []byte("x")); err != nil {
					return err
				}
				switch i % 3 {
				case 1:
					return errBoom
				case 2:
					panic("writer panics")
				}
				return nil
			})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		var want bool
		switch i % 3 {
		case 0:
			want = err == nil
		case 1:
			want = errors.Is(err, errBoom)
		case 2:
			want = err != nil && !errors.Is(err, errBoom)
		}
		if !want {
			t.Errorf("writer %d: %v", i, err)
		}
	}
	db.view(func(tx *bolt.Tx) error {
		for i := range n {
			if got, want := tx.Bucket(bucketTransactions).Get([]byte{byte(i)}) != nil, i%3 == 0; got != want {
				t.Errorf("writer %d's key present %v, want %v", i, got, want)
			}
		}
		return nil
	})
	commits, writes := db.CommitStats()
	if writes < n/3 || commits == 0 {
		t.Errorf("commit stats: %d commits, %d writes", commits, writes)
	}
}

func TestClosed(t *testing.T) {
	db, _ := MustOpen(t)
	db.Close()
	if err := db.Save(context.Background(), &session.Change{Session: newSession("s", 1)}); !errors.Is(err, ErrClosed) {
		t.Errorf("Save after Close: %v, want ErrClosed", err)
	}
}

func TestDeliveryIndexes(t *testing.T) {
	db, _ := MustOpen(t)
	ctx := context.Background()
	st := session.State(12)
	d := &session.Delivery{WebhookID: "w1", SessionID: "s1", MerchantID: "m1", SessionState: &st, Status: session.DeliveryPending, NextAttempt: t0}
	if err := db.Save(ctx, &session.Change{Session: newSession("s1", 1), Deliveries: []*session.Delivery{d}}); err != nil {
		t.Fatal(err)
	}
	d.Attempts, d.NextAttempt = 1, t0.Add(10*time.Minute)
	if err := db.UpdateDelivery(ctx, d); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.DueDeliveries(ctx, t0.Add(time.Minute), 10); len(got) != 0 {
		t.Errorf("due before the retry: %d, want 0", len(got))
	}
	if at, ok, _ := db.NextDelivery(ctx); !ok || !at.Equal(t0.Add(10*time.Minute)) {
		t.Errorf("NextDelivery = %v, %v, want the retry time", at, ok)
	}
	d.Status, d.NextAttempt = session.DeliveryDelivered, time.Time{}
	if err := db.UpdateDelivery(ctx, d); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := db.NextDelivery(ctx); ok {
		t.Error("a delivered delivery is still due")
	}
	got, err := db.SessionDeliveries(ctx, "s1")
	if err != nil || len(got) != 1 || got[0].Status != session.DeliveryDelivered {
		t.Errorf("SessionDeliveries = %+v, %v", got, err)
	}
}

func TestPurgeTokens(t *testing.T) {
	db, _ := MustOpen(t)
	ctx := context.Background()
	old := &session.Token{Hash: []byte("old"), Expires: t0}
	live := &session.Token{Hash: []byte("live"), Expires: t0.Add(time.Hour)}
	if err := db.PutTokens(ctx, []*session.Token{old, live}, nil); err != nil {
		t.Fatal(err)
	}
	if n, err := db.PurgeTokens(ctx, t0, 100); err != nil || n != 1 {
		t.Fatalf("PurgeTokens = %d, %v, want 1", n, err)
	}
	if _, err := db.Token(ctx, []byte("old")); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("purged token: %v", err)
	}
	if _, err := db.Token(ctx, []byte("live")); err != nil {
		t.Errorf("live token: %v", err)
	}
	if err := db.PutTokens(ctx, nil, [][]byte{[]byte("old")}); !errors.Is(err, session.ErrUnauthorized) {
		t.Errorf("revoking a gone token: %v, want unauthorized", err)
	}
}

func TestSaveAllIsAllOrNothing(t *testing.T) {
	db, _ := MustOpen(t)
	ctx := context.Background()
	if err := db.Save(ctx, &session.Change{Session: newSession("b", 1)}); err != nil {
		t.Fatal(err)
	}
	err := db.SaveAll(ctx, []*session.Change{{Session: newSession("a", 1)}, {Session: newSession("b", 1)}, {Session: newSession("c", 1)}})
	if err == nil {
		t.Fatal("SaveAll with a taken id succeeded")
	}
	for _, id := range []string{"a", "c"} {
		if _, err := db.Session(ctx, id); !errors.Is(err, session.ErrNotFound) {
			t.Errorf("session %s after a failed SaveAll: %v, want not found", id, err)
		}
	}
	if err := db.SaveAll(ctx, []*session.Change{{Session: newSession("a", 1)}, {Session: newSession("c", 1)}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.Due(ctx, t0.Add(time.Hour), 10); len(got) != 3 {
		t.Errorf("Due after SaveAll: %v, want a, b, c", got)
	}
}
