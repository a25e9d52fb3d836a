package session_test

import (
	"context"
	"testing"

	"github.com/sessiond/sessiond/session"
)

// TestSandboxAdvance drives each magic reference to its outcome, one call
// per step, and checks the states it passes through.
func TestSandboxAdvance(t *testing.T) {
	tests := []struct {
		typ   session.Type
		ref   string
		want  []session.State
		error string
	}{
		{session.TypeDeposit, "completed", []session.State{1, 2, 3, 4, 5, 8, 9, 12}, ""},
		{session.TypeWithdrawal, "completed", []session.State{1, 2, 3, 4, 12}, ""},
		{session.TypeAuthentication, "completed", []session.State{1, 2, 12}, ""},
		{session.TypeDeposit, "aborted", []session.State{1, 10}, "psu_abandoned_session"},
		{session.TypeDeposit, "failed", []session.State{1, 11}, ""},
		{session.TypeDeposit, "order-1", nil, ""},
	}
	for _, tt := range tests {
		t.Run(string(tt.typ)+"/"+tt.ref, func(t *testing.T) {
			f := mustService(t)
			p := session.Params{CountryID: "se", MerchantReference: tt.ref}
			if tt.typ != session.TypeAuthentication {
				p.Amount = amount("5")
			}
			s, _ := f.create(t, tt.typ, p)
			var got []session.State
			for range 20 {
				next, err := f.svc.SandboxAdvance(context.Background(), s.ID)
				if err != nil {
					t.Fatal(err)
				}
				if next.Version == s.Version {
					break
				}
				got, s = append(got, next.State), next
			}
			if len(got) != len(tt.want) {
				t.Fatalf("states %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("states %v, want %v", got, tt.want)
				}
			}
			if s.ErrorCode != tt.error {
				t.Errorf("error code %q, want %q", s.ErrorCode, tt.error)
			}
		})
	}
}

func TestTransactionTransition(t *testing.T) {
	f := mustService(t)
	ctx := context.Background()
	tx := func(n int) *session.TransactionState { s := session.TransactionState(n); return &s }
	p := deposit()
	p.Callbacks = []session.Callback{{URL: "https://m.example/tx", TransactionState: tx(6)}}
	created, token := f.create(t, session.TypeDeposit, p)
	for _, st := range []session.State{1, 2, 3, 4, 5} {
		f.move(t, token, session.Move{State: st})
	}
	s, _ := f.svc.Get(ctx, f.m, created.ID)
	id := s.TransactionID

	steps := []struct {
		to   session.TransactionState
		want string
	}{
		{5, "InvalidStateTransition/"}, // 0→5 is not a move
		{1, ""},
		{4, ""},
		{1, "InvalidStateTransition/"},
		{5, ""},
		{6, ""},
		{2, "InvalidStateTransition/"}, // settled can only be debited
		{7, ""},
		{8, "InvalidState/state"},
	}
	for _, st := range steps {
		_, err := f.svc.TransactionTransition(ctx, f.m, id, st.to, "")
		got := ""
		if err != nil {
			got = errName(err)
		}
		if got != st.want {
			t.Errorf("move to %d: %q, want %q", st.to, got, st.want)
		}
	}
	got, _ := f.svc.Transaction(ctx, f.m, id)
	if got.State != session.TxDebit {
		t.Errorf("transaction at %v, want STATE_DEBIT", got.State)
	}
	ds, _ := f.svc.Deliveries(ctx, f.m, created.ID)
	if len(ds) != 1 || *ds[0].TransactionState != 6 || ds[0].TransactionID != id {
		t.Errorf("deliveries %+v, want one for transaction state 6", ds)
	}
	if after, _ := f.svc.Get(ctx, f.m, created.ID); after.Version != s.Version {
		t.Errorf("transaction moves changed the session's version %d → %d", s.Version, after.Version)
	}

	other, _, _ := f.svc.AddMerchant(ctx, "other", session.Credentials{})
	if _, err := f.svc.TransactionTransition(ctx, other, id, 2, ""); errName(err) != "NotFound/" {
		t.Errorf("another merchant's transaction: %v, want NotFound", err)
	}
}

// TestSessionEndLeavesMovedTransaction moves a transaction by hand, then
// ends its session: the transaction keeps the state it was moved to.
func TestSessionEndLeavesMovedTransaction(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		txTo    session.TransactionState
		end     session.Move
		wantTx  session.TransactionState
		wantErr string
	}{
		{session.TxAborted, session.Move{State: 8}, session.TxAborted, ""},
		{session.TxPending, session.Move{State: 10, ErrorCode: "psu_no_funds"}, session.TxAborted, "psu_no_funds"},
	} {
		f := mustService(t)
		created, token := f.create(t, session.TypeDeposit, deposit())
		for _, st := range []session.State{1, 2, 3, 4, 5} {
			f.move(t, token, session.Move{State: st})
		}
		s, _ := f.svc.Get(ctx, f.m, created.ID)
		if _, err := f.svc.TransactionTransition(ctx, f.m, s.TransactionID, tt.txTo, ""); err != nil {
			t.Fatal(err)
		}
		if tt.end.State == 8 {
			for _, st := range []session.State{8, 9, 12} {
				f.move(t, token, session.Move{State: st})
			}
		} else {
			f.move(t, token, tt.end)
		}
		tx, _ := f.svc.Transaction(ctx, f.m, s.TransactionID)
		if tx.State != tt.wantTx || tx.ErrorCode != tt.wantErr {
			t.Errorf("transaction moved by hand to %v, session ended: %v %q, want %v %q", tt.txTo, tx.State, tx.ErrorCode, tt.wantTx, tt.wantErr)
		}
	}
}
