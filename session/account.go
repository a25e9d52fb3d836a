package session

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Account is a stored bank account of one of a merchant's customers:
// made by bank_account.create, or picked by the end user in a session
// (state 4), under the session's customer. Payouts go to accounts.
type Account struct {
	ID         string    `json:"id"`
	MerchantID string    `json:"merchant_id"`
	CustomerID string    `json:"customer_id"`
	CountryID  string    `json:"country_id"`
	CurrencyID string    `json:"currency_id"`
	Holder     string    `json:"holder"`
	IBAN       string    `json:"iban,omitempty"`
	BBAN       string    `json:"bban,omitempty"`
	BankID     string    `json:"bank_id,omitempty"`
	Name       string    `json:"name,omitempty"` // the bank's name
	SessionID  string    `json:"session_id,omitempty"`
	Created    time.Time `json:"created"`
}

// NewAccount is what bank_account.create asks for.
type NewAccount struct {
	CustomerID string
	CountryID  string
	Holder     string
	IBAN       string
	BBAN       string
	CurrencyID string
	BankID     string
}

// CreateAccount stores a bank account for one of merchant m's customers.
// Errors: CodeInvalid for bad params; NotFound for an unknown country or
// bank.
func (s *Service) CreateAccount(ctx context.Context, m *Merchant, p *NewAccount) (*Account, error) {
	if s.accounts == nil {
		return nil, ErrNoAccounts
	}
	country := strings.ToLower(p.CountryID)
	currency := strings.ToLower(p.CurrencyID)
	switch {
	case p.CustomerID == "":
		return nil, FieldError(NameMissingParameter, "customer_id", "customer_id is required")
	case country == "":
		return nil, FieldError(NameMissingParameter, "country_id", "country_id is required")
	case p.Holder == "":
		return nil, FieldError(NameMissingParameter, "holder", "holder is required")
	case p.IBAN == "" && p.BBAN == "":
		return nil, FieldError(NameMissingParameter, "iban", "one of iban and bban is required")
	}
	for _, f := range []struct{ name, value string }{
		{"customer_id", p.CustomerID}, {"holder", p.Holder}, {"iban", p.IBAN}, {"bban", p.BBAN}, {"bank_id", p.BankID},
	} {
		if utf8.RuneCountInString(f.value) > maxString {
			return nil, FieldError(NameInvalidParams, f.name, f.name+" "+errNotPlainText, maxString)
		}
	}
	def, ok := Countries[country]
	if !ok {
		return nil, ErrNoCountry("country_id", p.CountryID)
	}
	if currency == "" {
		currency = def
	}
	if !Currencies[currency] {
		return nil, FieldError(NameInvalidCurrency, "currency_id", "currency_id must be one of sek eur nok dkk gbp pln")
	}
	a := &Account{MerchantID: m.ID, CustomerID: p.CustomerID, CountryID: country, CurrencyID: currency,
		Holder: p.Holder, IBAN: p.IBAN, BBAN: p.BBAN, BankID: p.BankID, Created: s.Now()}
	if p.BankID != "" {
		b, ok := BankOf(country, p.BankID)
		if !ok {
			return nil, &Error{Code: CodeNotFound, Name: NameNotFound, Field: "bank_id", Message: "No Bank found with id: " + p.BankID}
		}
		a.Name = b.Name
	}
	var err error
	if a.ID, err = randomString(s.Random, "ba_", 12); err != nil {
		return nil, fmt.Errorf("session: new bank account id: %w", err)
	}
	if err := s.accounts.PutAccount(ctx, a); err != nil {
		return nil, err
	}
	return a, nil
}

// Account returns merchant m's bank account with the id; ErrNotFound for
// another merchant's.
func (s *Service) Account(ctx context.Context, m *Merchant, id string) (*Account, error) {
	if s.accounts == nil {
		return nil, ErrNoAccounts
	}
	a, err := s.accounts.Account(ctx, id)
	if err != nil {
		return nil, err
	}
	if a.MerchantID != m.ID {
		return nil, ErrNotFound
	}
	return a, nil
}

// Accounts returns the bank accounts of merchant m's customer, oldest
// first.
func (s *Service) Accounts(ctx context.Context, m *Merchant, customerID string) ([]*Account, error) {
	if s.accounts == nil {
		return nil, ErrNoAccounts
	}
	if customerID == "" {
		return nil, FieldError(NameMissingParameter, "customer_id", "customer_id is required")
	}
	return s.accounts.Accounts(ctx, m.ID, customerID)
}

// sessionAccountRecord is the stored account of the bank account an end
// user picked in sess.
func sessionAccountRecord(sess *Session, now time.Time) *Account {
	a := sess.BankAccount
	acct := &Account{ID: a.ID, MerchantID: sess.MerchantID, CustomerID: sess.CustomerID,
		CountryID: sess.Params.CountryID, CurrencyID: sess.CurrencyID, Holder: a.Holder, IBAN: a.IBAN, BBAN: a.BBAN,
		SessionID: sess.ID, Created: now}
	if acct.CurrencyID == "" {
		acct.CurrencyID = Countries[acct.CountryID]
	}
	if sess.Bank != nil {
		acct.BankID, acct.Name = sess.Bank.ID, sess.Bank.Name
	}
	return acct
}
