package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// NameTransactionInvalid is the error name of a payout or refund that the
// transaction it refers to cannot take (a refund above what is left of
// its deposit, or of a deposit not yet completed).
const NameTransactionInvalid = "TransactionInvalid"

// MerchantAccountID is the id of the merchant's side of every transaction:
// sessiond has no merchant bank accounts, so every merchant has one fixed
// test account.
const MerchantAccountID = "ba_merchant"

// DefaultPayoutETA is how long after approval a payout or refund is
// expected to settle when nothing moves it faster (no sandbox).
const DefaultPayoutETA = 24 * time.Hour

// merchantAccount is the merchant's fixed test account in a country.
func merchantAccount(countryID string) *AccountRef {
	return &AccountRef{BankName: "Test Bank", CountryID: countryID, IBAN: testIBAN(countryID, "0000000000000001")}
}

// sessionAccount is the end user's side of a session's transaction: the
// account picked at state 4, at the bank chosen at state 1; nil if none
// was picked.
func sessionAccount(sess *Session) *AccountRef {
	a := sess.BankAccount
	if a == nil {
		return nil
	}
	ref := &AccountRef{CountryID: sess.Params.CountryID, IBAN: a.IBAN}
	if sess.Bank != nil {
		ref.BankName = sess.Bank.Name
	}
	return ref
}

func accountRef(a *Account) *AccountRef {
	ref := &AccountRef{CountryID: a.CountryID, IBAN: a.IBAN}
	if b, ok := BankOf(a.CountryID, a.BankID); ok {
		ref.BankName = b.Name
	} else {
		ref.BankName = a.Name
	}
	return ref
}

// testIBAN returns an IBAN of the country with the bank and account part
// bban and a correct check number (ISO 13616: the number formed by bban,
// the country's letters as digits and 00 has remainder 1 mod 97).
func testIBAN(countryID, bban string) string {
	cc := strings.ToUpper(countryID)
	// ISO 13616's check: the number of bban, country and "00", letters as
	// 10-35, mod 97, taken a digit (or a letter's two) at a time.
	rem := 0
	for _, r := range bban + cc + "00" {
		if r >= 'A' && r <= 'Z' {
			rem = (rem*100 + int(r-'A') + 10) % 97
		} else {
			rem = (rem*10 + int(r-'0')) % 97
		}
	}
	return fmt.Sprintf("%s%02d%s", cc, 98-rem, bban)
}

const messageAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"

// newMessage returns a bank statement reference like Brite's "RF5282XX2".
func newMessage(r io.Reader) (string, error) {
	b := make([]byte, 7)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", err
	}
	out := []byte("RF")
	out = append(out, '0'+b[0]%10, '0'+b[1]%10)
	for _, c := range b[2:] {
		out = append(out, messageAlphabet[int(c)%len(messageAlphabet)])
	}
	return string(out), nil
}

// Payout is what transaction.create_withdrawal asks for: money from the
// merchant to one of its customers' stored bank accounts.
type Payout struct {
	Amount            *Decimal
	BankAccountID     string
	MerchantReference string
	CurrencyID        string
	Message           string
	ApprovalRequired  bool
	Callbacks         []Callback
}

// Refund is what transaction.create_refund asks for: part or all of a
// completed deposit back to the account it came from.
type Refund struct {
	TransactionID     string
	Amount            *Decimal
	MerchantReference string
	Message           string
	Callbacks         []Callback
}

func parseAmount(d *Decimal) (Amount, error) {
	if d == nil {
		return 0, FieldError(NameMissingParameter, "amount", "amount is required")
	}
	a, ok := ParseAmount(string(*d))
	if !ok || a < minAmount || a > MaxAmount {
		return 0, FieldError(NameInvalidAmount, "amount", "Amount can not be below or equal 0, above 1000000000, or have more than 2 decimals")
	}
	return a, nil
}

func checkTransactionText(reference, message string) error {
	for _, f := range []struct{ name, value string }{{"merchant_reference", reference}, {"message", message}} {
		if utf8.RuneCountInString(f.value) > maxString {
			return FieldError(NameInvalidParams, f.name, f.name+" "+errNotPlainText, maxString)
		}
	}
	return nil
}

// newAPITransaction returns a transaction the merchant asked for by API,
// at 0, or already at 1 if it needs no approval; the change that stores
// it fires its callbacks of both states.
func (s *Service) newAPITransaction(m *Merchant, t *Transaction, now time.Time) (*Change, error) {
	id, _, err := s.newID()
	if err != nil {
		return nil, err
	}
	t.ID, t.MerchantID, t.State, t.Created = id, m.ID, TxCreated, now
	if t.Message == "" {
		if t.Message, err = newMessage(s.Random); err != nil {
			return nil, fmt.Errorf("session: new statement message: %w", err)
		}
	}
	c := &Change{Transaction: t, Deliveries: s.transactionDeliveries(nil, t, now)}
	if !t.ApprovalRequired {
		s.approveTransaction(t, now)
		c.Deliveries = append(c.Deliveries, s.transactionDeliveries(nil, t, now)...)
	}
	return c, nil
}

// approveTransaction moves a payout or refund to pending, with the time it
// is expected to settle.
func (s *Service) approveTransaction(t *Transaction, now time.Time) {
	t.State, t.Approved = TxPending, now
	eta := s.PayoutETA
	if eta == 0 {
		eta = DefaultPayoutETA
	}
	t.ETA = now.Add(eta)
}

// CreatePayout makes a withdrawal transaction of merchant m to a stored
// bank account of one of its customers. Errors: CodeInvalid for bad
// params; ErrNotFound (field bank_account_id) for an account that is not
// the merchant's.
func (s *Service) CreatePayout(ctx context.Context, m *Merchant, p *Payout) (*Transaction, error) {
	if s.accounts == nil {
		return nil, ErrNoAccounts
	}
	amount, err := parseAmount(p.Amount)
	if err != nil {
		return nil, err
	}
	if p.BankAccountID == "" {
		return nil, FieldError(NameMissingParameter, "bank_account_id", "bank_account_id is required")
	}
	if err := checkTransactionText(p.MerchantReference, p.Message); err != nil {
		return nil, err
	}
	if err := validateCallbacks(p.Callbacks); err != nil {
		return nil, err
	}
	acct, err := s.Account(ctx, m, p.BankAccountID)
	if err != nil {
		return nil, withField(err, "bank_account_id")
	}
	currency := strings.ToLower(p.CurrencyID)
	if currency == "" {
		currency = acct.CurrencyID
	}
	if !Currencies[currency] {
		return nil, FieldError(NameInvalidCurrency, "currency_id", "currency_id must be one of sek eur nok dkk gbp pln")
	}
	t := &Transaction{
		Type:              TxTypeWithdrawal,
		Amount:            amount,
		CurrencyID:        currency,
		CountryID:         acct.CountryID,
		MerchantReference: p.MerchantReference,
		CustomerID:        acct.CustomerID,
		BankAccountID:     acct.ID,
		FromBankAccountID: MerchantAccountID,
		FromBankAccount:   merchantAccount(acct.CountryID),
		ToBankAccountID:   acct.ID,
		ToBankAccount:     accountRef(acct),
		Message:           p.Message,
		ApprovalRequired:  p.ApprovalRequired,
		Callbacks:         p.Callbacks,
	}
	c, err := s.newAPITransaction(m, t, s.Now())
	if err != nil {
		return nil, err
	}
	if err := s.save(ctx, c); err != nil {
		return nil, err
	}
	return t, nil
}

// refundMu serializes refunds, so that two racing refunds of one deposit
// cannot together exceed it.
var refundMu sync.Mutex

// CreateRefund makes a refund of merchant m's deposit transaction at 4, 5
// or 6, back to the account it came from. Errors: CodeInvalid for bad
// params, TransactionInvalid if the deposit is not refundable or the
// refunds of it would add up to more than its amount; ErrNotFound (field
// transaction_id).
func (s *Service) CreateRefund(ctx context.Context, m *Merchant, p *Refund) (*Transaction, error) {
	if s.accounts == nil {
		return nil, ErrNoAccounts
	}
	if p.TransactionID == "" {
		return nil, FieldError(NameMissingParameter, "transaction_id", "transaction_id is required")
	}
	amount, err := parseAmount(p.Amount)
	if err != nil {
		return nil, err
	}
	if err := checkTransactionText(p.MerchantReference, p.Message); err != nil {
		return nil, err
	}
	if err := validateCallbacks(p.Callbacks); err != nil {
		return nil, err
	}
	refundMu.Lock()
	defer refundMu.Unlock()
	orig, err := s.Transaction(ctx, m, p.TransactionID)
	if err != nil {
		return nil, withField(err, "transaction_id")
	}
	if orig.Type != TxTypeDeposit {
		return nil, FieldError(NameTransactionInvalid, "transaction_id", "only deposits can be refunded, this is a %s", orig.Type)
	}
	if orig.State != TxCompleted && orig.State != TxCredit && orig.State != TxSettled {
		return nil, FieldError(NameTransactionInvalid, "transaction_id", "a deposit can be refunded once it is completed; it is %s", orig.State)
	}
	refunds, err := s.accounts.Refunds(ctx, orig.ID)
	if err != nil {
		return nil, err
	}
	left := orig.Amount
	for _, r := range refunds {
		if r.State != TxAborted && r.State != TxFailed {
			left -= r.Amount
		}
	}
	if amount > left {
		return nil, FieldError(NameTransactionInvalid, "amount", "refunds of a deposit add up to at most its amount: %s is left", left)
	}
	t := &Transaction{
		Type:                  TxTypeRefund,
		Amount:                amount,
		CurrencyID:            orig.CurrencyID,
		CountryID:             orig.CountryID,
		MerchantReference:     p.MerchantReference,
		CustomerID:            orig.CustomerID,
		BankAccountID:         orig.FromBankAccountID,
		FromBankAccountID:     MerchantAccountID,
		FromBankAccount:       merchantAccount(orig.CountryID),
		ToBankAccountID:       orig.FromBankAccountID,
		ToBankAccount:         orig.FromBankAccount,
		Message:               p.Message,
		OriginalTransactionID: orig.ID,
		Callbacks:             p.Callbacks,
	}
	c, err := s.newAPITransaction(m, t, s.Now())
	if err != nil {
		return nil, err
	}
	if err := s.save(ctx, c); err != nil {
		return nil, err
	}
	return t, nil
}

// ApproveTransaction approves merchant m's payout created with
// approval_required: it moves from 0 to 1 and gets its eta. Errors:
// ErrNotFound; CodeConflict (InvalidStateTransition if it needs no
// approval, AlreadyDecided if it is past 0).
func (s *Service) ApproveTransaction(ctx context.Context, m *Merchant, id string) (*Transaction, error) {
	t, err := s.decidableTransaction(ctx, m, id)
	if err != nil {
		return nil, err
	}
	next := *t
	now := s.Now()
	s.approveTransaction(&next, now)
	from := t.State
	c := &Change{Transaction: &next, TxFrom: &from, Deliveries: s.transactionDeliveries(nil, &next, now)}
	if err := s.save(ctx, c); err != nil {
		return nil, err
	}
	return &next, nil
}

// RejectTransaction rejects merchant m's payout created with
// approval_required: it moves from 0 to 2 with error code
// merchant_rejected. Errors as ApproveTransaction.
func (s *Service) RejectTransaction(ctx context.Context, m *Merchant, id string) (*Transaction, error) {
	t, err := s.decidableTransaction(ctx, m, id)
	if err != nil {
		return nil, err
	}
	next := *t
	now := s.Now()
	next.State, next.Completed, next.ErrorCode = TxAborted, now, ErrorCodeMerchantRejected
	from := t.State
	c := &Change{Transaction: &next, TxFrom: &from, Deliveries: s.transactionDeliveries(nil, &next, now)}
	if err := s.save(ctx, c); err != nil {
		return nil, err
	}
	return &next, nil
}

func (s *Service) decidableTransaction(ctx context.Context, m *Merchant, id string) (*Transaction, error) {
	t, err := s.Transaction(ctx, m, id)
	if err != nil {
		return nil, err
	}
	switch {
	case !t.ApprovalRequired:
		return nil, Errorf(CodeConflict, NameInvalidStateTransition, "the transaction was not created with approval_required")
	case t.State != TxCreated:
		return nil, Errorf(CodeConflict, NameAlreadyDecided, "the transaction is already decided (%s)", t.State)
	}
	return t, nil
}

// TransactionsByReference returns merchant m's transactions with the
// merchant reference, newest first, at most 100.
func (s *Service) TransactionsByReference(ctx context.Context, m *Merchant, ref string) ([]*Transaction, error) {
	if s.accounts == nil {
		return nil, ErrNoAccounts
	}
	if ref == "" {
		return nil, FieldError(NameMissingParameter, "merchant_reference", "merchant_reference is required")
	}
	return s.accounts.TransactionsByReference(ctx, m.ID, ref, maxByReference)
}

// Transaction list limits.
const (
	DefaultTransactionPage = 100
	MaxTransactionPage     = 1000
)

// Transactions returns a page of merchant m's transactions, newest first:
// up to limit (0 means DefaultTransactionPage) made before the one whose
// id is cursor (the first page if cursor is empty), and the cursor of the
// next page, empty after the last.
func (s *Service) Transactions(ctx context.Context, m *Merchant, limit int, cursor string) ([]*Transaction, string, error) {
	if s.accounts == nil {
		return nil, "", ErrNoAccounts
	}
	switch {
	case limit == 0:
		limit = DefaultTransactionPage
	case limit < 0 || limit > MaxTransactionPage:
		return nil, "", FieldError(NameInvalidParams, "limit", "limit must be 1 to %d", MaxTransactionPage)
	}
	if cursor != "" {
		if _, err := s.Transaction(ctx, m, cursor); err != nil {
			return nil, "", FieldError(NameInvalidParams, "cursor", "cursor is not a transaction.list cursor")
		}
	}
	ts, err := s.accounts.Transactions(ctx, m.ID, cursor, limit+1)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(ts) > limit {
		ts = ts[:limit]
		next = ts[limit-1].ID
	}
	return ts, next, nil
}

// withField names the param an error such as ErrNotFound was about.
func withField(err error, field string) error {
	var e *Error
	if errors.As(err, &e) && e.Field == "" {
		c := *e
		c.Field = field
		return &c
	}
	return err
}

// stampTransaction records on t the times its move to state `to` at now
// stands for: approved on reaching pending, completed on reaching a final
// or completed state, settled on reaching settled.
func stampTransaction(t *Transaction, to TransactionState, now time.Time) {
	switch to {
	case TxPending:
		if t.Approved.IsZero() {
			t.Approved = now
		}
	case TxAborted, TxFailed, TxCompleted:
		t.Completed = now
	case TxSettled:
		t.Settled = now
	}
}
