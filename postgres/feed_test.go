package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/postgres/pgtest"
	"github.com/sessiond/sessiond/session"
)

// feedLog collects what a DB's feed publishes.
type feedLog struct {
	mu      sync.Mutex
	changes []*session.Change
	errs    []error
}

func (f *feedLog) Publish(cs ...*session.Change) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.changes = append(f.changes, cs...)
}

func (f *feedLog) onError(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, err)
}

// versions returns the versions of the session published so far, in order.
func (f *feedLog) versions(id string) []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	var vs []int
	for _, c := range f.changes {
		if c.Session != nil && c.Session.ID == id {
			vs = append(vs, c.Session.Version)
		}
	}
	return vs
}

// waitFor polls cond until it holds or 10s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, not synchronising
	}
}

func openReplica(t *testing.T, url string, f *feedLog) *DB {
	t.Helper()
	db, err := Open(context.Background(), url, Options{Publisher: f, OnError: f.onError})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func seq(n int) []int {
	vs := make([]int, n)
	for i := range vs {
		vs[i] = i + 1
	}
	return vs
}

// TestFeedAcrossReplicas: changes saved on either of two DBs on one
// database reach both feeds, in version order, each published by the DB
// that saved it before its Save returned; a change too large for a
// notification arrives too.
func TestFeedAcrossReplicas(t *testing.T) {
	url := pgtest.URL(t)
	var fa, fb feedLog
	a, b := openReplica(t, url, &fa), openReplica(t, url, &fb)
	ctx := context.Background()
	for v := 1; v <= 6; v++ {
		db := a
		if v%2 == 0 {
			db = b
		}
		s := newSession("s1", v)
		if v == 5 {
			s.Params.BrandName = strings.Repeat("x", 3*maxPayload)
		}
		if err := db.Save(ctx, &session.Change{Session: s, Moved: v > 1}); err != nil {
			t.Fatal(err)
		}
		f := &fa
		if db == b {
			f = &fb
		}
		if got := f.versions("s1"); len(got) == 0 || got[len(got)-1] != v {
			t.Errorf("after Save of version %d its DB had published %v", v, got)
		}
	}
	for name, f := range map[string]*feedLog{"A": &fa, "B": &fb} {
		waitFor(t, name+"'s feed", func() bool { return len(f.versions("s1")) == 6 })
		if got := fmt.Sprint(f.versions("s1")); got != fmt.Sprint(seq(6)) {
			t.Errorf("%s saw versions %s, want 1..6 in order", name, got)
		}
	}
	if got := fa.changes[4].Session.Params.BrandName; len(got) != 3*maxPayload {
		t.Errorf("the large change arrived with a brand name of %d bytes", len(got))
	}
	if !fa.changes[1].Moved || fa.changes[0].Moved {
		t.Error("Moved not carried by the feed")
	}
}

// TestFeedCatchesUpAfterReconnect kills the listening connection of A
// again and again while B saves a stream of versions: A still sees every
// version once, in order.
func TestFeedCatchesUpAfterReconnect(t *testing.T) {
	url := pgtest.URL(t)
	var fa, fb feedLog
	a, b := openReplica(t, url, &fa), openReplica(t, url, &fb)
	ctx := context.Background()
	const n = 300
	kills, killed := 0, uint32(0)
	for v := 1; v <= n; v++ {
		if err := b.Save(ctx, &session.Change{Session: newSession("s1", v)}); err != nil {
			t.Fatal(err)
		}
		if v%50 == 25 {
			// Kill a listening connection, not one already dead: wait for
			// the reconnect after the previous kill.
			waitFor(t, "A to listen again", func() bool { return a.feed.pid.Load() != killed })
			killed = a.feed.pid.Load()
			var ok bool
			if err := b.pool.QueryRow(ctx, "SELECT pg_terminate_backend($1)", killed).Scan(&ok); err != nil || !ok {
				t.Fatalf("terminate A's listener: %v, %v", ok, err)
			}
			kills++
		}
	}
	waitFor(t, "A's feed to catch up", func() bool { return len(fa.versions("s1")) >= n })
	if got := fmt.Sprint(fa.versions("s1")); got != fmt.Sprint(seq(n)) {
		t.Errorf("A saw %d versions %s, want 1..%d once each in order", len(fa.versions("s1")), got, n)
	}
	fa.mu.Lock()
	defer fa.mu.Unlock()
	if len(fa.errs) < kills {
		t.Errorf("%d reconnects reported, want at least %d", len(fa.errs), kills)
	}
}

// TestMerchantChangesReachReplicas: a merchant changed, or a token of it
// revoked, on B is announced to A, so that A forgets what it remembers.
func TestMerchantChangesReachReplicas(t *testing.T) {
	url := pgtest.URL(t)
	var mu sync.Mutex
	var told []string
	f := &feedLog{}
	a, err := Open(context.Background(), url, Options{Publisher: f, OnMerchantChanged: func(id string) {
		mu.Lock()
		told = append(told, id)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b := openReplica(t, url, &feedLog{})
	ctx := context.Background()
	m := &session.Merchant{ID: "m1", Name: "shop", PublicKey: "pk_1", CallbackSecret: "whsec_a"}
	if err := b.CreateMerchant(ctx, m); err != nil {
		t.Fatal(err)
	}
	m.CallbackSecret = "whsec_b"
	if err := b.PutMerchant(ctx, m); err != nil {
		t.Fatal(err)
	}
	tok := &session.Token{Hash: []byte("h"), Kind: session.TokenRefresh, MerchantID: "m1", Expires: t0}
	if err := b.PutTokens(ctx, []*session.Token{tok}, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.PutTokens(ctx, nil, [][]byte{tok.Hash}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "A to be told twice", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(told) >= 2
	})
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(told) != "[m1 m1]" {
		t.Errorf("A was told %q, want m1 for the update and m1 for the revocation", told)
	}
}

// TestFeedDataIsFeedChangesJSON: the change as logged, put together by
// hand, is byte for byte what json.Marshal makes of its feedChange, and
// decodes to the change, for changes with and without each member.
func TestFeedDataIsFeedChangesJSON(t *testing.T) {
	s := newSession("01955555-0000-7000-8000-000000000001", 2)
	s.Params.MerchantReference = `<order & "1">` // escaped by json.Marshal
	from, to := session.TxCreated, session.TxCreated+1
	tx := &session.Transaction{ID: "tx1", SessionID: s.ID, State: to}
	d1 := &session.Delivery{WebhookID: "w1", SessionID: s.ID}
	d2 := &session.Delivery{WebhookID: "w2", SessionID: s.ID}
	for name, c := range map[string]*session.Change{
		"session":                     {Session: s},
		"moved session":               {Session: s, Moved: true},
		"session, move of its tx":     {Session: s, Transaction: tx, TxFrom: &from, Deliveries: []*session.Delivery{d1, d2}},
		"transaction alone":           {Transaction: tx},
		"session with one delivery":   {Session: s, Deliveries: []*session.Delivery{d1}},
		"transaction moved, no other": {Transaction: tx, TxFrom: &from, Moved: true},
	} {
		e, err := encodeChange(c)
		if err != nil {
			t.Fatal(err)
		}
		want := marshalFeedChange(t, e)
		got := e.feedData()
		if string(got) != string(want) {
			t.Errorf("%s: feedData\n%s\nwant\n%s", name, got, want)
		}
		back, raw, err := decodeFeedChange(got)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if string(raw) != string(e.session) || len(back.Deliveries) != len(c.Deliveries) || back.Moved != c.Moved ||
			(c.TxFrom == nil) != (back.TxFrom == nil) || (back.Transaction == nil) != (c.Transaction == nil) {
			t.Errorf("%s: decoded %+v, want %+v", name, back, c)
		}
	}
}

// marshalFeedChange encodes e's change as feedData did before it was put
// together by hand: json.Marshal of its feedChange.
func marshalFeedChange(tb testing.TB, e *encodedChange) []byte {
	fc := feedChange{Session: e.session, Transaction: e.tx, TxFrom: e.c.TxFrom, Moved: e.c.Moved}
	for _, d := range e.deliveries {
		fc.Deliveries = append(fc.Deliveries, d)
	}
	b, err := json.Marshal(fc)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
