package session_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/store"
	"golang.org/x/crypto/argon2"
)

// clock is a fake clock that tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// countingStore is the real store, counting the sessions read, to show
// what a sweep touches.
type countingStore struct {
	*store.DB
	mu    sync.Mutex
	reads int
}

func (s *countingStore) Session(ctx context.Context, id string) (*session.Session, error) {
	s.mu.Lock()
	s.reads++
	s.mu.Unlock()
	return s.DB.Session(ctx, id)
}

// ClaimDue counts the sessions it returns as read: the store reads each.
func (s *countingStore) ClaimDue(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]*session.Session, error) {
	due, err := s.DB.ClaimDue(ctx, owner, now, lease, limit)
	s.mu.Lock()
	s.reads += len(due)
	s.mu.Unlock()
	return due, err
}

type fixture struct {
	db    *countingStore
	svc   *session.Service
	clock *clock
	m     *session.Merchant
}

// mustService opens a real store in a temp dir and a Service on a fake
// clock, with one merchant.
func mustService(tb testing.TB) *fixture {
	tb.Helper()
	db, err := store.Open(filepath.Join(tb.TempDir(), "sessiond.db"), store.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	f := &fixture{db: &countingStore{DB: db}, clock: &clock{t: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)}}
	f.svc = session.NewService(f.db, argon2.IDKey)
	f.svc.Now = f.clock.Now
	f.svc.SecretCost = session.SecretCost{MemoryKiB: 64, Passes: 1} // fast tests; the cost is not what they test
	f.m, _, err = f.svc.AddMerchant(context.Background(), "shop", session.Credentials{})
	if err != nil {
		tb.Fatal(err)
	}
	return f
}

func (f *fixture) create(tb testing.TB, typ session.Type, p session.Params) (*session.Session, string) {
	tb.Helper()
	s, token, err := f.svc.Create(context.Background(), f.m, typ, &p)
	if err != nil {
		tb.Fatalf("Create(%s): %v", typ, err)
	}
	return s, token
}

func (f *fixture) move(tb testing.TB, token string, mv session.Move) *session.Session {
	tb.Helper()
	s, err := f.svc.ClientTransition(context.Background(), token, mv, session.Client{IP: "203.0.113.7", UserAgent: "test"})
	if err != nil {
		tb.Fatalf("ClientTransition(%v): %v", mv.State, err)
	}
	return s
}

func amount(s string) *session.Decimal { d := session.Decimal(s); return &d }

func deposit() session.Params { return session.Params{Amount: amount("50"), CountryID: "se"} }

func errName(err error) string {
	var e *session.Error
	if errors.As(err, &e) {
		return e.Name + "/" + e.Field
	}
	return "internal: " + err.Error()
}

func TestCreateValidation(t *testing.T) {
	f := mustService(t)
	st := func(n int) *session.State { s := session.State(n); return &s }
	tomorrow := f.clock.Now().Add(24 * time.Hour).Format("2006-01-02")
	tests := []struct {
		name string
		typ  session.Type
		p    session.Params
		want string // error name/field, "" for success
	}{
		{"ok", session.TypeDeposit, deposit(), ""},
		{"numeric string amount", session.TypeDeposit, session.Params{Amount: amount("10.5"), CountryID: "fi"}, ""},
		{"missing amount", session.TypeDeposit, session.Params{CountryID: "se"}, "MissingParameter/amount"},
		{"zero amount", session.TypeDeposit, session.Params{Amount: amount("0"), CountryID: "se"}, "InvalidAmount/amount"},
		{"three decimals", session.TypeDeposit, session.Params{Amount: amount("1.234"), CountryID: "se"}, "InvalidAmount/amount"},
		{"too large", session.TypeDeposit, session.Params{Amount: amount("1000000000.01"), CountryID: "se"}, "InvalidAmount/amount"},
		{"largest", session.TypeDeposit, session.Params{Amount: amount("1000000000"), CountryID: "se"}, ""},
		{"not a number", session.TypeDeposit, session.Params{Amount: amount("ten"), CountryID: "se"}, "InvalidAmount/amount"},
		{"missing country", session.TypeDeposit, session.Params{Amount: amount("1")}, "MissingParameter/country_id"},
		{"upper-case country", session.TypeDeposit, session.Params{Amount: amount("1"), CountryID: "SE"}, ""},
		{"upper-case currency", session.TypeDeposit, session.Params{Amount: amount("1"), CountryID: "fi", CurrencyID: "EUR"}, ""},
		{"unknown country", session.TypeDeposit, session.Params{Amount: amount("1"), CountryID: "us"}, "NotFound/country_id"},
		{"unknown address country", session.TypeDeposit, session.Params{Amount: amount("1"), CountryID: "se", CustomerAddress: &session.Address{CountryID: "XX"}}, "NotFound/customer_address.country_id"},
		{"bank of the country", session.TypeDeposit, session.Params{Amount: amount("1"), CountryID: "fi", BankID: "demobank"}, ""},
		{"unknown bank", session.TypeDeposit, session.Params{Amount: amount("1"), CountryID: "fi", BankID: "nordea"}, "NotFound/bank_id"},
		{"metadata object", session.TypeDeposit, session.Params{Amount: amount("1"), CountryID: "se", Metadata: json.RawMessage(`{"customer_id":"c1"}`)}, ""},
		{"metadata null is absent", session.TypeDeposit, session.Params{Amount: amount("1"), CountryID: "se", Metadata: json.RawMessage(`null`), ViewState: json.RawMessage(` null`)}, ""},
		{"metadata not an object", session.TypeDeposit, session.Params{Amount: amount("1"), CountryID: "se", Metadata: json.RawMessage(`[1]`)}, "InvalidParams/metadata"},
		{"metadata too large", session.TypeDeposit, session.Params{Amount: amount("1"), CountryID: "se", Metadata: json.RawMessage(`{"a":"` + strings.Repeat("x", 16<<10) + `"}`)}, "InvalidParams/metadata"},
		{"customer reference too long", session.TypeDeposit, session.Params{Amount: amount("1"), CountryID: "se", CustomerReference: strings.Repeat("r", 256)}, "InvalidParams/customer_reference"},
		{"swish defaults to se", session.TypeSwishPayment, session.Params{Amount: amount("1")}, ""},
		{"swish in sek", session.TypeSwishPayment, session.Params{Amount: amount("1"), CountryID: "SE", CurrencyID: "SEK"}, ""},
		{"swish outside se", session.TypeSwishPayment, session.Params{Amount: amount("1"), CountryID: "fi"}, "InvalidParams/country_id"},
		{"swish in eur", session.TypeSwishPayment, session.Params{Amount: amount("1"), CurrencyID: "eur"}, "InvalidCurrency/currency_id"},
		{"swish needs amount", session.TypeSwishPayment, session.Params{}, "MissingParameter/amount"},
		{"ideal defaults to nl", session.TypeIdealPayment, session.Params{Amount: amount("1")}, ""},
		{"ideal outside nl", session.TypeIdealPayment, session.Params{Amount: amount("1"), CountryID: "se"}, "InvalidParams/country_id"},
		{"bad currency", session.TypeDeposit, session.Params{Amount: amount("1"), CountryID: "se", CurrencyID: "usd"}, "InvalidCurrency/currency_id"},
		{"amount on authentication", session.TypeAuthentication, session.Params{Amount: amount("1"), CountryID: "se"}, "InvalidParams/amount"},
		{"bank account selection", session.TypeBankAccountSelection, session.Params{CountryID: "no"}, ""},
		{"de needs brand", session.TypeDeposit, session.Params{Amount: amount("1"), CountryID: "de"}, "MissingParameter/brand_name"},
		{"de withdrawal needs statement", session.TypeWithdrawal, session.Params{Amount: amount("1"), CountryID: "de", BrandName: "B"}, "MissingParameter/statement_reference"},
		{"se withdrawal refuses statement", session.TypeWithdrawal, session.Params{Amount: amount("1"), CountryID: "se", StatementReference: "x"}, "InvalidParams/statement_reference"},
		{"hint on deposit", session.TypeDeposit, session.Params{Amount: amount("1"), CountryID: "se", Hint: &session.Hint{CustomerID: "c"}}, "InvalidParams/hint"},
		{"recurring needs start", session.TypeRecurringPayment, deposit(), "MissingParameter/requested_start_date"},
		{"recurring today", session.TypeRecurringPayment, session.Params{Amount: amount("1"), CountryID: "se", RequestedStartDate: f.clock.Now().Format("2006-01-02")}, "InvalidParams/requested_start_date"},
		{"recurring tomorrow", session.TypeRecurringPayment, session.Params{Amount: amount("1"), CountryID: "se", RequestedStartDate: tomorrow}, ""},
		{"start date on deposit", session.TypeDeposit, session.Params{Amount: amount("1"), CountryID: "se", RequestedStartDate: tomorrow}, "InvalidParams/requested_start_date"},
		{"relative redirect", session.TypeDeposit, session.Params{Amount: amount("1"), CountryID: "se", RedirectURI: "/done"}, "InvalidParams/redirect_uri"},
		{"bad dob", session.TypeDeposit, session.Params{Amount: amount("1"), CountryID: "se", CustomerDOB: "1.2.1990"}, "InvalidParams/customer_dob"},
		{"callback state 13", session.TypeDeposit, session.Params{Amount: amount("1"), CountryID: "se", Callbacks: []session.Callback{{URL: "https://m.example/cb", SessionState: st(13)}}}, "InvalidCallback/callbacks"},
		{"callback ftp", session.TypeDeposit, session.Params{Amount: amount("1"), CountryID: "se", Callbacks: []session.Callback{{URL: "ftp://m.example/cb", SessionState: st(12)}}}, "InvalidCallback/callbacks"},
		{"callback without state", session.TypeDeposit, session.Params{Amount: amount("1"), CountryID: "se", Callbacks: []session.Callback{{URL: "https://m.example/cb"}}}, "InvalidCallback/callbacks"},
		{"long role", session.TypeDeposit, session.Params{Amount: amount("1"), CountryID: "se", Role: "0123456789012345678901234567890123"}, "InvalidParams/role"},
		{"verifications object", session.TypeDeposit, session.Params{Amount: amount("1"), CountryID: "se", Verifications: json.RawMessage(`{}`)}, "InvalidParams/verifications"},
		{"view_state array", session.TypeDeposit, session.Params{Amount: amount("1"), CountryID: "se", ViewState: json.RawMessage(`[]`)}, "InvalidParams/view_state"},
		{"unknown type", session.Type("loan"), deposit(), "InvalidParams/type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _, err := f.svc.Create(context.Background(), f.m, tt.typ, &tt.p)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Create: %v", err)
				}
				if s.Version != 1 || s.State != session.StateCreated {
					t.Errorf("created at version %d state %v, want 1, 0", s.Version, s.State)
				}
				return
			}
			if err == nil {
				t.Fatalf("Create succeeded, want %s", tt.want)
			}
			if got := errName(err); got != tt.want {
				t.Errorf("error %s, want %s", got, tt.want)
			}
		})
	}
}

func TestCreateDefaults(t *testing.T) {
	f := mustService(t)
	for country, currency := range map[string]string{"se": "sek", "no": "nok", "dk": "dkk", "gb": "gbp", "pl": "pln", "fi": "eur", "nl": "eur"} {
		s, _ := f.create(t, session.TypeDeposit, session.Params{Amount: amount("1"), CountryID: country})
		if s.CurrencyID != currency {
			t.Errorf("country %s: currency %q, want %q", country, s.CurrencyID, currency)
		}
		if s.Params.Role != "unknown" {
			t.Errorf("role %q, want unknown", s.Params.Role)
		}
		if want := s.Created.Add(30 * time.Minute); !s.Expires.Equal(want) {
			t.Errorf("expires %v, want %v", s.Expires, want)
		}
	}
}

// TestDepositToCompletion walks a deposit along its path and checks what
// each move sets, the transaction it creates, and the callbacks it records.
func TestDepositToCompletion(t *testing.T) {
	f := mustService(t)
	ctx := context.Background()
	st := func(n int) *session.State { s := session.State(n); return &s }
	tx := func(n int) *session.TransactionState { s := session.TransactionState(n); return &s }
	p := deposit()
	p.Callbacks = []session.Callback{
		{URL: "https://m.example/cb", SessionState: st(5)},
		{URL: "https://m.example/cb", SessionState: st(12)},
		{URL: "https://m.example/tx", TransactionState: tx(4)},
	}
	created, token := f.create(t, session.TypeDeposit, p)

	s := f.move(t, token, session.Move{State: 1, Bank: &session.Bank{ID: "testbank", Name: "Test Bank"}})
	if s.Bank == nil || s.Bank.ID != "testbank" {
		t.Errorf("bank %+v, want testbank", s.Bank)
	}
	s = f.move(t, token, session.Move{State: 2})
	if len(s.CustomerID) < 6 || s.CustomerID[:5] != "cust_" {
		t.Errorf("customer_id %q, want a generated cust_…", s.CustomerID)
	}
	f.move(t, token, session.Move{State: 3})
	s = f.move(t, token, session.Move{State: 4, BankAccount: &session.BankAccount{Holder: "A Person", IBAN: "SE4550000000058398257466"}})
	if s.BankAccount == nil || s.BankAccount.ID == "" || s.BankAccount.Holder != "A Person" {
		t.Errorf("bank account %+v, want one with a server id", s.BankAccount)
	}
	s = f.move(t, token, session.Move{State: 5})
	if s.TransactionID == "" {
		t.Fatal("no transaction at state 5")
	}
	tr, err := f.svc.Transaction(ctx, f.m, s.TransactionID)
	if err != nil {
		t.Fatal(err)
	}
	if tr.State != session.TxCreated || tr.Amount != 5000 || tr.SessionID != created.ID || tr.BankAccountID != s.BankAccount.ID {
		t.Errorf("transaction %+v, want created, 50.00, of the session, with its account", tr)
	}
	f.move(t, token, session.Move{State: 8})
	f.move(t, token, session.Move{State: 9})
	s = f.move(t, token, session.Move{State: 12})
	if s.Version != 9 || s.Step != 8 || s.Completed.IsZero() || s.IP != "203.0.113.7" {
		t.Errorf("final session version %d step %d completed %v ip %q, want 9, 8, set, 203.0.113.7", s.Version, s.Step, s.Completed, s.IP)
	}
	if tr, _ = f.svc.Transaction(ctx, f.m, s.TransactionID); tr.State != session.TxCompleted || tr.Completed.IsZero() {
		t.Errorf("transaction state %v completed %v, want STATE_COMPLETED, set", tr.State, tr.Completed)
	}
	ds, err := f.svc.Deliveries(ctx, f.m, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range ds {
		got = append(got, string(d.Body()))
	}
	want := []string{
		`{"merchant_id":"` + f.m.ID + `","session_id":"` + created.ID + `","session_state":5}`,
		`{"merchant_id":"` + f.m.ID + `","session_id":"` + created.ID + `","session_state":12}`,
		`{"merchant_id":"` + f.m.ID + `","transaction_id":"` + s.TransactionID + `","transaction_state":4}`,
	}
	if len(got) != len(want) {
		t.Fatalf("deliveries %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("delivery %d body %s, want %s", i, got[i], want[i])
		}
		if ds[i].Status != session.DeliveryPending {
			t.Errorf("delivery %d status %s, want pending", i, ds[i].Status)
		}
	}
}

func TestMoveErrors(t *testing.T) {
	f := mustService(t)
	_, token := f.create(t, session.TypeAuthentication, session.Params{CountryID: "se"})
	one := 1
	tests := []struct {
		mv   session.Move
		want string
	}{
		{session.Move{State: 2}, "InvalidStateTransition/"},
		{session.Move{State: 13}, "InvalidState/state"},
		{session.Move{State: 10}, "MissingParameter/error_code"},
		{session.Move{State: 10, ErrorCode: "expired_session"}, "InvalidErrorCode/error_code"},
		{session.Move{State: 1, ErrorCode: "psu_no_funds"}, "InvalidParams/error_code"},
		{session.Move{State: 1, CustomerID: "c"}, "InvalidParams/customer_id"},
		{session.Move{State: 1, Bank: &session.Bank{ID: strings.Repeat("b", 256)}}, "InvalidParams/bank.id"},
		{session.Move{State: 1, Version: &one}, ""},
		{session.Move{State: 2, Version: &one}, "VersionConflict/"},
	}
	for _, tt := range tests {
		_, err := f.svc.ClientTransition(context.Background(), token, tt.mv, session.Client{})
		got := ""
		if err != nil {
			got = errName(err)
		}
		if got != tt.want {
			t.Errorf("move %+v: error %q, want %q", tt.mv, got, tt.want)
		}
	}
	if _, err := f.svc.ClientTransition(context.Background(), token+"x", session.Move{State: 2}, session.Client{}); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("bad token: %v, want not found", err)
	}
}

func TestNotCustomer(t *testing.T) {
	f := mustService(t)
	p := deposit()
	p.CustomerID = "cust_1"
	_, token := f.create(t, session.TypeDeposit, p)
	f.move(t, token, session.Move{State: 1})
	s := f.move(t, token, session.Move{State: 2, CustomerID: "cust_2"})
	if s.State != session.StateAborted || s.ErrorCode != "psu_not_customer" {
		t.Errorf("state %v error %q, want aborted with psu_not_customer", s.State, s.ErrorCode)
	}

	_, token = f.create(t, session.TypeDeposit, p)
	f.move(t, token, session.Move{State: 1})
	if s := f.move(t, token, session.Move{State: 2, CustomerID: "cust_1"}); s.State != 2 || s.CustomerID != "cust_1" {
		t.Errorf("state %v customer %q, want 2, cust_1", s.State, s.CustomerID)
	}
}

func TestAbortMovesTransaction(t *testing.T) {
	f := mustService(t)
	_, token := f.create(t, session.TypeDeposit, deposit())
	for _, st := range []session.State{1, 2, 3, 4, 5} {
		f.move(t, token, session.Move{State: st})
	}
	s := f.move(t, token, session.Move{State: 10, ErrorCode: "psu_no_funds"})
	tr, err := f.svc.Transaction(context.Background(), f.m, s.TransactionID)
	if err != nil {
		t.Fatal(err)
	}
	if tr.State != session.TxAborted || tr.ErrorCode != "psu_no_funds" {
		t.Errorf("transaction %v %q, want aborted with psu_no_funds", tr.State, tr.ErrorCode)
	}
	if s.Step != 5 {
		t.Errorf("step %d after abort at 5, want 5", s.Step)
	}
}

func TestApproval(t *testing.T) {
	f := mustService(t)
	ctx := context.Background()
	p := deposit()
	p.ApprovalRequired = true
	created, token := f.create(t, session.TypeDeposit, p)
	if created.Approval != session.ApprovalPending {
		t.Fatalf("approval %q, want pending", created.Approval)
	}
	for _, st := range []session.State{1, 2, 3, 4} {
		f.move(t, token, session.Move{State: st})
	}
	if _, err := f.svc.ClientTransition(ctx, token, session.Move{State: 5}, session.Client{}); errName(err) != "ApprovalRequired/" {
		t.Fatalf("4→5 before approval: %v, want ApprovalRequired", err)
	}
	if _, err := f.svc.Approve(ctx, f.m, created.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Approve(ctx, f.m, created.ID); errName(err) != "AlreadyDecided/" {
		t.Errorf("second approve: %v, want AlreadyDecided", err)
	}
	f.move(t, token, session.Move{State: 5})
	if s, err := f.svc.Reject(ctx, f.m, created.ID); err != nil || s.State != session.StateAborted || s.Approval != session.ApprovalRejected {
		t.Errorf("reject after approve: %+v, %v; want aborted, rejected", s, err)
	}
	if _, err := f.svc.Reject(ctx, f.m, created.ID); errName(err) != "InvalidStateTransition/" {
		t.Errorf("reject of a final session: %v, want InvalidStateTransition", err)
	}

	plain, _ := f.create(t, session.TypeDeposit, deposit())
	if _, err := f.svc.Approve(ctx, f.m, plain.ID); errName(err) != "InvalidStateTransition/" {
		t.Errorf("approve without approval_required: %v, want InvalidStateTransition", err)
	}
	s, err := f.svc.Reject(ctx, f.m, plain.ID)
	if err != nil || s.State != session.StateAborted || s.ErrorCode != "merchant_rejected" {
		t.Errorf("reject: %+v, %v, want aborted with merchant_rejected", s, err)
	}
}

// TestConcurrentMoves races moves from one version: exactly one wins.
func TestConcurrentMoves(t *testing.T) {
	f := mustService(t)
	created, token := f.create(t, session.TypeDeposit, deposit())
	const n = 32
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = f.svc.ClientTransition(context.Background(), token, session.Move{State: 1}, session.Client{})
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case session.ErrorCode(err) != session.CodeConflict:
			t.Errorf("loser got %v, want a conflict", err)
		}
	}
	if won != 1 {
		t.Errorf("%d moves won, want 1", won)
	}
	s, err := f.svc.Get(context.Background(), f.m, created.ID)
	if err != nil || s.Version != 2 || s.State != 1 {
		t.Errorf("session at version %d state %v (%v), want 2, 1", s.Version, s.State, err)
	}
}

func TestIsolation(t *testing.T) {
	f := mustService(t)
	ctx := context.Background()
	other, _, err := f.svc.AddMerchant(ctx, "other", session.Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	s, token := f.create(t, session.TypeDeposit, deposit())
	_, errMissing := f.svc.Get(ctx, other, "01a200fa-0000-7000-8000-000000000000")
	for name, err := range map[string]error{
		"get":      second(f.svc.Get(ctx, other, s.ID)),
		"by token": second(f.svc.ByToken(ctx, other, token)),
		"approve":  second(f.svc.Approve(ctx, other, s.ID)),
		"reject":   second(f.svc.Reject(ctx, other, s.ID)),
		"callbacks": func() error {
			_, err := f.svc.Deliveries(ctx, other, s.ID)
			return err
		}(),
	} {
		if err == nil || err.Error() != errMissing.Error() {
			t.Errorf("%s as another merchant: %v, want exactly %v", name, err, errMissing)
		}
	}
	if got, _ := f.svc.ByReference(ctx, other, "order-1"); len(got) != 0 {
		t.Errorf("by reference as another merchant: %d sessions, want 0", len(got))
	}
}

func second[T any](_ T, err error) error { return err }

func TestByReference(t *testing.T) {
	f := mustService(t)
	var ids []string
	for range 3 {
		p := deposit()
		p.MerchantReference = "order-1"
		s, _ := f.create(t, session.TypeDeposit, p)
		ids = append(ids, s.ID)
		f.clock.Add(time.Millisecond)
	}
	p := deposit()
	p.MerchantReference = "order-10"
	f.create(t, session.TypeDeposit, p)
	got, err := f.svc.ByReference(context.Background(), f.m, "order-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].ID != ids[2] || got[2].ID != ids[0] {
		t.Errorf("by reference: %d sessions, want the 3 of order-1 newest first", len(got))
	}
}

func TestTokens(t *testing.T) {
	f := mustService(t)
	ctx := context.Background()
	_, cr, err := f.svc.AddMerchant(ctx, "tok", session.Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Authorize(ctx, cr.PublicKey, "wrong"); !errors.Is(err, session.ErrUnauthorized) {
		t.Errorf("wrong secret: %v, want unauthorized", err)
	}
	if _, err := f.svc.Authorize(ctx, "pk_nobody", cr.Secret); !errors.Is(err, session.ErrUnauthorized) {
		t.Errorf("unknown key: %v, want unauthorized", err)
	}
	tok, err := f.svc.Authorize(ctx, cr.PublicKey, cr.Secret)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := f.svc.Authenticate(ctx, tok.AccessToken); err != nil || m.ID != cr.MerchantID {
		t.Fatalf("Authenticate: %v, %v", m, err)
	}
	if _, err := f.svc.Authenticate(ctx, tok.RefreshToken); !errors.Is(err, session.ErrUnauthorized) {
		t.Errorf("refresh token as bearer: %v, want unauthorized", err)
	}
	next, err := f.svc.Refresh(ctx, tok.AccessToken, tok.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Refresh(ctx, tok.AccessToken, tok.RefreshToken); !errors.Is(err, session.ErrUnauthorized) {
		t.Errorf("reused refresh token: %v, want unauthorized", err)
	}
	if _, err := f.svc.Authenticate(ctx, next.AccessToken); err != nil {
		t.Errorf("new access token: %v", err)
	}
	f.clock.Add(6*time.Hour + time.Second)
	if _, err := f.svc.Authenticate(ctx, next.AccessToken); !errors.Is(err, session.ErrUnauthorized) {
		t.Errorf("expired access token: %v, want unauthorized", err)
	}
	if _, err := f.svc.Refresh(ctx, next.AccessToken, next.RefreshToken); err != nil {
		t.Errorf("refresh within its extra hour: %v", err)
	}
}

func TestEnsureMerchant(t *testing.T) {
	f := mustService(t)
	ctx := context.Background()
	cr := session.Credentials{PublicKey: "pk_test", Secret: "s3cret"}
	m, got, created, err := f.svc.EnsureMerchant(ctx, cr)
	if err != nil || !created || len(got.CallbackSecret) < 10 {
		t.Fatalf("first EnsureMerchant: %v %+v %v", created, got, err)
	}
	m2, got2, created, err := f.svc.EnsureMerchant(ctx, cr)
	if err != nil || created || m2.ID != m.ID || got2.CallbackSecret != got.CallbackSecret {
		t.Errorf("second EnsureMerchant: created %v id %s secret kept %v, %v", created, m2.ID, got2.CallbackSecret == got.CallbackSecret, err)
	}
	cr.Secret, cr.CallbackSecret = "changed", "whsec_AAAA"
	if _, _, _, err := f.svc.EnsureMerchant(ctx, cr); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Authorize(ctx, "pk_test", "changed"); err != nil {
		t.Errorf("authorize with the new secret: %v", err)
	}
	if _, _, _, err := f.svc.EnsureMerchant(ctx, session.Credentials{PublicKey: "pk_x", Secret: "y", CallbackSecret: "nope"}); err == nil {
		t.Error("callback secret without whsec_ accepted")
	}
}

func TestExpiry(t *testing.T) {
	f := mustService(t)
	ctx := context.Background()
	st := func(n int) *session.State { s := session.State(n); return &s }
	p := deposit()
	p.Callbacks = []session.Callback{{URL: "https://m.example/cb", SessionState: st(10)}}
	a, _ := f.create(t, session.TypeDeposit, p)
	_, tokenB := f.create(t, session.TypeDeposit, p)
	done, tokenDone := f.create(t, session.TypeAuthentication, session.Params{CountryID: "se"})
	for _, s := range []session.State{1, 2, 12} {
		f.move(t, tokenDone, session.Move{State: s})
	}

	f.clock.Add(30*time.Minute - time.Second)
	if n, err := f.svc.ExpireDue(ctx, 100); err != nil || n != 0 {
		t.Fatalf("before the deadline: expired %d (%v), want 0", n, err)
	}
	f.clock.Add(time.Second)
	if _, err := f.svc.ClientTransition(ctx, tokenB, session.Move{State: 1}, session.Client{}); errName(err) != "SessionExpired/" {
		t.Errorf("move past the deadline: %v, want SessionExpired", err)
	}
	if n, err := f.svc.ExpireDue(ctx, 100); err != nil || n != 1 {
		t.Fatalf("at the deadline: expired %d (%v), want 1 (the other was expired by the move)", n, err)
	}
	s, _ := f.svc.Get(ctx, f.m, a.ID)
	if s.State != session.StateAborted || s.ErrorCode != "expired_session" || s.Completed.IsZero() {
		t.Errorf("expired session: state %v error %q, want aborted with expired_session", s.State, s.ErrorCode)
	}
	ds, _ := f.svc.Deliveries(ctx, f.m, a.ID)
	if len(ds) != 1 || *ds[0].SessionState != 10 {
		t.Errorf("deliveries %+v, want one for state 10", ds)
	}
	if s, _ := f.svc.Get(ctx, f.m, done.ID); s.State != session.StateCompleted {
		t.Errorf("completed session moved to %v by expiry", s.State)
	}
}

// TestSweepTouchesOnlyDue stores 10 000 sessions of which 5 are due, and
// counts the sessions a sweep reads.
func TestSweepTouchesOnlyDue(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 10 000 sessions")
	}
	f := mustService(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	create := func(n int) {
		sem := make(chan struct{}, 64)
		for range n {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				p := deposit()
				if _, _, err := f.svc.Create(ctx, f.m, session.TypeDeposit, &p); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	create(5)
	f.clock.Add(10 * time.Minute)
	create(9995)
	f.clock.Add(20 * time.Minute)

	f.db.mu.Lock()
	f.db.reads = 0
	f.db.mu.Unlock()
	n, err := f.svc.ExpireDue(ctx, 1000)
	if err != nil || n != 5 {
		t.Fatalf("expired %d (%v), want 5", n, err)
	}
	if f.db.reads != 5 {
		t.Errorf("sweep read %d sessions, want 5", f.db.reads)
	}
}

func TestViewState(t *testing.T) {
	f := mustService(t)
	p := deposit()
	p.ViewState = json.RawMessage(`{"theme":"dark","session_management":{"active":"spoofed"}}`)
	s, _ := f.create(t, session.TypeDeposit, p)
	f.clock.Add(10 * time.Minute)
	var vs struct {
		Theme string `json:"theme"`
		SM    struct {
			Active       bool
			Warning, End int
		} `json:"session_management"`
	}
	if err := json.Unmarshal(s.ViewState(f.clock.Now(), 2*time.Minute), &vs); err != nil {
		t.Fatal(err)
	}
	if vs.Theme != "dark" || !vs.SM.Active || vs.SM.End != 1200 || vs.SM.Warning != 1080 {
		t.Errorf("view_state %+v, want theme kept, active, end 1200, warning 1080", vs)
	}
	f.clock.Add(21 * time.Minute)
	json.Unmarshal(s.ViewState(f.clock.Now(), 2*time.Minute), &vs)
	if vs.SM.Active || vs.SM.End != 0 || vs.SM.Warning != 0 {
		t.Errorf("past expiry: %+v, want inactive, 0, 0", vs.SM)
	}
}

func TestClientGetRecordsRequest(t *testing.T) {
	f := mustService(t)
	ctx := context.Background()
	s, token := f.create(t, session.TypeDeposit, deposit())
	if _, err := f.svc.ClientGet(ctx, token, session.Client{IP: "198.51.100.1", UserAgent: "phone"}); err != nil {
		t.Fatal(err)
	}
	got, _ := f.svc.Get(ctx, f.m, s.ID)
	if got.IP != "198.51.100.1" || got.UserAgent != "phone" || !got.LastRequest.Equal(f.clock.Now()) || got.Version != 1 {
		t.Errorf("after client.get: ip %q ua %q last %v version %d, want recorded, version unchanged", got.IP, got.UserAgent, got.LastRequest, got.Version)
	}
	before := *got
	if _, err := f.svc.Get(ctx, f.m, s.ID); err != nil {
		t.Fatal(err)
	}
	after, _ := f.svc.Get(ctx, f.m, s.ID)
	if after.Version != before.Version || !after.LastRequest.Equal(before.LastRequest) {
		t.Error("a merchant read changed the session")
	}
}

// TestSweepAtScale stores SESSIOND_SCALE sessions (say 1000000) of which
// 100 are due, and counts the sessions one sweep reads. Run by hand:
//
//	SESSIOND_SCALE=1000000 go test -run TestSweepAtScale -v ./session
func TestSweepAtScale(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("SESSIOND_SCALE"))
	if n < 100 {
		t.Skip("set SESSIOND_SCALE to the number of sessions to store")
	}
	f := mustService(t)
	ctx := context.Background()
	start := time.Now()
	if err := f.svc.Seed(ctx, f.m, n, 100, 10_000, "scale-", nil); err != nil {
		t.Fatal(err)
	}
	t.Logf("stored %d sessions in %s", n, time.Since(start).Round(time.Millisecond))
	f.db.mu.Lock()
	f.db.reads = 0
	f.db.mu.Unlock()
	start = time.Now()
	expired, err := f.svc.ExpireDue(ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sweep: expired %d, read %d sessions, in %s", expired, f.db.reads, time.Since(start).Round(time.Microsecond))
	if expired != 100 || f.db.reads != 100 {
		t.Errorf("sweep expired %d and read %d sessions, want 100 and 100", expired, f.db.reads)
	}
}

// TestExpireDueInOneBatch is the reported tuning to bbolt: ExpireDue
// started 32 goroutines only so that the store could share commits. It
// now hands the store one batch: 100 due sessions expire in one commit,
// from one goroutine.
func TestExpireDueInOneBatch(t *testing.T) {
	f := mustService(t)
	ctx := context.Background()
	for range 100 {
		f.create(t, session.TypeDeposit, deposit())
	}
	f.clock.Add(session.DefaultSessionTTL)
	before, _ := f.db.CommitStats()
	n, err := f.svc.ExpireDue(ctx, 1000)
	if err != nil || n != 100 {
		t.Fatalf("expired %d (%v), want 100", n, err)
	}
	if after, _ := f.db.CommitStats(); after-before != 1 {
		t.Errorf("expiring 100 sessions took %d commits, want 1", after-before)
	}
}

// The hosted page names the brand, else the merchant, and carries the
// merchant's frame ancestors, which SetFrameAncestors keeps in the store.
func TestHostedPage(t *testing.T) {
	f := mustService(t)
	ctx := context.Background()
	branded, _ := f.create(t, session.TypeDeposit, session.Params{Amount: amount("50"), CountryID: "se", BrandName: "Nordic Outdoor"})
	plain, _ := f.create(t, session.TypeDeposit, deposit())
	for _, c := range []struct {
		s    *session.Session
		want string
	}{{branded, "Nordic Outdoor"}, {plain, "shop"}} {
		hp, err := f.svc.HostedPage(ctx, c.s)
		if err != nil || hp.Payee != c.want || hp.FrameAncestors != nil {
			t.Errorf("HostedPage: %+v, %v; want payee %q, no frame ancestors", hp, err, c.want)
		}
	}
	origins := []string{"https://shop.example", "https://*.shop.example"}
	if _, err := f.svc.SetFrameAncestors(ctx, f.m.ID, origins); err != nil {
		t.Fatal(err)
	}
	stored, err := f.db.Merchant(ctx, f.m.ID)
	if err != nil || strings.Join(stored.FrameAncestors, " ") != strings.Join(origins, " ") {
		t.Fatalf("stored frame ancestors %q, %v; want %q", stored.FrameAncestors, err, origins)
	}
	if hp, err := f.svc.HostedPage(ctx, plain); err != nil || strings.Join(hp.FrameAncestors, " ") != strings.Join(origins, " ") {
		t.Errorf("HostedPage frame ancestors %q, %v; want %q", hp.FrameAncestors, err, origins)
	}
	if _, err := f.svc.SetFrameAncestors(ctx, f.m.ID, nil); err != nil {
		t.Fatal(err)
	}
	if hp, err := f.svc.HostedPage(ctx, plain); err != nil || hp.FrameAncestors != nil {
		t.Errorf("after clearing: %q, %v; want none", hp.FrameAncestors, err)
	}
	if _, err := f.svc.SetFrameAncestors(ctx, "no-such-merchant", origins); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("unknown merchant: %v, want ErrNotFound", err)
	}
}

// TestMerchantNameRemembered: the hosted page's merchant name is read once
// and remembered; a change of the merchant through the Service, or
// ForgetMerchant (another process changed it), makes the next read go to
// the store.
func TestMerchantNameRemembered(t *testing.T) {
	f := mustService(t)
	ctx := context.Background()
	name := func() string {
		t.Helper()
		n, err := f.svc.MerchantName(ctx, f.m.ID)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := name(); n != "shop" {
		t.Fatalf("name %q, want shop", n)
	}
	// Renamed behind the Service's back, as another replica would.
	rename := func(to string) {
		t.Helper()
		m, err := f.db.Merchant(ctx, f.m.ID)
		if err != nil {
			t.Fatal(err)
		}
		m.Name = to
		if err := f.db.PutMerchant(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	rename("shop two")
	if n := name(); n != "shop" {
		t.Errorf("name %q right after a change the Service was not told of, want the remembered shop", n)
	}
	f.svc.ForgetMerchant(f.m.ID)
	if n := name(); n != "shop two" {
		t.Errorf("name %q after ForgetMerchant, want shop two", n)
	}
	rename("shop three")
	f.svc.ForgetMerchant("")
	if n := name(); n != "shop three" {
		t.Errorf("name %q after ForgetMerchant(\"\"), want shop three", n)
	}
	// A change through the Service forgets the name too.
	rename("shop four")
	if err := f.svc.RevokeTokens(ctx, f.m.ID); err != nil {
		t.Fatal(err)
	}
	if n := name(); n != "shop four" {
		t.Errorf("name %q after RevokeTokens, want shop four", n)
	}
}

// laggingStore is the real store with an early read that answers, for
// one session, a copy taken earlier: a replica whose change feed is
// behind (session.EarlyReader), an injected fault.
type laggingStore struct {
	*countingStore
	mu    sync.Mutex
	stale map[string]*session.Session
	early int
}

func (s *laggingStore) SessionEarly(ctx context.Context, id string) (*session.Session, bool, error) {
	s.mu.Lock()
	s.early++
	old := s.stale[id]
	s.mu.Unlock()
	if old != nil {
		c := *old
		return &c, true, nil
	}
	sess, err := s.countingStore.Session(ctx, id) // counted
	return sess, false, err
}

// TestMoveOnEarlyRead: a move is decided first on the store's early read
// and, when that refuses it, again on Session's: an early read that is
// behind neither moves the session from the state it had then nor
// refuses a move the stored state allows.
func TestMoveOnEarlyRead(t *testing.T) {
	f := mustService(t)
	lag := &laggingStore{countingStore: f.db, stale: map[string]*session.Session{}}
	f.svc = session.NewService(lag, argon2.IDKey)
	f.svc.Now = f.clock.Now
	ctx := context.Background()
	client := session.Client{IP: "203.0.113.7"}

	// Answers that are not early: a move is decided on them alone,
	// allowed or refused.
	s, token := f.create(t, session.TypeDeposit, deposit())
	f.db.reads = 0
	f.move(t, token, session.Move{State: session.StateAuthenticationStarted})
	if _, err := f.svc.ClientTransition(ctx, token, session.Move{State: session.StateCompleted}, client); errName(err) != "InvalidStateTransition/" {
		t.Errorf("a move the state refuses: %v, want InvalidStateTransition", err)
	}
	if lag.early != 2 || f.db.reads != 2 {
		t.Errorf("two moves on answers that are not early: %d early reads and %d of Session, want 2 and 2 (the early reads')", lag.early, f.db.reads)
	}

	// Behind: the early read says STATE_AUTHENTICATION_STARTED at version 2.
	// A move that state allows but the stored one does not is refused by
	// the save, and then decided again on the stored state.
	behind, err := f.db.Session(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	lag.stale[s.ID] = behind
	f.move(t, token, session.Move{State: session.StateAuthenticationCompleted})
	if _, err := f.svc.ClientTransition(ctx, token, session.Move{State: session.StateAuthenticationCompleted}, client); errName(err) != "InvalidStateTransition/" {
		t.Errorf("a move from the early read's state, stored one state on: %v, want InvalidStateTransition", err)
	}
	if got, err := f.db.Session(ctx, s.ID); err != nil || got.Version != 3 || got.State != session.StateAuthenticationCompleted {
		t.Errorf("stored after the refused move: %+v, %v; want version 3 at STATE_AUTHENTICATION_COMPLETED", got, err)
	}

	// A move the early read's state refuses but the stored one allows.
	next, err := f.svc.ClientTransition(ctx, token, session.Move{State: session.StateBankAccountSelectionStarted}, client)
	if err != nil {
		t.Fatalf("a move the stored state allows, on an early read behind it: %v", err)
	}
	if next.Version != 4 || next.State != session.StateBankAccountSelectionStarted {
		t.Errorf("moved to %v at version %d, want STATE_BANK_ACCOUNT_SELECTION_STARTED at 4", next.State, next.Version)
	}
}
