package postgres

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sessiond/sessiond/postgres/pgtest"
	"github.com/sessiond/sessiond/session"
)

// TestResetMerchant: a reset deletes the merchant's sessions,
// transactions (payouts and refunds included), deliveries, timers and bank
// accounts, and leaves another merchant's.
func TestResetMerchant(t *testing.T) {
	var f feedLog
	db := openReplica(t, pgtest.URL(t), &f)
	ctx := context.Background()
	for _, m := range []string{"m1", "m2"} {
		s := newSession("s_"+m, 1)
		s.MerchantID = m
		deposit := &session.Transaction{ID: "tx_dep_" + m, Type: session.TxTypeDeposit, SessionID: s.ID, MerchantID: m,
			State: session.TxCompleted, Amount: 100_00}
		d := &session.Delivery{WebhookID: "wh_" + m, MerchantID: m, SessionID: s.ID, URL: "http://127.0.0.1:1/cb",
			Status: session.DeliveryPending, NextAttempt: t0, Created: t0}
		err := db.Save(ctx, &session.Change{Session: s, Transaction: deposit, Deliveries: []*session.Delivery{d},
			Account: &session.Account{ID: "ba_" + m, MerchantID: m, CustomerID: "c1", Created: t0},
			Timers:  []session.Timer{{Key: "sandbox/session/" + s.ID, Due: t0.Add(time.Minute)}}})
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range []*session.Transaction{
			{ID: "tx_pay_" + m, Type: session.TxTypeWithdrawal, MerchantID: m, Amount: 5_00},
			{ID: "tx_ref_" + m, Type: session.TxTypeRefund, MerchantID: m, OriginalTransactionID: deposit.ID, Amount: 5_00},
		} {
			if err := db.Save(ctx, &session.Change{Transaction: x, Timers: []session.Timer{{Key: "sandbox/tx/" + x.ID, Due: t0}}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := db.ResetMerchant(ctx, "m1"); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"m1", "m2"} {
		gone := m == "m1"
		check := func(what string, err error) {
			t.Helper()
			if got := errors.Is(err, session.ErrNotFound); got != gone || (!gone && err != nil) {
				t.Errorf("%s of %s after resetting m1: %v", what, m, err)
			}
		}
		_, err := db.Session(ctx, "s_"+m)
		check("session", err)
		for _, id := range []string{"tx_dep_", "tx_pay_", "tx_ref_"} {
			_, err := db.Transaction(ctx, id+m)
			check(id, err)
		}
		_, err = db.Delivery(ctx, "wh_"+m)
		check("delivery", err)
		_, err = db.Account(ctx, "ba_"+m)
		check("bank account", err)
		var timers int
		if err := db.pool.QueryRow(ctx, "SELECT count(*) FROM timers WHERE key LIKE '%' || $1", m).Scan(&timers); err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{true: 0, false: 3}[gone]; timers != want {
			t.Errorf("%d timers of %s after resetting m1, want %d", timers, m, want)
		}
		txs, err := db.Transactions(ctx, m, "", 10)
		if err != nil || (gone && len(txs) != 0) || (!gone && len(txs) != 3) {
			t.Errorf("Transactions(%s) after resetting m1: %d, %v", m, len(txs), err)
		}
	}
}
