package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/sessiond/sessiond/session"
)

// testAccountStore checks session.AccountStore, for a store that
// implements it: bank accounts, payouts and refunds written without a
// session, and the transaction indexes.
func testAccountStore(t *testing.T, f *fixture) {
	as, ok := f.db.(session.AccountStore)
	if !ok {
		t.Skip("the store does not implement session.AccountStore")
	}
	account := func(id, merchant, customer string, at time.Time) *session.Account {
		return &session.Account{ID: id, MerchantID: merchant, CustomerID: customer, CountryID: "se", CurrencyID: "sek",
			Holder: "H " + id, IBAN: "SE35" + id, Created: at}
	}
	for _, a := range []*session.Account{
		account("ba_2", "m1", "c1", T0.Add(2*time.Second)),
		account("ba_1", "m1", "c1", T0.Add(time.Second)),
		account("ba_3", "m1", "c2", T0),
		account("ba_4", "m2", "c1", T0),
	} {
		if err := as.PutAccount(ctx(), a); err != nil {
			t.Fatalf("PutAccount %s: %v", a.ID, err)
		}
	}
	if got, err := as.Account(ctx(), "ba_1"); err != nil || got.Holder != "H ba_1" || got.MerchantID != "m1" || !got.Created.Equal(T0.Add(time.Second)) {
		t.Errorf("Account ba_1 = %+v, %v", got, err)
	}
	if _, err := as.Account(ctx(), "ba_none"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Account unknown: %v, want not found", err)
	}

	// An account picked in a session is stored with the session's move.
	s := NewSession(ID())
	s.CustomerID = "c1"
	mustSave(t, f.db, &session.Change{Session: s, Account: account("ba_0", "m1", "c1", T0.Add(3*time.Second))})
	accts, err := as.Accounts(ctx(), "m1", "c1")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range accts {
		got = append(got, a.ID)
	}
	if want := []string{"ba_1", "ba_2", "ba_0"}; !equal(got, want) {
		t.Errorf("Accounts(m1, c1) = %v, want %v (oldest first, m1's c1 only)", got, want)
	}
	if accts, err := as.Accounts(ctx(), "m1", "nobody"); err != nil || len(accts) != 0 {
		t.Errorf("Accounts of a customer without any = %v, %v; want none", accts, err)
	}

	// A session's transaction and transactions without a session (a
	// payout, a refund of the deposit) are all in the indexes.
	deposit := &session.Transaction{ID: ID(), Type: session.TxTypeDeposit, SessionID: s.ID, MerchantID: "m1", MerchantReference: "order-1", Amount: 5000}
	mustSave(t, f.db, &session.Change{Session: next(s), Transaction: deposit})
	payout := &session.Transaction{ID: ID(), Type: session.TxTypeWithdrawal, MerchantID: "m1", MerchantReference: "payout-1", State: session.TxPending}
	mustSave(t, f.db, &session.Change{Transaction: payout})
	refund := &session.Transaction{ID: ID(), Type: session.TxTypeRefund, MerchantID: "m1", MerchantReference: "order-1", OriginalTransactionID: deposit.ID}
	mustSave(t, f.db, &session.Change{Transaction: refund})
	other := &session.Transaction{ID: ID(), Type: session.TxTypeWithdrawal, MerchantID: "m2", MerchantReference: "order-1"}
	mustSave(t, f.db, &session.Change{Transaction: other})
	if err := f.db.Save(ctx(), &session.Change{Transaction: payout}); !errors.Is(err, session.ErrVersionConflict) {
		t.Errorf("a new transaction with a stored id: %v, want version conflict", err)
	}
	if got, err := f.db.Transaction(ctx(), payout.ID); err != nil || got.State != session.TxPending || got.SessionID != "" {
		t.Errorf("Transaction payout = %+v, %v", got, err)
	}

	txIDs := func(ts []*session.Transaction, err error) []string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		out := []string{}
		for _, tx := range ts {
			out = append(out, tx.ID)
		}
		return out
	}
	if got, want := txIDs(as.Transactions(ctx(), "m1", "", 10)), []string{refund.ID, payout.ID, deposit.ID}; !equal(got, want) {
		t.Errorf("Transactions(m1) = %v, want %v (newest first)", got, want)
	}
	if got, want := txIDs(as.Transactions(ctx(), "m1", "", 2)), []string{refund.ID, payout.ID}; !equal(got, want) {
		t.Errorf("Transactions(m1, limit 2) = %v, want %v", got, want)
	}
	if got, want := txIDs(as.Transactions(ctx(), "m1", payout.ID, 2)), []string{deposit.ID}; !equal(got, want) {
		t.Errorf("Transactions(m1) after %s = %v, want %v", payout.ID, got, want)
	}
	if got, want := txIDs(as.TransactionsByReference(ctx(), "m1", "order-1", 10)), []string{refund.ID, deposit.ID}; !equal(got, want) {
		t.Errorf("TransactionsByReference(m1, order-1) = %v, want %v", got, want)
	}
	if got, want := txIDs(as.TransactionsByReference(ctx(), "m2", "order-1", 10)), []string{other.ID}; !equal(got, want) {
		t.Errorf("TransactionsByReference(m2, order-1) = %v, want %v", got, want)
	}
	if got, want := txIDs(as.Refunds(ctx(), deposit.ID)), []string{refund.ID}; !equal(got, want) {
		t.Errorf("Refunds(deposit) = %v, want %v", got, want)
	}
	if got := txIDs(as.Refunds(ctx(), payout.ID)); len(got) != 0 {
		t.Errorf("Refunds(payout) = %v, want none", got)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
