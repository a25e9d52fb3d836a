// Package storetest is the conformance suite of session.Store: every
// backend runs it (bbolt in store, PostgreSQL in postgres) and must pass
// it unchanged.
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T, feed session.Publisher) session.Store { … })
//	}
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiond/sessiond/session"
)

// Open returns a fresh, empty store that publishes its committed changes
// to feed, and closes it when the test ends.
type Open func(t *testing.T, feed session.Publisher) session.Store

// Run runs every test of the contract, each on a fresh store from open.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(t *testing.T, f *fixture)
	}{
		{"Merchants", testMerchants},
		{"Tokens", testTokens},
		{"SaveVersions", testSaveVersions},
		{"RefusedSaveWritesNothing", testRefusedSaveWritesNothing},
		{"SaveTransaction", testSaveTransaction},
		{"MoveWithTransaction", testMoveWithTransaction},
		{"SaveBatch", testSaveBatch},
		{"SaveBatchConcurrent", testSaveBatchConcurrent},
		{"ByReference", testByReference},
		{"Touch", testTouch},
		{"ClaimDue", testClaimDue},
		{"ClaimDeliveries", testClaimDeliveries},
		{"RecordAttempt", testRecordAttempt},
		{"OutboxStats", testOutboxStats},
		{"Timers", testTimers},
		{"Feed", testFeed},
		{"AccountStore", testAccountStore},
		{"Retain", testRetain},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			feed := session.NewFeed()
			f := &fixture{feed: feed, sub: feed.Subscribe(1 << 16)}
			f.db = open(t, feed)
			t.Cleanup(f.sub.Close)
			tt.fn(t, f)
		})
	}
}

type fixture struct {
	db   session.Store
	feed *session.Feed
	sub  *session.Subscription
}

// T0 is where the suite's clock starts.
var T0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

var seq atomic.Int64

// ID returns a new id in the canonical UUID form, later ones sorting after.
func ID() string { return fmt.Sprintf("01955555-0000-7000-8000-%012d", seq.Add(1)) }

// NewSession returns a created deposit session of merchant m1, due at
// T0+30m.
func NewSession(id string) *session.Session {
	return &session.Session{
		ID: id, Type: session.TypeDeposit, MerchantID: "m1", Version: 1, TokenHash: []byte("hash"),
		Created: T0, Expires: T0.Add(30 * time.Minute),
		Params: session.Params{CountryID: "se", MerchantReference: "order-1"},
	}
}

// next returns s at its next version.
func next(s *session.Session) *session.Session {
	c := *s
	c.Version++
	return &c
}

// NewDelivery returns a pending delivery of session s to url, due at at.
func NewDelivery(s *session.Session, url string, at time.Time) *session.Delivery {
	st := session.StateCompleted
	return &session.Delivery{
		WebhookID: "msg_" + ID(), MerchantID: s.MerchantID, SessionID: s.ID, URL: url,
		SessionState: &st, Status: session.DeliveryPending, NextAttempt: at, Created: at,
	}
}

func ctx() context.Context { return context.Background() }

func mustSave(t *testing.T, db session.Store, c *session.Change) {
	t.Helper()
	if err := db.Save(ctx(), c); err != nil {
		t.Fatalf("Save: %v", err)
	}
}

func testMerchants(t *testing.T, f *fixture) {
	m1 := &session.Merchant{ID: ID(), Name: "one", PublicKey: "pk_1", SecretHash: []byte{1}, CallbackSecret: "whsec_a", Created: T0}
	m2 := &session.Merchant{ID: ID(), Name: "two", PublicKey: "pk_2", Created: T0}
	for _, m := range []*session.Merchant{m1, m2} {
		if err := f.db.CreateMerchant(ctx(), m); err != nil {
			t.Fatal(err)
		}
	}
	dup := &session.Merchant{ID: ID(), PublicKey: "pk_1"}
	if err := f.db.CreateMerchant(ctx(), dup); !errors.Is(err, session.ErrPublicKeyTaken) {
		t.Errorf("CreateMerchant with a taken key: %v, want ErrPublicKeyTaken", err)
	}
	if _, err := f.db.Merchant(ctx(), dup.ID); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("merchant of a refused create: %v, want not found", err)
	}
	got, err := f.db.MerchantByPublicKey(ctx(), "pk_1")
	if err != nil || got.ID != m1.ID || got.CallbackSecret != "whsec_a" {
		t.Errorf("MerchantByPublicKey = %+v, %v", got, err)
	}
	m1.CallbackSecret = "whsec_b"
	if err := f.db.PutMerchant(ctx(), m1); err != nil {
		t.Fatal(err)
	}
	if got, err := f.db.Merchant(ctx(), m1.ID); err != nil || got.CallbackSecret != "whsec_b" {
		t.Errorf("Merchant after PutMerchant = %+v, %v", got, err)
	}
	if err := f.db.PutMerchant(ctx(), &session.Merchant{ID: ID(), PublicKey: "pk_9"}); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("PutMerchant of a missing merchant: %v, want not found", err)
	}
	if _, err := f.db.MerchantByPublicKey(ctx(), "pk_9"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("MerchantByPublicKey unknown: %v, want not found", err)
	}
	ms, err := f.db.Merchants(ctx())
	if err != nil || len(ms) != 2 || ms[0].ID != m1.ID || ms[1].ID != m2.ID {
		t.Errorf("Merchants = %v, %v, want one, two", ms, err)
	}
}

func testTokens(t *testing.T, f *fixture) {
	a := &session.Token{Hash: []byte("a"), Kind: session.TokenAccess, MerchantID: "m1", Expires: T0}
	b := &session.Token{Hash: []byte("b"), Kind: session.TokenRefresh, MerchantID: "m1", Expires: T0.Add(time.Hour)}
	if err := f.db.PutTokens(ctx(), []*session.Token{a, b}, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := f.db.Token(ctx(), []byte("b")); err != nil || got.Kind != session.TokenRefresh {
		t.Errorf("Token = %+v, %v", got, err)
	}
	c := &session.Token{Hash: []byte("c"), Kind: session.TokenAccess, Expires: T0.Add(time.Hour)}
	if err := f.db.PutTokens(ctx(), []*session.Token{c}, [][]byte{[]byte("b"), []byte("nope")}); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("PutTokens revoking a missing token: %v, want not found", err)
	}
	if _, err := f.db.Token(ctx(), []byte("c")); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("token added by a refused PutTokens: %v, want not found", err)
	}
	if _, err := f.db.Token(ctx(), []byte("b")); err != nil {
		t.Errorf("token revoked by a refused PutTokens: %v, want it kept", err)
	}
	if err := f.db.PutTokens(ctx(), []*session.Token{c}, [][]byte{[]byte("b")}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.Token(ctx(), []byte("b")); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("revoked token: %v, want not found", err)
	}
	if n, err := f.db.PurgeTokens(ctx(), T0, 100); err != nil || n != 1 {
		t.Errorf("PurgeTokens = %d, %v, want 1", n, err)
	}
	if _, err := f.db.Token(ctx(), []byte("a")); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("purged token: %v, want not found", err)
	}
	if n, err := f.db.PurgeTokens(ctx(), T0, 100); err != nil || n != 0 {
		t.Errorf("second PurgeTokens = %d, %v, want 0", n, err)
	}
}

func testSaveVersions(t *testing.T, f *fixture) {
	s := NewSession(ID())
	mustSave(t, f.db, &session.Change{Session: s})
	for _, tt := range []struct {
		version int
		want    error
	}{
		{1, session.ErrVersionConflict}, // exists
		{3, session.ErrVersionConflict}, // skips 2
		{2, nil},
		{2, session.ErrVersionConflict}, // replayed
	} {
		c := *s
		c.Version = tt.version
		if err := f.db.Save(ctx(), &session.Change{Session: &c}); !errors.Is(err, tt.want) {
			t.Errorf("Save version %d: %v, want %v", tt.version, err, tt.want)
		}
	}
	missing := NewSession(ID())
	missing.Version = 2
	if err := f.db.Save(ctx(), &session.Change{Session: missing}); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Save of a missing session at version 2: %v, want not found", err)
	}
	if _, err := f.db.Session(ctx(), missing.ID); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Session unknown: %v, want not found", err)
	}
	got, err := f.db.Session(ctx(), s.ID)
	if err != nil || got.Version != 2 || got.Params.MerchantReference != "order-1" || !got.Expires.Equal(s.Expires) {
		t.Errorf("Session = %+v, %v", got, err)
	}
}

// testRefusedSaveWritesNothing: a save refused for its version (a create
// of a stored id, a move from a version not stored, a replay) writes none
// of its deliveries, timers or timer deletions, and publishes nothing.
func testRefusedSaveWritesNothing(t *testing.T, f *fixture) {
	s := NewSession(ID())
	mustSave(t, f.db, &session.Change{Session: s, Timers: []session.Timer{{Key: "keep:" + s.ID, Due: T0.Add(time.Hour)}}})
	moved := next(s)
	mustSave(t, f.db, &session.Change{Session: moved})
	f.sub.Take()
	for _, version := range []int{1, 2, 4} {
		c := *s
		c.Version = version
		d := NewDelivery(&c, "http://127.0.0.1:1/refused", T0)
		err := f.db.Save(ctx(), &session.Change{Session: &c, Deliveries: []*session.Delivery{d},
			Timers: []session.Timer{{Key: "refused:" + s.ID, Due: T0}, {Key: "keep:" + s.ID}}})
		if !errors.Is(err, session.ErrVersionConflict) {
			t.Fatalf("Save at version %d over version 2: %v, want a version conflict", version, err)
		}
	}
	if ds, err := f.db.SessionDeliveries(ctx(), s.ID); err != nil || len(ds) != 0 {
		t.Errorf("deliveries of refused saves: %d, %v; want none", len(ds), err)
	}
	timers, _, err := f.db.ClaimTimers(ctx(), "x", T0.Add(2*time.Hour), time.Minute, 10)
	if err != nil || len(timers) != 1 || timers[0].Key != "keep:"+s.ID {
		t.Errorf("timers after refused saves = %v, %v; want only keep:%s, not deleted", timers, err, s.ID)
	}
	if got, err := f.db.Session(ctx(), s.ID); err != nil || got.Version != 2 {
		t.Errorf("Session after refused saves = %+v, %v; want version 2", got, err)
	}
	if cs, _ := f.sub.Take(); len(cs) != 0 {
		t.Errorf("refused saves were published: %d changes", len(cs))
	}
}

func testSaveTransaction(t *testing.T, f *fixture) {
	s := NewSession(ID())
	tx := &session.Transaction{ID: ID(), Type: "deposit", SessionID: s.ID, MerchantID: "m1", State: session.TxCreated}
	mustSave(t, f.db, &session.Change{Session: s, Transaction: tx})
	if got, err := f.db.Transaction(ctx(), tx.ID); err != nil || got.SessionID != s.ID {
		t.Fatalf("Transaction = %+v, %v", got, err)
	}
	from := session.TxCreated
	moved := *tx
	moved.State = session.TxPending
	d := NewDelivery(s, "http://a.example/cb", T0)
	mustSave(t, f.db, &session.Change{Transaction: &moved, TxFrom: &from, Deliveries: []*session.Delivery{d}})
	again := moved
	again.State = session.TxFailed
	if err := f.db.Save(ctx(), &session.Change{Transaction: &again, TxFrom: &from}); !errors.Is(err, session.ErrVersionConflict) {
		t.Errorf("transaction moved from a state it left: %v, want version conflict", err)
	}
	// The same check on a change with a session: nothing of it is kept.
	s2 := next(s)
	if err := f.db.Save(ctx(), &session.Change{Session: s2, Transaction: &again, TxFrom: &from}); !errors.Is(err, session.ErrVersionConflict) {
		t.Errorf("session change with a stale TxFrom: %v, want version conflict", err)
	}
	if got, _ := f.db.Session(ctx(), s.ID); got.Version != 1 {
		t.Errorf("session version after a refused change: %d, want 1", got.Version)
	}
	if got, _ := f.db.Transaction(ctx(), tx.ID); got.State != session.TxPending {
		t.Errorf("transaction state = %v, want pending", got.State)
	}
	if ds, err := f.db.SessionDeliveries(ctx(), s.ID); err != nil || len(ds) != 1 || ds[0].WebhookID != d.WebhookID {
		t.Errorf("SessionDeliveries = %v, %v", ds, err)
	}
	ghost := session.Transaction{ID: ID(), State: session.TxPending}
	if err := f.db.Save(ctx(), &session.Change{Transaction: &ghost, TxFrom: &from}); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("move of a missing transaction: %v, want not found", err)
	}
	if _, err := f.db.Transaction(ctx(), ghost.ID); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Transaction unknown: %v, want not found", err)
	}
}

// testMoveWithTransaction: a move of a stored session that creates or
// moves on its transaction writes both or, refused by either check,
// neither; the session's refusal is told before the transaction's. The
// same changes saved together in one batch are told apart each.
func testMoveWithTransaction(t *testing.T, f *fixture) {
	newTx := func(s *session.Session, state session.TransactionState) *session.Transaction {
		return &session.Transaction{ID: ID(), Type: "deposit", SessionID: s.ID, MerchantID: "m1", State: state, Amount: 1000}
	}
	created, pending := session.TxCreated, session.TxPending
	moved := func(tx *session.Transaction, to session.TransactionState) *session.Transaction {
		c := *tx
		c.State = to
		return &c
	}
	for _, batch := range []bool{false, true} {
		a, b, c, d, e := NewSession(ID()), NewSession(ID()), NewSession(ID()), NewSession(ID()), NewSession(ID())
		taken := newTx(e, created)
		for _, s := range []*session.Session{a, b, c, d, e} {
			mustSave(t, f.db, &session.Change{Session: s})
		}
		mustSave(t, f.db, &session.Change{Transaction: taken})
		txB, txC := newTx(b, created), newTx(c, created)
		mustSave(t, f.db, &session.Change{Transaction: txB})
		mustSave(t, f.db, &session.Change{Transaction: txC})
		txA := newTx(a, created)
		missing := next(NewSession(ID()))
		changes := []*session.Change{
			{Session: next(a), Transaction: txA},                                                                   // creates a's transaction
			{Session: next(b), Transaction: moved(txB, session.TxPending), TxFrom: &created},                       // moves b's on
			{Session: next(next(c)), Transaction: moved(txC, session.TxPending), TxFrom: &created},                 // c is at version 1: the session's refusal
			{Session: next(d), Transaction: moved(newTx(d, created), session.TxPending), TxFrom: &created},         // no such transaction
			{Session: next(e), Transaction: &session.Transaction{ID: taken.ID, SessionID: e.ID, MerchantID: "m1"}}, // the id is taken
			{Session: missing, Transaction: newTx(missing, created)},                                               // no such session
			{Session: next(c), Transaction: moved(txC, session.TxFailed), TxFrom: &pending},                        // c's transaction is not pending
		}
		want := []error{nil, nil, session.ErrVersionConflict, session.ErrNotFound, session.ErrVersionConflict,
			session.ErrNotFound, session.ErrVersionConflict}
		errs := make([]error, len(changes))
		if batch {
			errs = f.db.SaveBatch(ctx(), changes)
		} else {
			for i, ch := range changes {
				errs[i] = f.db.Save(ctx(), ch)
			}
		}
		for i := range want {
			if !errors.Is(errs[i], want[i]) {
				t.Errorf("batch %v, change %d: %v, want %v", batch, i, errs[i], want[i])
			}
		}
		for _, tt := range []struct {
			s       *session.Session
			version int
		}{{a, 2}, {b, 2}, {c, 1}, {d, 1}, {e, 1}} {
			if got, err := f.db.Session(ctx(), tt.s.ID); err != nil || got.Version != tt.version {
				t.Errorf("batch %v: session %s = %+v, %v; want version %d", batch, tt.s.ID, got, err, tt.version)
			}
		}
		for _, tt := range []struct {
			tx    *session.Transaction
			state session.TransactionState
		}{{txA, session.TxCreated}, {txB, session.TxPending}, {txC, session.TxCreated}, {taken, session.TxCreated}} {
			if got, err := f.db.Transaction(ctx(), tt.tx.ID); err != nil || got.State != tt.state || got.SessionID != tt.tx.SessionID {
				t.Errorf("batch %v: transaction %s = %+v, %v; want state %v of session %s", batch, tt.tx.ID, got, err, tt.state, tt.tx.SessionID)
			}
		}
		if _, err := f.db.Session(ctx(), missing.ID); !errors.Is(err, session.ErrNotFound) {
			t.Errorf("batch %v: the missing session was stored: %v", batch, err)
		}
	}
}

func testSaveBatch(t *testing.T, f *fixture) {
	a, b, c := NewSession(ID()), NewSession(ID()), NewSession(ID())
	mustSave(t, f.db, &session.Change{Session: b})
	d := NewDelivery(a, "http://a.example/cb", T0)
	errs := f.db.SaveBatch(ctx(), []*session.Change{
		{Session: a, Deliveries: []*session.Delivery{d}},
		{Session: b},                      // taken
		{Session: next(NewSession(ID()))}, // a move of a session never stored
		{Session: c},
		{Session: next(c)}, // sees the one before it
		{Session: next(c)}, // and so conflicts with it
	})
	want := []error{nil, session.ErrVersionConflict, session.ErrNotFound, nil, nil, session.ErrVersionConflict}
	if len(errs) != len(want) {
		t.Fatalf("SaveBatch returned %d results for %d changes", len(errs), len(want))
	}
	for i := range want {
		if !errors.Is(errs[i], want[i]) {
			t.Errorf("change %d: %v, want %v", i, errs[i], want[i])
		}
	}
	if got, err := f.db.Session(ctx(), c.ID); err != nil || got.Version != 2 {
		t.Errorf("session c = %+v, %v, want version 2", got, err)
	}
	if ds, _ := f.db.SessionDeliveries(ctx(), a.ID); len(ds) != 1 {
		t.Errorf("deliveries of a: %d, want 1", len(ds))
	}
	if errs := f.db.SaveBatch(ctx(), nil); len(errs) != 0 {
		t.Errorf("empty SaveBatch: %v", errs)
	}
}

// testSaveBatchConcurrent saves from many goroutines at once, half of
// them conflicting, and checks every result and what is stored.
func testSaveBatchConcurrent(t *testing.T, f *fixture) {
	const n = 64
	base := make([]*session.Session, n)
	for i := range base {
		base[i] = NewSession(ID())
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := base[i]
			if i%2 == 1 {
				s = next(s) // version 2 of a session never stored
			}
			errs[i] = f.db.Save(ctx(), &session.Change{Session: s})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		want := error(nil)
		if i%2 == 1 {
			want = session.ErrNotFound
		}
		if !errors.Is(err, want) {
			t.Errorf("writer %d: %v, want %v", i, err, want)
		}
		_, err := f.db.Session(ctx(), base[i].ID)
		if (err == nil) != (i%2 == 0) {
			t.Errorf("session %d stored: %v", i, err)
		}
	}
}

func testByReference(t *testing.T, f *fixture) {
	var ids []string
	for range 3 {
		s := NewSession(ID())
		mustSave(t, f.db, &session.Change{Session: s})
		ids = append(ids, s.ID)
	}
	other := NewSession(ID())
	other.MerchantID = "m2"
	mustSave(t, f.db, &session.Change{Session: other})
	got, err := f.db.SessionsByReference(ctx(), "m1", "order-1", 2)
	if err != nil || len(got) != 2 || got[0].ID != ids[2] || got[1].ID != ids[1] {
		t.Errorf("SessionsByReference = %v, %v, want the newest two, newest first", got, err)
	}
	if got, err := f.db.SessionsByReference(ctx(), "m1", "order-2", 10); err != nil || len(got) != 0 {
		t.Errorf("SessionsByReference of an unknown reference = %v, %v", got, err)
	}
}

func testTouch(t *testing.T, f *fixture) {
	s := NewSession(ID())
	mustSave(t, f.db, &session.Change{Session: s})
	at := T0.Add(time.Minute)
	if err := f.db.Touch(ctx(), s.ID, at, session.Client{IP: "198.51.100.1", UserAgent: "phone"}); err != nil {
		t.Fatal(err)
	}
	got, err := f.db.Session(ctx(), s.ID)
	if err != nil || !got.LastRequest.Equal(at) || got.IP != "198.51.100.1" || got.UserAgent != "phone" || got.Version != 1 {
		t.Errorf("after Touch: %+v, %v, want the request recorded at version 1", got, err)
	}
	// An earlier touch does not replace a later one.
	if err := f.db.Touch(ctx(), s.ID, T0, session.Client{IP: "203.0.113.9"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.db.Session(ctx(), s.ID); got.IP != "198.51.100.1" {
		t.Errorf("an earlier touch replaced a later one: ip %q", got.IP)
	}
	// A save after the touch keeps its version; a touch never undoes it.
	s2 := next(s)
	s2.State = session.StateAuthenticationStarted
	mustSave(t, f.db, &session.Change{Session: s2, Moved: true})
	if err := f.db.Touch(ctx(), s.ID, T0.Add(2*time.Minute), session.Client{IP: "192.0.2.7"}); err != nil {
		t.Fatal(err)
	}
	got, _ = f.db.Session(ctx(), s.ID)
	if got.Version != 2 || got.State != session.StateAuthenticationStarted || got.IP != "192.0.2.7" {
		t.Errorf("touch after a save: version %d state %v ip %q, want 2, started, the touch", got.Version, got.State, got.IP)
	}
	if got, _ := f.db.SessionsByReference(ctx(), "m1", "order-1", 1); len(got) != 1 || got[0].IP != "192.0.2.7" {
		t.Errorf("SessionsByReference after a touch: %+v, want the touch", got)
	}
	if err := f.db.Touch(ctx(), ID(), at, session.Client{}); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Touch of a missing session: %v, want not found", err)
	}
	// A later save carries its own request and wins over older touches.
	s3 := next(s2)
	s3.LastRequest, s3.IP = T0.Add(3*time.Minute), "192.0.2.8"
	mustSave(t, f.db, &session.Change{Session: s3})
	if got, _ := f.db.Session(ctx(), s.ID); got.IP != "192.0.2.8" || got.Version != 3 {
		t.Errorf("save after touches: ip %q version %d, want the save's", got.IP, got.Version)
	}
}

func testClaimDue(t *testing.T, f *fixture) {
	var ss []*session.Session
	for i := range 4 {
		s := NewSession(ID())
		s.Expires = T0.Add(time.Duration(i) * time.Minute)
		mustSave(t, f.db, &session.Change{Session: s})
		ss = append(ss, s)
	}
	final := next(ss[1])
	final.State = session.StateCompleted
	mustSave(t, f.db, &session.Change{Session: final})
	now := T0.Add(2 * time.Minute) // ss[0..2] due, ss[1] final
	got, err := f.db.ClaimDue(ctx(), "a", now, time.Minute, 1)
	if err != nil || len(got) != 1 || got[0].ID != ss[0].ID {
		t.Fatalf("ClaimDue limit 1 = %v, %v, want the earliest", got, err)
	}
	got, err = f.db.ClaimDue(ctx(), "b", now, time.Minute, 10)
	if err != nil || len(got) != 1 || got[0].ID != ss[2].ID {
		t.Errorf("ClaimDue by another owner = %v, %v, want only the unclaimed due one", ids(got), err)
	}
	if got, _ := f.db.ClaimDue(ctx(), "c", now, time.Minute, 10); len(got) != 0 {
		t.Errorf("ClaimDue with all due claimed = %v, want none", ids(got))
	}
	// A lease runs out; ss[3] is due by then too.
	later := now.Add(time.Minute)
	if got, _ := f.db.ClaimDue(ctx(), "c", later, time.Minute, 10); len(got) != 3 {
		t.Errorf("ClaimDue after the leases = %v, want ss[0], ss[2], ss[3]", ids(got))
	}
	// A save ends the claim; a final session is never due.
	expired := next(ss[3])
	expired.State = session.StateAborted
	mustSave(t, f.db, &session.Change{Session: expired})
	if got, _ := f.db.ClaimDue(ctx(), "d", later.Add(30*time.Second), time.Minute, 10); len(got) != 0 {
		t.Errorf("ClaimDue of held sessions = %v, want none", ids(got))
	}
	if got, _ := f.db.ClaimDue(ctx(), "d", later.Add(time.Minute), time.Minute, 10); len(got) != 2 {
		t.Errorf("ClaimDue later = %v, want ss[0], ss[2]", ids(got))
	}
}

func ids(ss []*session.Session) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.ID)
	}
	return out
}

func webhookIDs(ds []*session.Delivery) map[string]bool {
	out := map[string]bool{}
	for _, d := range ds {
		out[d.WebhookID] = true
	}
	return out
}

func claim(owner string, now time.Time, limit, perHost int, busy map[string]int) session.Claim {
	return session.Claim{Owner: owner, Now: now, Lease: time.Minute, Limit: limit, PerHost: perHost, Busy: busy}
}

func testClaimDeliveries(t *testing.T, f *fixture) {
	s := NewSession(ID())
	var a, b []*session.Delivery
	for i := range 6 {
		a = append(a, NewDelivery(s, "http://A.example:8080/cb", T0.Add(time.Duration(i)*time.Second)))
	}
	for i := range 2 {
		b = append(b, NewDelivery(s, "http://b.example/cb?x=1", T0.Add(time.Duration(i)*time.Second)))
	}
	later := NewDelivery(s, "http://c.example/cb", T0.Add(time.Hour))
	all := append(append(append([]*session.Delivery{}, a...), b...), later)
	mustSave(t, f.db, &session.Change{Session: s, Deliveries: all})
	if a[0].Host() != "a.example:8080" {
		t.Fatalf("Host() = %q", a[0].Host())
	}

	now := T0.Add(10 * time.Second)
	got, err := f.db.ClaimDeliveries(ctx(), claim("x", now, 16, 4, map[string]int{"a.example:8080": 1}))
	if err != nil {
		t.Fatal(err)
	}
	ids := webhookIDs(got.Deliveries)
	if len(got.Deliveries) != 5 || !ids[a[0].WebhookID] || !ids[a[2].WebhookID] || ids[a[3].WebhookID] || !ids[b[0].WebhookID] || !ids[b[1].WebhookID] {
		t.Errorf("claimed %d: want the earliest 3 of host a (4 less 1 busy) and both of b", len(got.Deliveries))
	}
	if !got.Next.IsZero() && !got.Next.Equal(later.NextAttempt) {
		t.Errorf("Next = %v, want zero or %v", got.Next, later.NextAttempt)
	}
	if len(got.Damaged) != 0 {
		t.Errorf("Damaged = %v", got.Damaged)
	}
	// Another owner gets only what nobody holds.
	got2, err := f.db.ClaimDeliveries(ctx(), claim("y", now, 16, 10, nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(got2.Deliveries) != 3 || webhookIDs(got2.Deliveries)[a[0].WebhookID] {
		t.Errorf("second owner claimed %d, want the 3 left of host a", len(got2.Deliveries))
	}
	if got3, _ := f.db.ClaimDeliveries(ctx(), claim("z", now, 16, 10, nil)); len(got3.Deliveries) != 0 {
		t.Errorf("third owner claimed %d, want none", len(got3.Deliveries))
	}
	// Limit caps the total.
	if got4, _ := f.db.ClaimDeliveries(ctx(), claim("z", now.Add(2*time.Minute), 2, 10, nil)); len(got4.Deliveries) != 2 {
		t.Errorf("claim after the leases with limit 2: %d", len(got4.Deliveries))
	}
	// Release makes them claimable at once.
	if err := f.db.ReleaseDeliveries(ctx(), "y", []string{got2.Deliveries[0].WebhookID}); err != nil {
		t.Fatal(err)
	}
	if got5, _ := f.db.ClaimDeliveries(ctx(), claim("w", now, 16, 10, nil)); len(got5.Deliveries) != 1 || got5.Deliveries[0].WebhookID != got2.Deliveries[0].WebhookID {
		t.Errorf("claim after a release: %d, want the released one", len(got5.Deliveries))
	}
	// Nothing is due before its time.
	if got6, _ := f.db.ClaimDeliveries(ctx(), claim("v", T0.Add(-time.Second), 16, 10, nil)); len(got6.Deliveries) != 0 || got6.Next.IsZero() {
		t.Errorf("claim before anything is due: %d claimed, next %v", len(got6.Deliveries), got6.Next)
	}
}

func testRecordAttempt(t *testing.T, f *fixture) {
	s := NewSession(ID())
	d := NewDelivery(s, "http://a.example/cb", T0)
	mustSave(t, f.db, &session.Change{Session: s, Deliveries: []*session.Delivery{d}})
	got, err := f.db.ClaimDeliveries(ctx(), claim("x", T0, 16, 4, nil))
	if err != nil || len(got.Deliveries) != 1 {
		t.Fatalf("claim: %v, %v", got, err)
	}
	dl := got.Deliveries[0]
	dl.Attempts, dl.FirstAttempt, dl.LastStatusCode, dl.NextAttempt = 1, T0, 500, T0.Add(10*time.Minute)
	if err := f.db.RecordAttempt(ctx(), "y", dl); !errors.Is(err, session.ErrClaimLost) {
		t.Errorf("RecordAttempt by another owner: %v, want ErrClaimLost", err)
	}
	if err := f.db.RecordAttempt(ctx(), "x", dl); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.db.ClaimDeliveries(ctx(), claim("x", T0.Add(time.Minute), 16, 4, nil)); len(got.Deliveries) != 0 || !got.Next.Equal(T0.Add(10*time.Minute)) {
		t.Errorf("before the retry: %d claimed, next %v, want none and the retry time", len(got.Deliveries), got.Next)
	}
	got, _ = f.db.ClaimDeliveries(ctx(), claim("x", T0.Add(10*time.Minute), 16, 4, nil))
	if len(got.Deliveries) != 1 || got.Deliveries[0].Attempts != 1 || got.Deliveries[0].LastStatusCode != 500 {
		t.Fatalf("at the retry: %+v", got.Deliveries)
	}
	dl = got.Deliveries[0]
	dl.Attempts, dl.Status, dl.NextAttempt, dl.LastStatusCode = 2, session.DeliveryDelivered, time.Time{}, 200
	if err := f.db.RecordAttempt(ctx(), "x", dl); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.db.ClaimDeliveries(ctx(), claim("x", T0.Add(24*time.Hour), 16, 4, nil)); len(got.Deliveries) != 0 || !got.Next.IsZero() {
		t.Errorf("after delivery: %d claimed, next %v, want none", len(got.Deliveries), got.Next)
	}
	ds, err := f.db.SessionDeliveries(ctx(), s.ID)
	if err != nil || len(ds) != 1 || ds[0].Status != session.DeliveryDelivered || ds[0].Attempts != 2 {
		t.Errorf("SessionDeliveries = %+v, %v", ds, err)
	}
	ghost := NewDelivery(s, "http://a.example/cb", T0)
	if err := f.db.RecordAttempt(ctx(), "x", ghost); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("RecordAttempt of a missing delivery: %v, want not found", err)
	}
}

func testOutboxStats(t *testing.T, f *fixture) {
	st, err := f.db.OutboxStats(ctx())
	if err != nil || st.Pending != 0 || !st.Oldest.IsZero() {
		t.Errorf("empty OutboxStats = %+v, %v", st, err)
	}
	s := NewSession(ID())
	d1 := NewDelivery(s, "http://a.example/cb", T0)
	d2 := NewDelivery(s, "http://a.example/cb", T0.Add(time.Minute))
	mustSave(t, f.db, &session.Change{Session: s, Deliveries: []*session.Delivery{d2, d1}})
	if st, _ := f.db.OutboxStats(ctx()); st.Pending != 2 || !st.Oldest.Equal(T0) {
		t.Errorf("OutboxStats = %+v, want 2 pending, oldest %v", st, T0)
	}
	got, _ := f.db.ClaimDeliveries(ctx(), claim("x", T0, 16, 4, nil))
	if len(got.Deliveries) != 1 {
		t.Fatalf("claimed %d, want d1", len(got.Deliveries))
	}
	dl := got.Deliveries[0]
	dl.Status, dl.Attempts = session.DeliveryDelivered, 1
	if err := f.db.RecordAttempt(ctx(), "x", dl); err != nil {
		t.Fatal(err)
	}
	if st, _ := f.db.OutboxStats(ctx()); st.Pending != 1 || !st.Oldest.Equal(d2.Created) {
		t.Errorf("OutboxStats after one delivered = %+v, want 1, oldest d2", st)
	}
}

func testTimers(t *testing.T, f *fixture) {
	s := NewSession(ID())
	mustSave(t, f.db, &session.Change{Session: s, Timers: []session.Timer{{Key: "k1", Due: T0.Add(time.Second)}, {Key: "k2", Due: T0.Add(time.Minute)}}})
	got, next, err := f.db.ClaimTimers(ctx(), "x", T0, time.Minute, 10)
	if err != nil || len(got) != 0 || !next.Equal(T0.Add(time.Second)) {
		t.Errorf("ClaimTimers before due = %v, %v, %v", got, next, err)
	}
	got, next, _ = f.db.ClaimTimers(ctx(), "x", T0.Add(time.Second), time.Minute, 10)
	if len(got) != 1 || got[0].Key != "k1" || !got[0].Due.Equal(T0.Add(time.Second)) || !next.Equal(T0.Add(time.Minute)) {
		t.Fatalf("ClaimTimers = %v, next %v", got, next)
	}
	if got, _, _ := f.db.ClaimTimers(ctx(), "y", T0.Add(time.Second), time.Minute, 10); len(got) != 0 {
		t.Errorf("another owner claimed a held timer: %v", got)
	}
	// A change sets k1 again meanwhile: done with the old one leaves it.
	mustSave(t, f.db, &session.Change{Session: next1(s), Timers: []session.Timer{{Key: "k1", Due: T0.Add(2 * time.Second)}}})
	if err := f.db.DoneTimer(ctx(), "x", got[0]); err != nil {
		t.Fatal(err)
	}
	got, _, _ = f.db.ClaimTimers(ctx(), "y", T0.Add(2*time.Second), time.Minute, 10)
	if len(got) != 1 || !got[0].Due.Equal(T0.Add(2*time.Second)) {
		t.Fatalf("k1 set again = %v", got)
	}
	if err := f.db.DoneTimer(ctx(), "y", got[0]); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := f.db.ClaimTimers(ctx(), "z", T0.Add(3*time.Second), time.Minute, 10); len(got) != 0 {
		t.Errorf("done timer claimed again: %v", got)
	}
	// A zero Due deletes.
	mustSave(t, f.db, &session.Change{Session: next1(s), Timers: []session.Timer{{Key: "k2"}}})
	if got, next, _ := f.db.ClaimTimers(ctx(), "z", T0.Add(time.Hour), time.Minute, 10); len(got) != 0 || !next.IsZero() {
		t.Errorf("deleted timer: %v, next %v", got, next)
	}
}

// next1 returns the session with the id at one version past its stored one.
func next1(s *session.Session) *session.Session {
	s.Version++
	c := *s
	return &c
}

func testFeed(t *testing.T, f *fixture) {
	a, b := NewSession(ID()), NewSession(ID())
	mustSave(t, f.db, &session.Change{Session: a})
	// Published before Save returns, so it is queued already.
	cs, lost := f.sub.Take()
	if lost != 0 || len(cs) != 1 || cs[0].Session.ID != a.ID {
		t.Fatalf("after Save: %d changes (%d lost), want a", len(cs), lost)
	}
	if err := f.db.Save(ctx(), &session.Change{Session: a}); err == nil {
		t.Fatal("replayed save succeeded")
	}
	f.db.SaveBatch(ctx(), []*session.Change{{Session: b}, {Session: next(b)}, {Session: next(a)}, {Session: next(a)}})
	cs, _ = f.sub.Take()
	var got []string
	for _, c := range cs {
		got = append(got, fmt.Sprintf("%s@%d", c.Session.ID, c.Session.Version))
	}
	want := []string{b.ID + "@1", b.ID + "@2", a.ID + "@2"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("published %v, want %v (in commit order, failed ones left out)", got, want)
	}
	// Touches are not changes.
	if err := f.db.Touch(ctx(), a.ID, T0, session.Client{}); err != nil {
		t.Fatal(err)
	}
	if cs, _ := f.sub.Take(); len(cs) != 0 {
		t.Errorf("a touch was published: %v", cs)
	}
}
