package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/store"
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
	svc := session.NewService(db)
	state := session.State(1)
	amount := session.Decimal("5")
	var ids, txs []string
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
	}
	if st, _ := db.OutboxStats(ctx); st.Pending != 2 {
		t.Fatalf("pending before: %d, want 2", st.Pending)
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
	if ds, _ := db.SessionDeliveries(ctx, ids[0]); len(ds) != 0 {
		t.Errorf("reset merchant's deliveries: %d", len(ds))
	}
	if ss, _ := db.SessionsByReference(ctx, merchants[0].ID, "ref", 10); len(ss) != 0 {
		t.Errorf("reset merchant's sessions by reference: %d", len(ss))
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
	if st, _ := db.OutboxStats(ctx); st.Pending != 1 {
		t.Errorf("pending after: %d, want 1", st.Pending)
	}
	claimed, err := db.ClaimDeliveries(ctx, session.Claim{Owner: "t", Now: time.Now().Add(time.Hour), Lease: time.Minute, Limit: 10, PerHost: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(claimed.Deliveries) != 1 || claimed.Deliveries[0].MerchantID != merchants[1].ID || len(claimed.Damaged) != 0 {
		t.Errorf("claimed %d (damaged %d), want the other merchant's one", len(claimed.Deliveries), len(claimed.Damaged))
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
