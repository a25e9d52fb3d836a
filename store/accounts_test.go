package store

import (
	"context"
	"errors"
	"testing"

	"github.com/sessiond/sessiond/session"
)

// TestResetDeletesAccounts shows that sandbox.reset takes a merchant's
// bank accounts, payouts and refunds with it, index entries included, and
// leaves another merchant's alone.
func TestResetDeletesAccounts(t *testing.T) {
	db, _ := MustOpen(t)
	ctx := context.Background()
	const m1, m2 = "01955555-0000-7000-8000-000000000001", "01955555-0000-7000-8000-000000000002"
	for _, m := range []string{m1, m2} {
		if err := db.PutAccount(ctx, &session.Account{ID: "ba_" + m, MerchantID: m, CustomerID: "c", Created: t0}); err != nil {
			t.Fatal(err)
		}
		for _, kind := range []string{session.TxTypeWithdrawal, session.TxTypeRefund} {
			tx := &session.Transaction{ID: kind + m, Type: kind, MerchantID: m, MerchantReference: "r"}
			if kind == session.TxTypeRefund {
				tx.OriginalTransactionID = "dep" + m
			}
			if err := db.Save(ctx, &session.Change{Transaction: tx}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := db.ResetMerchant(ctx, m1); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Account(ctx, "ba_"+m1); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("m1's account after reset: %v, want not found", err)
	}
	if _, err := db.Transaction(ctx, session.TxTypeWithdrawal+m1); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("m1's payout after reset: %v, want not found", err)
	}
	for name, n := range map[string]func() (int, error){
		"Accounts":                func() (int, error) { as, err := db.Accounts(ctx, m1, "c"); return len(as), err },
		"Transactions":            func() (int, error) { ts, err := db.Transactions(ctx, m1, "", 10); return len(ts), err },
		"TransactionsByReference": func() (int, error) { ts, err := db.TransactionsByReference(ctx, m1, "r", 10); return len(ts), err },
		"Refunds":                 func() (int, error) { ts, err := db.Refunds(ctx, "dep"+m1); return len(ts), err },
	} {
		if got, err := n(); err != nil || got != 0 {
			t.Errorf("%s of m1 after reset: %d, %v; want none", name, got, err)
		}
	}
	if as, err := db.Accounts(ctx, m2, "c"); err != nil || len(as) != 1 {
		t.Errorf("m2's accounts: %d, %v; want 1", len(as), err)
	}
	if ts, err := db.Transactions(ctx, m2, "", 10); err != nil || len(ts) != 2 {
		t.Errorf("m2's transactions: %d, %v; want 2", len(ts), err)
	}
	if ts, err := db.Refunds(ctx, "dep"+m2); err != nil || len(ts) != 1 {
		t.Errorf("m2's refunds: %d, %v; want 1", len(ts), err)
	}
}
