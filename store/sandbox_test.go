package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/store"
	"golang.org/x/crypto/argon2"
)

// TestResetMerchant: ResetMerchant deletes one merchant's sessions with
// their transactions, deliveries and index entries; the other merchant's
// stay, and the outbox counts and claims only those.
func TestResetMerchant(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(filepath.Join(t.TempDir(), "sessiond.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	svc := session.NewService(db, argon2.IDKey)
	state := session.State(1)
	amount := session.Decimal("5")
	var ids, txs, accounts, payouts []string
	var merchants []*session.Merchant
	for _, name := range []string{"a", "b"} {
		m, _, err := svc.AddMerchant(ctx, name, session.Credentials{})
		if err != nil {
			t.Fatal(err)
		}
		merchants = append(merchants, m)
		p := session.Params{Amount: &amount, CountryID: "se", MerchantReference: "ref",
			Callbacks: []session.Callback{{URL: "http://" + name + ".example/cb", SessionState: &state}}}
		s, token, err := svc.Create(ctx, m, session.TypeDeposit, &p)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range []session.State{1, 2, 3, 4, 5} {
			if _, err := svc.ClientTransition(ctx, token, session.Move{State: st}, session.Client{}); err != nil {
				t.Fatal(err)
			}
		}
		got, _ := svc.Get(ctx, m, s.ID)
		ids, txs = append(ids, s.ID), append(txs, got.TransactionID)
		// A bank account and a payout to it, with a callback: a
		// transaction and a delivery of no session.
		a, err := svc.CreateAccount(ctx, m, &session.NewAccount{CustomerID: "cust_1", CountryID: "se", Holder: "A. Holder", IBAN: "SE4550000000058398257466"})
		if err != nil {
			t.Fatal(err)
		}
		txState := session.TransactionState(4)
		po, err := svc.CreatePayout(ctx, m, &session.Payout{Amount: &amount, BankAccountID: a.ID, MerchantReference: "po",
			Callbacks: []session.Callback{{URL: "http://" + name + ".example/tx", TransactionState: &txState}}})
		if err != nil {
			t.Fatal(err)
		}
		accounts, payouts = append(accounts, a.ID), append(payouts, po.ID)
	}
	before, _ := db.OutboxStats(ctx)
	if before.Pending < 2 {
		t.Fatalf("pending before: %d, want at least 2", before.Pending)
	}

	if err := db.ResetMerchant(ctx, merchants[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Session(ctx, ids[0]); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("reset merchant's session: %v, want not found", err)
	}
	if _, err := db.Transaction(ctx, txs[0]); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("reset merchant's transaction: %v, want not found", err)
	}
	if ds, err := db.SessionDeliveries(ctx, ids[0]); err != nil || len(ds) != 0 {
		t.Errorf("reset merchant's deliveries: %d, %v; want none", len(ds), err)
	}
	if ss, err := db.SessionsByReference(ctx, merchants[0].ID, "ref", 10); err != nil || len(ss) != 0 {
		t.Errorf("reset merchant's sessions by reference: %d, %v; want none", len(ss), err)
	}
	if _, err := db.Session(ctx, ids[1]); err != nil {
		t.Errorf("other merchant's session: %v", err)
	}
	if _, err := db.Transaction(ctx, txs[1]); err != nil {
		t.Errorf("other merchant's transaction: %v", err)
	}
	if ss, _ := db.SessionsByReference(ctx, merchants[1].ID, "ref", 10); len(ss) != 1 {
		t.Errorf("other merchant's sessions by reference: %d, want 1", len(ss))
	}
	for i, want := range []error{session.ErrNotFound, nil} {
		if _, err := db.Account(ctx, accounts[i]); !errors.Is(err, want) {
			t.Errorf("merchant %d's bank account: %v, want %v", i, err, want)
		}
		if _, err := db.Transaction(ctx, payouts[i]); !errors.Is(err, want) {
			t.Errorf("merchant %d's payout: %v, want %v", i, err, want)
		}
	}
	claimed, err := db.ClaimDeliveries(ctx, session.Claim{Owner: "t", Now: time.Now().Add(time.Hour), Lease: time.Minute, Limit: 100, PerHost: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range claimed.Deliveries {
		if d.MerchantID != merchants[1].ID {
			t.Errorf("claimed a delivery of the reset merchant: %+v", d)
		}
	}
	if len(claimed.Damaged) != 0 || len(claimed.Deliveries) == 0 {
		t.Errorf("claimed %d (damaged %d), want the other merchant's", len(claimed.Deliveries), len(claimed.Damaged))
	}
	if st, _ := db.OutboxStats(ctx); st.Pending != len(claimed.Deliveries) {
		t.Errorf("pending after: %d, want the other merchant's %d", st.Pending, len(claimed.Deliveries))
	}
	// Nothing of the reset merchant is left due for expiry.
	due, err := db.ClaimDue(ctx, "t", time.Now().Add(24*time.Hour), time.Minute, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(due) != 1 || due[0].ID != ids[1] {
		t.Errorf("due after reset: %d sessions, want the other merchant's", len(due))
	}
}
