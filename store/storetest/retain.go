package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sessiond/sessiond/session"
)

// IDAt returns a new session id made at t, as the domain makes them: a
// version 7 UUID whose time is t's, later ones sorting after.
func IDAt(t time.Time) string {
	return fmt.Sprintf("%s-7000-8000-%012d", session.IDAt(t)[:13], seq.Add(1))
}

// retainAll calls Retain batch by batch, as the domain's chore does, and
// returns how many sessions it deleted and how many calls it made.
func retainAll(t *testing.T, db session.Store, cutoff time.Time, limit int) (deleted, calls int) {
	t.Helper()
	after := ""
	for {
		n, next, err := db.Retain(ctx(), cutoff, after, limit)
		calls++
		if err != nil {
			t.Fatalf("Retain: %v", err)
		}
		deleted += n
		if next == "" {
			return deleted, calls
		}
		if next <= after {
			t.Fatalf("Retain went from %q back to %q", after, next)
		}
		after = next
	}
}

// testRetain checks that Retain deletes final sessions older than the
// cutoff with their transaction, deliveries, timers and bank account, and
// keeps every session that is new, not final, has a pending delivery, or
// whose transaction was refunded.
func testRetain(t *testing.T, f *fixture) {
	cutoff := T0.Add(90 * 24 * time.Hour)
	done := session.StateCompleted
	// final makes a final session created at t, with a transaction, a
	// delivered callback, a bank account picked in it and sandbox timers.
	type made struct {
		s  *session.Session
		tx *session.Transaction
		d  *session.Delivery
	}
	final := func(t0 time.Time, ref string) made {
		s := NewSession(IDAt(t0))
		s.Created, s.Expires, s.Params.MerchantReference = t0, t0.Add(30*time.Minute), ref
		s.CustomerID = "cust-" + s.ID
		mustSave(t, f.db, &session.Change{Session: s, Timers: []session.Timer{{Key: "sandbox/session/" + s.ID, Due: t0.Add(time.Minute)}}})
		s = next(s)
		s.State = done
		s.BankAccount = &session.BankAccount{ID: "ba_" + s.ID, Holder: "H", IBAN: "SE35"}
		s.TransactionID = IDAt(t0)
		tx := &session.Transaction{ID: s.TransactionID, Type: session.TxTypeDeposit, SessionID: s.ID, MerchantID: "m1",
			MerchantReference: ref, State: session.TxCompleted, Amount: 100, Created: t0}
		d := NewDelivery(s, "http://a.example/cb", t0)
		d.Status, d.NextAttempt, d.Attempts = session.DeliveryDelivered, time.Time{}, 1
		acct := &session.Account{ID: s.BankAccount.ID, MerchantID: "m1", CustomerID: s.CustomerID, CountryID: "se",
			CurrencyID: "sek", Holder: "H", IBAN: "SE35", SessionID: s.ID, Created: t0}
		mustSave(t, f.db, &session.Change{Session: s, Transaction: tx, Deliveries: []*session.Delivery{d}, Account: acct,
			Timers: []session.Timer{{Key: "sandbox/transaction/" + tx.ID, Due: t0.Add(time.Hour)}}})
		if err := f.db.Touch(ctx(), s.ID, t0.Add(time.Second), session.Client{IP: "192.0.2.1"}); err != nil {
			t.Fatal(err)
		}
		return made{s, tx, d}
	}
	old1 := final(T0, "old-1")
	old2 := final(T0.Add(time.Hour), "old-2")
	refunded := final(T0.Add(2*time.Hour), "refunded")
	refund := &session.Transaction{ID: IDAt(T0.Add(3 * time.Hour)), Type: session.TxTypeRefund, MerchantID: "m1",
		OriginalTransactionID: refunded.tx.ID, Amount: 1, Created: T0.Add(3 * time.Hour)}
	mustSave(t, f.db, &session.Change{Transaction: refund})
	waiting := final(T0.Add(4*time.Hour), "waiting")
	pending := NewDelivery(waiting.s, "http://b.example/cb", T0.Add(4*time.Hour))
	mustSave(t, f.db, &session.Change{Session: next(waiting.s), Deliveries: []*session.Delivery{pending}})
	open := NewSession(IDAt(T0.Add(5 * time.Hour))) // never final
	open.Created = T0.Add(5 * time.Hour)
	mustSave(t, f.db, &session.Change{Session: open})
	young := final(cutoff.Add(time.Millisecond), "young")

	deleted, calls := retainAll(t, f.db, cutoff, 2)
	if deleted != 2 || calls < 3 {
		t.Errorf("Retain deleted %d in %d calls of 2, want 2 sessions in at least 3 calls", deleted, calls)
	}
	gone := func(m made) {
		t.Helper()
		if _, err := f.db.Session(ctx(), m.s.ID); !errors.Is(err, session.ErrNotFound) {
			t.Errorf("session %s after Retain: %v, want not found", m.s.ID, err)
		}
		if _, err := f.db.Transaction(ctx(), m.tx.ID); !errors.Is(err, session.ErrNotFound) {
			t.Errorf("transaction of %s after Retain: %v, want not found", m.s.ID, err)
		}
		if ds, err := f.db.SessionDeliveries(ctx(), m.s.ID); err != nil || len(ds) != 0 {
			t.Errorf("deliveries of %s after Retain: %v, %v; want none", m.s.ID, ds, err)
		}
		if ss, err := f.db.SessionsByReference(ctx(), "m1", m.s.Params.MerchantReference, 10); err != nil || len(ss) != 0 {
			t.Errorf("by reference %s after Retain: %d, %v; want none", m.s.Params.MerchantReference, len(ss), err)
		}
		if as, ok := f.db.(session.AccountStore); ok {
			if _, err := as.Account(ctx(), m.s.BankAccount.ID); !errors.Is(err, session.ErrNotFound) {
				t.Errorf("bank account of %s after Retain: %v, want not found", m.s.ID, err)
			}
			if accts, err := as.Accounts(ctx(), "m1", m.s.CustomerID); err != nil || len(accts) != 0 {
				t.Errorf("customer accounts of %s after Retain: %v, %v; want none", m.s.ID, accts, err)
			}
			if ts, err := as.TransactionsByReference(ctx(), "m1", m.s.Params.MerchantReference, 10); err != nil || len(ts) != 0 {
				t.Errorf("transactions by reference of %s after Retain: %v, %v; want none", m.s.ID, ts, err)
			}
		}
	}
	kept := func(m made) {
		t.Helper()
		if _, err := f.db.Session(ctx(), m.s.ID); err != nil {
			t.Errorf("session %s after Retain: %v, want kept", m.s.ID, err)
		}
		if _, err := f.db.Transaction(ctx(), m.tx.ID); err != nil {
			t.Errorf("transaction of %s after Retain: %v, want kept", m.s.ID, err)
		}
		if ds, err := f.db.SessionDeliveries(ctx(), m.s.ID); err != nil || len(ds) == 0 {
			t.Errorf("deliveries of %s after Retain: %v, %v; want kept", m.s.ID, ds, err)
		}
	}
	gone(old1)
	gone(old2)
	kept(refunded)
	kept(waiting)
	kept(young)
	if _, err := f.db.Session(ctx(), open.ID); err != nil {
		t.Errorf("a session that is not final: %v, want kept", err)
	}
	if as, ok := f.db.(session.AccountStore); ok {
		ts, err := as.Transactions(ctx(), "m1", "", 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, tx := range ts {
			if tx.ID == old1.tx.ID || tx.ID == old2.tx.ID {
				t.Errorf("the merchant's transactions still list %s", tx.ID)
			}
		}
	}
	// The timers of the deleted sessions went with them; the others stay.
	timers, _, err := f.db.ClaimTimers(ctx(), "x", cutoff.Add(24*time.Hour), time.Minute, 100)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, tm := range timers {
		keys[tm.Key] = true
	}
	for _, m := range []made{old1, old2} {
		if keys["sandbox/session/"+m.s.ID] || keys["sandbox/transaction/"+m.tx.ID] {
			t.Errorf("timers of %s after Retain: %v", m.s.ID, timers)
		}
	}
	for _, m := range []made{refunded, waiting, young} {
		if !keys["sandbox/session/"+m.s.ID] || !keys["sandbox/transaction/"+m.tx.ID] {
			t.Errorf("timers of kept %s after Retain: %v", m.s.ID, timers)
		}
	}
	// The pending delivery is kept, and claimed as before.
	claimed, err := f.db.ClaimDeliveries(ctx(), claim("x", cutoff, 16, 4, nil))
	if err != nil || len(claimed.Deliveries) != 1 || claimed.Deliveries[0].WebhookID != pending.WebhookID {
		t.Fatalf("ClaimDeliveries after Retain = %+v, %v; want the pending one", claimed.Deliveries, err)
	}
	if n, _ := retainAll(t, f.db, cutoff, 500); n != 0 {
		t.Errorf("a second Retain deleted %d, want 0", n)
	}
	// Once delivered, the session goes with the next pass.
	dl := claimed.Deliveries[0]
	dl.Status, dl.NextAttempt, dl.Attempts = session.DeliveryDelivered, time.Time{}, 1
	if err := f.db.RecordAttempt(ctx(), "x", dl); err != nil {
		t.Fatal(err)
	}
	if n, _ := retainAll(t, f.db, cutoff, 500); n != 1 {
		t.Errorf("Retain after the delivery = %d, want 1", n)
	}
	gone(waiting)
	if st, err := f.db.OutboxStats(ctx()); err != nil || st.Pending != 0 {
		t.Errorf("OutboxStats after Retain = %+v, %v; want none pending", st, err)
	}
}
