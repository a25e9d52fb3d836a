package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/sessiond/sessiond/postgres/pgtest"
	"github.com/sessiond/sessiond/session"
)

// TestRefundsAcrossReplicas: refunds of one deposit saved at the same
// moment on two DBs on one database never add up to more than the
// deposit; the ones that would are refused with TransactionInvalid and
// leave nothing stored. An aborted refund gives its amount back.
func TestRefundsAcrossReplicas(t *testing.T) {
	url := pgtest.URL(t)
	var fa, fb feedLog
	a, b := openReplica(t, url, &fa), openReplica(t, url, &fb)
	ctx := context.Background()
	deposit := &session.Transaction{ID: "tx_deposit", Type: session.TxTypeDeposit, SessionID: "s1", MerchantID: "m1",
		State: session.TxCompleted, Amount: 100_00}
	if err := a.Save(ctx, &session.Change{Session: newSession("s1", 1), Transaction: deposit}); err != nil {
		t.Fatal(err)
	}

	const each = 10
	var wg sync.WaitGroup
	errs := make([]error, 2*each)
	for i := range errs {
		db := a
		if i%2 == 1 {
			db = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &session.Transaction{ID: fmt.Sprintf("tx_refund_%02d", i), Type: session.TxTypeRefund, MerchantID: "m1",
				OriginalTransactionID: deposit.ID, Amount: 30_00}
			errs[i] = db.Save(ctx, &session.Change{Transaction: r})
		}()
	}
	wg.Wait()
	saved := 0
	for i, err := range errs {
		var se *session.Error
		switch {
		case err == nil:
			saved++
		case errors.As(err, &se) && se.Name == session.NameTransactionInvalid:
			if _, err := a.Transaction(ctx, fmt.Sprintf("tx_refund_%02d", i)); !errors.Is(err, session.ErrNotFound) {
				t.Errorf("refused refund %d is stored: %v", i, err)
			}
		default:
			t.Errorf("refund %d: %v, want saved or TransactionInvalid", i, err)
		}
	}
	refunds, err := b.Refunds(ctx, deposit.ID)
	if err != nil {
		t.Fatal(err)
	}
	if saved != 3 || len(refunds) != 3 {
		t.Fatalf("%d refunds of 30.00 saved, %d stored, of a deposit of 100.00; want 3", saved, len(refunds))
	}

	// An aborted refund no longer counts.
	r := refunds[0]
	from := r.State
	r.State = session.TxAborted
	if err := b.Save(ctx, &session.Change{Transaction: r, TxFrom: &from}); err != nil {
		t.Fatal(err)
	}
	again := &session.Transaction{ID: "tx_refund_again", Type: session.TxTypeRefund, MerchantID: "m1",
		OriginalTransactionID: deposit.ID, Amount: 10_00}
	if err := a.Save(ctx, &session.Change{Transaction: again}); err != nil {
		t.Errorf("a refund within what an aborted one gave back: %v", err)
	}
	over := &session.Transaction{ID: "tx_refund_over", Type: session.TxTypeRefund, MerchantID: "m1",
		OriginalTransactionID: deposit.ID, Amount: 30_01} // 30.00 is left
	if err := a.Save(ctx, &session.Change{Transaction: over}); session.ErrorName(err) != session.NameTransactionInvalid {
		t.Errorf("a refund past what is left: %v, want TransactionInvalid", err)
	}
}
