package session_test

import (
	"context"
	"testing"

	"github.com/sessiond/sessiond/session"
)

// walkDeposit takes a deposit session with an end-user account to
// completion and returns it.
func (f *fixture) walkDeposit(tb testing.TB, p session.Params) *session.Session {
	tb.Helper()
	s, token := f.create(tb, session.TypeDeposit, p)
	for _, mv := range []session.Move{
		{State: 1}, {State: 2}, {State: 3},
		{State: 4, BankAccount: &session.BankAccount{Holder: "Alex Tester", IBAN: "SE3550000000054910000003"}},
		{State: 5}, {State: 8}, {State: 9}, {State: 12},
	} {
		s = f.move(tb, token, mv)
	}
	if s.ID == "" || s.TransactionID == "" {
		tb.Fatalf("walked deposit has no transaction: %+v", s)
	}
	return s
}

func TestCreateNormalizesAndPreselects(t *testing.T) {
	f := mustService(t)
	s, token := f.create(t, session.TypeDeposit, session.Params{Amount: amount("50.00"), CountryID: "FI", CurrencyID: "EUR", BankID: "demobank"})
	if s.Params.CountryID != "fi" || s.CurrencyID != "eur" {
		t.Errorf("country %q currency %q, want fi eur", s.Params.CountryID, s.CurrencyID)
	}
	if s.Bank == nil || s.Bank.ID != "demobank" || s.Bank.Name != "Demo Bank" || s.BankIntegration != "demobank-fi" {
		t.Errorf("preselected bank %+v integration %q, want demobank", s.Bank, s.BankIntegration)
	}
	// Moving to 1 without a bank keeps the preselected one; with one, it
	// is the end user's choice.
	if got := f.move(t, token, session.Move{State: 1}); got.Bank == nil || got.Bank.ID != "demobank" {
		t.Errorf("after 1 without a bank: %+v, want demobank", got.Bank)
	}
	_, token2 := f.create(t, session.TypeDeposit, session.Params{Amount: amount("1"), CountryID: "fi", BankID: "demobank"})
	if got := f.move(t, token2, session.Move{State: 1, Bank: &session.Bank{ID: "testbank", Name: "Test Bank"}}); got.BankIntegration != "testbank-fi" {
		t.Errorf("after choosing testbank: integration %q, want testbank-fi", got.BankIntegration)
	}
}

func TestReferences(t *testing.T) {
	f := mustService(t)
	seen := map[int64]bool{}
	for range 50 { // the fake clock stands still: references still differ
		s, _ := f.create(t, session.TypeDeposit, deposit())
		if s.Reference <= 0 || s.Reference >= 1<<53 || seen[s.Reference] {
			t.Fatalf("reference %d: want positive, below 2^53, unseen", s.Reference)
		}
		seen[s.Reference] = true
	}
}

func TestAccountPickedInSessionIsStored(t *testing.T) {
	f := mustService(t)
	s := f.walkDeposit(t, session.Params{Amount: amount("50"), CountryID: "se", CustomerID: "cust-1"})
	accts, err := f.svc.Accounts(context.Background(), f.m, "cust-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(accts) != 1 || accts[0].ID != s.BankAccount.ID || accts[0].IBAN != "SE3550000000054910000003" || accts[0].BankID != "testbank" && accts[0].BankID != "" {
		t.Fatalf("accounts of cust-1: %+v, want the one picked (%s)", accts, s.BankAccount.ID)
	}
	tx, err := f.svc.Transaction(context.Background(), f.m, s.TransactionID)
	if err != nil {
		t.Fatal(err)
	}
	if tx.FromBankAccountID != s.BankAccount.ID || tx.FromBankAccount == nil || tx.FromBankAccount.IBAN != "SE3550000000054910000003" ||
		tx.ToBankAccountID != session.MerchantAccountID || tx.ToBankAccount == nil || tx.Message == "" {
		t.Errorf("deposit transaction accounts/message: %+v", tx)
	}
}

func TestRefunds(t *testing.T) {
	f := mustService(t)
	ctx := context.Background()
	s := f.walkDeposit(t, session.Params{Amount: amount("50"), CountryID: "se", CustomerID: "c"})
	refund := func(a string) (*session.Transaction, error) {
		return f.svc.CreateRefund(ctx, f.m, &session.Refund{TransactionID: s.TransactionID, Amount: amount(a), MerchantReference: "r"})
	}
	r1, err := refund("30")
	if err != nil {
		t.Fatal(err)
	}
	if r1.Type != session.TxTypeRefund || r1.State != session.TxPending || r1.OriginalTransactionID != s.TransactionID || r1.ETA.IsZero() || r1.Approved.IsZero() {
		t.Errorf("refund %+v: want a pending refund of the deposit with an eta", r1)
	}
	if _, err := refund("20.01"); errName(err) != "TransactionInvalid/amount" {
		t.Errorf("refund past the deposit: %v, want TransactionInvalid/amount", err)
	}
	if _, err := refund("20"); err != nil {
		t.Errorf("refund of the rest: %v", err)
	}
	if _, err := refund("0.01"); errName(err) != "TransactionInvalid/amount" {
		t.Errorf("refund of a fully refunded deposit: %v, want TransactionInvalid/amount", err)
	}
	if _, err := f.svc.CreateRefund(ctx, f.m, &session.Refund{TransactionID: r1.ID, Amount: amount("1")}); errName(err) != "TransactionInvalid/transaction_id" {
		t.Errorf("refund of a refund: %v, want TransactionInvalid/transaction_id", err)
	}
	if _, err := f.svc.CreateRefund(ctx, f.m, &session.Refund{TransactionID: "nope", Amount: amount("1")}); errName(err) != "NotFound/transaction_id" {
		t.Errorf("refund of nothing: %v, want NotFound/transaction_id", err)
	}
	// A deposit that is not completed yet cannot be refunded.
	_, token := f.create(t, session.TypeDeposit, deposit())
	for st := session.State(1); st <= 5; st++ {
		f.move(t, token, session.Move{State: st})
	}
	open, _ := f.svc.ClientGet(ctx, token, session.Client{})
	if _, err := f.svc.CreateRefund(ctx, f.m, &session.Refund{TransactionID: open.TransactionID, Amount: amount("1")}); errName(err) != "TransactionInvalid/transaction_id" {
		t.Errorf("refund of a deposit at 0: %v, want TransactionInvalid/transaction_id", err)
	}
	byRef, err := f.svc.TransactionsByReference(ctx, f.m, "r")
	if err != nil || len(byRef) != 2 || byRef[0].ID == r1.ID || byRef[1].ID != r1.ID {
		t.Errorf("transactions with reference r: %d, %v; want the two refunds, newest first", len(byRef), err)
	}
}

func TestPayoutApproval(t *testing.T) {
	f := mustService(t)
	ctx := context.Background()
	a, err := f.svc.CreateAccount(ctx, f.m, &session.NewAccount{CustomerID: "c", CountryID: "NO", Holder: "Kari", IBAN: "NO9386011117947", BankID: "testbank"})
	if err != nil {
		t.Fatal(err)
	}
	if a.CurrencyID != "nok" || a.CountryID != "no" || a.Name != "Test Bank" {
		t.Errorf("account %+v: want no, nok, Test Bank", a)
	}
	p, err := f.svc.CreatePayout(ctx, f.m, &session.Payout{Amount: amount("12.50"), BankAccountID: a.ID, ApprovalRequired: true})
	if err != nil {
		t.Fatal(err)
	}
	if p.State != session.TxCreated || !p.ETA.IsZero() || p.ToBankAccountID != a.ID || p.ToBankAccount.IBAN != a.IBAN || p.CurrencyID != "nok" {
		t.Errorf("payout awaiting approval: %+v", p)
	}
	got, err := f.svc.ApproveTransaction(ctx, f.m, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != session.TxPending || got.ETA.IsZero() {
		t.Errorf("approved payout: %+v, want pending with an eta", got)
	}
	if _, err := f.svc.ApproveTransaction(ctx, f.m, p.ID); errName(err) != "AlreadyDecided/" {
		t.Errorf("second approval: %v, want AlreadyDecided", err)
	}
	q, _ := f.svc.CreatePayout(ctx, f.m, &session.Payout{Amount: amount("1"), BankAccountID: a.ID, ApprovalRequired: true})
	if got, err := f.svc.RejectTransaction(ctx, f.m, q.ID); err != nil || got.State != session.TxAborted || got.ErrorCode != "merchant_rejected" {
		t.Errorf("rejected payout: %+v, %v", got, err)
	}
	r, _ := f.svc.CreatePayout(ctx, f.m, &session.Payout{Amount: amount("1"), BankAccountID: a.ID})
	if _, err := f.svc.ApproveTransaction(ctx, f.m, r.ID); errName(err) != "InvalidStateTransition/" {
		t.Errorf("approving a payout that needs none: %v, want InvalidStateTransition", err)
	}
	if _, err := f.svc.CreatePayout(ctx, f.m, &session.Payout{Amount: amount("1"), BankAccountID: "ba_nope"}); errName(err) != "NotFound/bank_account_id" {
		t.Errorf("payout to no account: %v, want NotFound/bank_account_id", err)
	}

	// Another merchant sees none of it.
	other, _, err := f.svc.AddMerchant(ctx, "other", session.Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Account(ctx, other, a.ID); errName(err) != "NotFound/" {
		t.Errorf("other merchant's account read: %v, want NotFound", err)
	}
	if _, err := f.svc.CreatePayout(ctx, other, &session.Payout{Amount: amount("1"), BankAccountID: a.ID}); errName(err) != "NotFound/bank_account_id" {
		t.Errorf("payout to another merchant's account: %v, want NotFound", err)
	}
	if ts, _, err := f.svc.Transactions(ctx, other, 0, ""); err != nil || len(ts) != 0 {
		t.Errorf("other merchant's transaction list: %d, %v; want none", len(ts), err)
	}
}

func TestTransactionPages(t *testing.T) {
	f := mustService(t)
	ctx := context.Background()
	a, err := f.svc.CreateAccount(ctx, f.m, &session.NewAccount{CustomerID: "c", CountryID: "se", Holder: "H", BBAN: "50000000054910000003"})
	if err != nil {
		t.Fatal(err)
	}
	var made []string
	for range 7 {
		p, err := f.svc.CreatePayout(ctx, f.m, &session.Payout{Amount: amount("1"), BankAccountID: a.ID})
		if err != nil {
			t.Fatal(err)
		}
		made = append(made, p.ID)
	}
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 4 {
			t.Fatal("more pages than transactions")
		}
		ts, next, err := f.svc.Transactions(ctx, f.m, 3, cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, tx := range ts {
			got = append(got, tx.ID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if len(got) != len(made) {
		t.Fatalf("listed %d transactions, want %d", len(got), len(made))
	}
	for i := range got {
		if got[i] != made[len(made)-1-i] {
			t.Errorf("listed[%d] = %s, want %s (newest first)", i, got[i], made[len(made)-1-i])
		}
	}
	for _, bad := range []int{-1, 1001} {
		if _, _, err := f.svc.Transactions(ctx, f.m, bad, ""); errName(err) != "InvalidParams/limit" {
			t.Errorf("limit %d: %v, want InvalidParams/limit", bad, err)
		}
	}
	if _, _, err := f.svc.Transactions(ctx, f.m, 1, "nope"); errName(err) != "InvalidParams/cursor" {
		t.Errorf("bad cursor: %v, want InvalidParams/cursor", err)
	}
}

// TestWithdrawalSessionPays shows that a withdrawal session's transaction
// behaves as a payout: at completion it starts at 0 and moves to 1 at
// once, with its eta, firing the callbacks of both states.
func TestWithdrawalSessionPays(t *testing.T) {
	f := mustService(t)
	ctx := context.Background()
	ts := func(n int) *session.TransactionState { s := session.TransactionState(n); return &s }
	s, token := f.create(t, session.TypeWithdrawal, session.Params{Amount: amount("80"), CountryID: "se", Callbacks: []session.Callback{
		{URL: "https://m.example/cb", TransactionState: ts(0)}, {URL: "https://m.example/cb", TransactionState: ts(1)},
		{URL: "https://m.example/cb", TransactionState: ts(4)},
	}})
	for _, mv := range []session.Move{{State: 1}, {State: 2}, {State: 3},
		{State: 4, BankAccount: &session.BankAccount{Holder: "H", IBAN: "SE3550000000054910000003"}}, {State: 12}} {
		s = f.move(t, token, mv)
	}
	tx, err := f.svc.Transaction(ctx, f.m, s.TransactionID)
	if err != nil {
		t.Fatal(err)
	}
	if tx.Type != session.TxTypeWithdrawal || tx.State != session.TxPending || tx.Approved.IsZero() || !tx.ETA.Equal(tx.Approved.Add(session.DefaultPayoutETA)) ||
		tx.ToBankAccountID != s.BankAccount.ID || tx.FromBankAccountID != session.MerchantAccountID {
		t.Errorf("withdrawal transaction %+v: want pending, approved, eta a day on, to the picked account", tx)
	}
	ds, err := f.svc.Deliveries(ctx, f.m, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	var states []session.TransactionState
	for _, d := range ds {
		if d.TransactionState != nil {
			states = append(states, *d.TransactionState)
		}
	}
	if len(states) != 2 || states[0] != 0 || states[1] != 1 {
		t.Errorf("transaction callbacks %v, want [0 1]", states)
	}
}
