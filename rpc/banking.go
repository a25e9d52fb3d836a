package rpc

import (
	"context"
	"strings"
	"unicode/utf8"

	"github.com/sessiond/sessiond/session"
)

// The methods on transactions made by API, banks and bank accounts.

func (s *Server) transactionsByReference(ctx context.Context, r *request) (any, error) {
	var p struct {
		MerchantReference string `json:"merchant_reference"`
	}
	if err := r.decode(&p); err != nil {
		return nil, err
	}
	ts, err := s.svc.TransactionsByReference(ctx, r.merchant, p.MerchantReference)
	if err != nil {
		return nil, err
	}
	return struct {
		Transactions []*transactionObject `json:"transactions"`
	}{transactionsOf(ts)}, nil
}

func (s *Server) transactionList(ctx context.Context, r *request) (any, error) {
	var p struct {
		Limit  int    `json:"limit"`
		Cursor string `json:"cursor"`
	}
	if err := r.decode(&p); err != nil {
		return nil, err
	}
	ts, next, err := s.svc.Transactions(ctx, r.merchant, p.Limit, p.Cursor)
	if err != nil {
		return nil, err
	}
	return struct {
		Transactions []*transactionObject `json:"transactions"`
		NextCursor   *string              `json:"next_cursor"`
	}{transactionsOf(ts), optString(next)}, nil
}

func transactionsOf(ts []*session.Transaction) []*transactionObject {
	out := make([]*transactionObject, len(ts))
	for i, t := range ts {
		out[i] = transactionOf(t)
	}
	return out
}

func (s *Server) createPayout(ctx context.Context, r *request) (any, error) {
	var p struct {
		Amount            *session.Decimal   `json:"amount"`
		BankAccountID     string             `json:"bank_account_id"`
		MerchantReference string             `json:"merchant_reference"`
		CurrencyID        string             `json:"currency_id"`
		Message           string             `json:"message"`
		ApprovalRequired  bool               `json:"approval_required"`
		Callbacks         []session.Callback `json:"callbacks"`
	}
	if err := r.decode(&p); err != nil {
		return nil, err
	}
	t, err := s.svc.CreatePayout(ctx, r.merchant, &session.Payout{
		Amount: p.Amount, BankAccountID: p.BankAccountID, MerchantReference: p.MerchantReference,
		CurrencyID: p.CurrencyID, Message: p.Message, ApprovalRequired: p.ApprovalRequired, Callbacks: p.Callbacks,
	})
	if err != nil {
		return nil, err
	}
	return struct {
		ID  string    `json:"id"`
		ETA *unixTime `json:"eta"`
	}{t.ID, optTime(t.ETA)}, nil
}

func (s *Server) createRefund(ctx context.Context, r *request) (any, error) {
	var p struct {
		TransactionID     string             `json:"transaction_id"`
		Amount            *session.Decimal   `json:"amount"`
		MerchantReference string             `json:"merchant_reference"`
		Message           string             `json:"message"`
		Callbacks         []session.Callback `json:"callbacks"`
	}
	if err := r.decode(&p); err != nil {
		return nil, err
	}
	t, err := s.svc.CreateRefund(ctx, r.merchant, &session.Refund{
		TransactionID: p.TransactionID, Amount: p.Amount, MerchantReference: p.MerchantReference,
		Message: p.Message, Callbacks: p.Callbacks,
	})
	if err != nil {
		return nil, err
	}
	return struct {
		ID string `json:"id"`
	}{t.ID}, nil
}

func (s *Server) transactionApprove(ctx context.Context, r *request) (any, error) {
	id, err := r.id()
	if err != nil {
		return nil, err
	}
	t, err := s.svc.ApproveTransaction(ctx, r.merchant, id)
	if err != nil {
		return nil, err
	}
	return struct {
		ID        string                   `json:"id"`
		State     session.TransactionState `json:"state"`
		StateName string                   `json:"state_name"`
		ETA       *unixTime                `json:"eta"`
	}{t.ID, t.State, t.State.String(), optTime(t.ETA)}, nil
}

func (s *Server) transactionReject(ctx context.Context, r *request) (any, error) {
	var p struct {
		ID     string `json:"id"`
		Reason string `json:"reason"`
	}
	if err := r.decode(&p); err != nil {
		return nil, err
	}
	if err := required("id", p.ID); err != nil {
		return nil, err
	}
	if utf8.RuneCountInString(p.Reason) > 255 {
		return nil, session.FieldError(session.NameInvalidParams, "reason", "reason must be at most 255 characters")
	}
	t, err := s.svc.RejectTransaction(ctx, r.merchant, p.ID)
	if err != nil {
		return nil, err
	}
	return txStateOf(t), nil
}

// bankObject is a test bank as bank.list shows it.
type bankObject struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	CountryID string `json:"country_id"`
	Enabled   bool   `json:"enabled"`
	Logo      string `json:"logo"`
}

// bankLogo is the path of the banks' logo, an asset of the hosted page.
const bankLogo = "/client/assets/icon.svg"

func (s *Server) bankList(ctx context.Context, r *request) (any, error) {
	var p struct {
		CountryID string `json:"country_id"`
	}
	if err := r.decode(&p); err != nil {
		return nil, err
	}
	if err := required("country_id", p.CountryID); err != nil {
		return nil, err
	}
	banks := session.Banks(strings.ToLower(p.CountryID))
	if banks == nil {
		return nil, session.ErrNoCountry("country_id", p.CountryID)
	}
	out := struct {
		Banks []bankObject `json:"banks"`
	}{make([]bankObject, len(banks))}
	for i, b := range banks {
		out.Banks[i] = bankObject{ID: b.ID, Name: b.Name, CountryID: b.CountryID, Enabled: b.Enabled, Logo: s.cfg.PublicURL + bankLogo}
	}
	return out, nil
}

func (s *Server) accountCreate(ctx context.Context, r *request) (any, error) {
	var p struct {
		CustomerID string `json:"customer_id"`
		CountryID  string `json:"country_id"`
		Holder     string `json:"holder"`
		IBAN       string `json:"iban"`
		BBAN       string `json:"bban"`
		CurrencyID string `json:"currency_id"`
		BankID     string `json:"bank_id"`
	}
	if err := r.decode(&p); err != nil {
		return nil, err
	}
	a, err := s.svc.CreateAccount(ctx, r.merchant, &session.NewAccount{
		CustomerID: p.CustomerID, CountryID: p.CountryID, Holder: p.Holder, IBAN: p.IBAN, BBAN: p.BBAN,
		CurrencyID: p.CurrencyID, BankID: p.BankID,
	})
	if err != nil {
		return nil, err
	}
	return struct {
		ID string `json:"id"`
	}{a.ID}, nil
}

// accountObject is a stored bank account on the wire.
type accountObject struct {
	ID         string   `json:"id"`
	CustomerID string   `json:"customer_id"`
	CountryID  string   `json:"country_id"`
	CurrencyID string   `json:"currency_id"`
	Holder     string   `json:"holder"`
	IBAN       *string  `json:"iban"`
	BBAN       *string  `json:"bban"`
	BankID     *string  `json:"bank_id"`
	Name       *string  `json:"name"`
	Created    unixTime `json:"created"`
}

func accountOf(a *session.Account) *accountObject {
	return &accountObject{
		ID: a.ID, CustomerID: a.CustomerID, CountryID: a.CountryID, CurrencyID: a.CurrencyID, Holder: a.Holder,
		IBAN: optString(a.IBAN), BBAN: optString(a.BBAN), BankID: optString(a.BankID), Name: optString(a.Name),
		Created: unixTime(a.Created),
	}
}

func (s *Server) accountGet(ctx context.Context, r *request) (any, error) {
	id, err := r.id()
	if err != nil {
		return nil, err
	}
	a, err := s.svc.Account(ctx, r.merchant, id)
	if err != nil {
		return nil, err
	}
	return accountOf(a), nil
}

func (s *Server) accountList(ctx context.Context, r *request) (any, error) {
	var p struct {
		CustomerID string `json:"customer_id"`
	}
	if err := r.decode(&p); err != nil {
		return nil, err
	}
	as, err := s.svc.Accounts(ctx, r.merchant, p.CustomerID)
	if err != nil {
		return nil, err
	}
	out := struct {
		Accounts []*accountObject `json:"bank_accounts"`
	}{make([]*accountObject, len(as))}
	for i, a := range as {
		out.Accounts[i] = accountOf(a)
	}
	return out, nil
}
