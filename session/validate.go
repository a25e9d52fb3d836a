package session

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// Countries lists the country_id values a session may have, with the
// currency each defaults to.
var Countries = map[string]string{
	"at": "eur", "be": "eur", "de": "eur", "dk": "dkk", "ee": "eur", "es": "eur",
	"fi": "eur", "fr": "eur", "gb": "gbp", "it": "eur", "lt": "eur", "lv": "eur",
	"nl": "eur", "no": "nok", "pl": "pln", "pt": "eur", "se": "sek",
}

// Currencies lists the currency_id values a session may have.
var Currencies = map[string]bool{"sek": true, "eur": true, "nok": true, "dkk": true, "gbp": true, "pln": true}

// ErrorCodes lists the error codes an end user may abort a session with.
// The server alone sets "expired_session" and "merchant_rejected".
var ErrorCodes = map[string]bool{
	"psu_configuration_error": true, "psu_not_customer": true, "psu_no_funds": true,
	"psu_disabled_bank_id_extended_use": true, "generic_bank_error": true, "generic_user_error": true,
	"psu_logged_into_internet_bank": true, "psu_abandoned_session": true, "psu_invalid_credentials": true,
	"name_mismatch": true,
}

// Server-set error codes.
const (
	ErrorCodeExpired          = "expired_session"
	ErrorCodeMerchantRejected = "merchant_rejected"
	ErrorCodeNotCustomer      = "psu_not_customer"
)

const (
	maxString       = 255
	maxURL          = 2048
	maxCallbacks    = 20
	maxFreeForm     = 16 << 10
	dateLayout      = "2006-01-02"
	maxLocale       = 16
	maxBrandName    = 64
	maxRole         = 32
	defaultRole     = "unknown"
	minAmount       = Amount(1)
	errNotPlainText = "must be at most %d characters"
)

// validate checks p for a session of type t created at now, and returns
// the amount and currency the session gets. It lowercases country_id and
// currency_id (they are case-insensitive on input) and fills in the
// country of a type that has only one. Errors are CodeInvalid with the
// offending field, or CodeNotFound for an unknown country or bank, as
// Brite answers those.
func (p *Params) validate(t Type, now time.Time) (Amount, string, error) {
	var amount Amount
	switch {
	case t == TypeBankAccountSelection || t == TypeAuthentication:
		if p.Amount != nil {
			return 0, "", FieldError(NameInvalidParams, "amount", "%s sessions take no amount", t)
		}
	case p.Amount == nil:
		return 0, "", FieldError(NameMissingParameter, "amount", "amount is required")
	default:
		a, ok := ParseAmount(string(*p.Amount))
		if !ok || a < minAmount || a > MaxAmount {
			return 0, "", FieldError(NameInvalidAmount, "amount", "Amount can not be below or equal 0, above 1000000000, or have more than 2 decimals")
		}
		amount = a
	}

	given := p.CountryID
	p.CountryID = strings.ToLower(p.CountryID)
	p.CurrencyID = strings.ToLower(p.CurrencyID)
	market, fixed := fixedMarket[t]
	if fixed && p.CountryID == "" {
		p.CountryID = market.country
	}
	if p.CountryID == "" {
		return 0, "", FieldError(NameMissingParameter, "country_id", "country_id is required")
	}
	currency, ok := Countries[p.CountryID]
	if !ok {
		return 0, "", ErrNoCountry("country_id", given)
	}
	if fixed && p.CountryID != market.country {
		return 0, "", FieldError(NameInvalidParams, "country_id", "%s sessions are for country_id %s only", t, market.country)
	}
	if p.CurrencyID != "" {
		if !Currencies[p.CurrencyID] {
			return 0, "", FieldError(NameInvalidCurrency, "currency_id", "currency_id must be one of sek eur nok dkk gbp pln")
		}
		if fixed && p.CurrencyID != market.currency {
			return 0, "", FieldError(NameInvalidCurrency, "currency_id", "%s sessions are in %s only", t, market.currency)
		}
		currency = p.CurrencyID
	}
	if p.BankID != "" {
		if _, ok := BankOf(p.CountryID, p.BankID); !ok {
			return 0, "", &Error{Code: CodeNotFound, Name: NameNotFound, Field: "bank_id",
				Message: "No Bank found with id: " + p.BankID}
		}
	}
	addressCountry := ""
	if a := p.CustomerAddress; a != nil {
		addressCountry, a.CountryID = a.CountryID, strings.ToLower(a.CountryID)
	}

	for _, f := range []struct {
		name, value string
		max         int
	}{
		{"merchant_reference", p.MerchantReference, maxString},
		{"customer_id", p.CustomerID, maxString},
		{"customer_firstname", p.CustomerFirstname, maxString},
		{"customer_lastname", p.CustomerLastname, maxString},
		{"customer_email", p.CustomerEmail, maxString},
		{"customer_street_address", p.CustomerStreetAddress, maxString},
		{"customer_zip", p.CustomerZip, maxString},
		{"customer_city", p.CustomerCity, maxString},
		{"ssn", p.SSN, maxString},
		{"locale", p.Locale, maxLocale},
		{"brand_name", p.BrandName, maxBrandName},
		{"statement_reference", p.StatementReference, maxString},
		{"deeplink_redirect", p.DeeplinkRedirect, maxURL},
		{"redirect_uri", p.RedirectURI, maxString},
		{"customer_reference", p.CustomerReference, maxString},
	} {
		if utf8.RuneCountInString(f.value) > f.max {
			return 0, "", FieldError(NameInvalidParams, f.name, f.name+" "+errNotPlainText, f.max)
		}
	}
	for _, f := range []struct{ name, value string }{
		{"customer_address.street", addr(p.CustomerAddress).Street},
		{"customer_address.postal_code", addr(p.CustomerAddress).PostalCode},
		{"customer_address.city", addr(p.CustomerAddress).City},
		{"closed_loop.customer_id", loop(p.ClosedLoop).CustomerID},
		{"closed_loop.bank_account_id", loop(p.ClosedLoop).BankAccountID},
		{"closed_loop.nin", loop(p.ClosedLoop).NIN},
		{"hint.customer_id", hint(p.Hint).CustomerID},
		{"hint.bank_account_id", hint(p.Hint).BankAccountID},
	} {
		if utf8.RuneCountInString(f.value) > maxString {
			return 0, "", FieldError(NameInvalidParams, f.name, f.name+" "+errNotPlainText, maxString)
		}
	}
	if c := addr(p.CustomerAddress).CountryID; c != "" && Countries[c] == "" {
		return 0, "", ErrNoCountry("customer_address.country_id", addressCountry)
	}
	if p.CustomerDOB != "" {
		if _, err := time.Parse(dateLayout, p.CustomerDOB); err != nil {
			return 0, "", FieldError(NameInvalidParams, "customer_dob", "customer_dob must be a date YYYY-MM-DD")
		}
	}
	if p.RedirectURI != "" && !httpURL(p.RedirectURI) {
		return 0, "", FieldError(NameInvalidParams, "redirect_uri", "redirect_uri must be an absolute http(s) URL")
	}
	if p.DeeplinkRedirect != "" {
		if u, err := url.Parse(p.DeeplinkRedirect); err != nil || u.Scheme == "" {
			return 0, "", FieldError(NameInvalidParams, "deeplink_redirect", "deeplink_redirect must be a URI with a scheme")
		}
	}
	if p.CountryID == "de" && p.BrandName == "" {
		return 0, "", FieldError(NameMissingParameter, "brand_name", "brand_name is required for country_id de")
	}

	if t != TypeWithdrawal {
		if p.Hint != nil {
			return 0, "", FieldError(NameInvalidParams, "hint", "hint is for withdrawals only")
		}
		if p.StatementReference != "" {
			return 0, "", FieldError(NameInvalidParams, "statement_reference", "statement_reference is for withdrawals only")
		}
	} else {
		switch {
		case p.CountryID == "de" && p.StatementReference == "":
			return 0, "", FieldError(NameMissingParameter, "statement_reference", "statement_reference is required for country_id de")
		case (p.CountryID == "se" || p.CountryID == "fi") && p.StatementReference != "":
			return 0, "", FieldError(NameInvalidParams, "statement_reference", "statement_reference is not allowed for country_id %s", p.CountryID)
		}
	}
	if t != TypeRecurringPayment {
		if p.RequestedStartDate != "" {
			return 0, "", FieldError(NameInvalidParams, "requested_start_date", "requested_start_date is for recurring payments only")
		}
	} else {
		if p.RequestedStartDate == "" {
			return 0, "", FieldError(NameMissingParameter, "requested_start_date", "requested_start_date is required")
		}
		d, err := time.Parse(dateLayout, p.RequestedStartDate)
		tomorrow := now.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
		if err != nil || d.Before(tomorrow) {
			return 0, "", FieldError(NameInvalidParams, "requested_start_date", "requested_start_date must be a date YYYY-MM-DD, tomorrow (UTC) or later")
		}
	}

	if err := validateCallbacks(p.Callbacks); err != nil {
		return 0, "", err
	}
	if p.Role != "" && utf8.RuneCountInString(p.Role) > maxRole {
		return 0, "", FieldError(NameInvalidParams, "role", "role must be 1 to %d characters", maxRole)
	}
	// A free-form value given as null counts as absent, as an empty
	// string does for the others.
	for _, v := range []*json.RawMessage{&p.Verifications, &p.ViewState, &p.Metadata} {
		if bytes.Equal(bytes.TrimSpace(*v), []byte("null")) {
			*v = nil
		}
	}
	if err := freeForm("verifications", p.Verifications, '['); err != nil {
		return 0, "", err
	}
	if err := freeForm("view_state", p.ViewState, '{'); err != nil {
		return 0, "", err
	}
	if err := freeForm("metadata", p.Metadata, '{'); err != nil {
		return 0, "", err
	}
	return amount, currency, nil
}

// ErrNoCountry is Brite's answer to an unknown country id: NotFound, "No
// Country found with id: xx", naming the field.
func ErrNoCountry(field, id string) error {
	return &Error{Code: CodeNotFound, Name: NameNotFound, Field: field, Message: "No Country found with id: " + id}
}

func validateCallbacks(cbs []Callback) error {
	if len(cbs) > maxCallbacks {
		return FieldError(NameInvalidCallback, "callbacks", "at most %d callbacks", maxCallbacks)
	}
	for _, cb := range cbs {
		switch {
		case cb.URL == "" || len(cb.URL) > maxURL || !httpURL(cb.URL):
			return FieldError(NameInvalidCallback, "callbacks", "callback url must be an absolute http(s) URL of at most %d characters", maxURL)
		case (cb.SessionState == nil) == (cb.TransactionState == nil):
			return FieldError(NameInvalidCallback, "callbacks", "a callback names exactly one of session_state and transaction_state")
		case cb.SessionState != nil && (*cb.SessionState < 1 || *cb.SessionState > 12):
			return FieldError(NameInvalidCallback, "callbacks", "callback session_state must be 1 to 12")
		case cb.TransactionState != nil && !cb.TransactionState.Valid():
			return FieldError(NameInvalidCallback, "callbacks", "callback transaction_state must be 0 to 7")
		}
	}
	return nil
}

// freeForm checks a value stored as given: its JSON kind and size.
func freeForm(field string, v []byte, open byte) error {
	if v == nil {
		return nil
	}
	if t := bytes.TrimSpace(v); len(t) == 0 || t[0] != open {
		kind := "an array"
		if open == '{' {
			kind = "an object"
		}
		return FieldError(NameInvalidParams, field, "%s must be %s", field, kind)
	}
	if len(v) > maxFreeForm {
		return FieldError(NameInvalidParams, field, "%s must be at most %d bytes", field, maxFreeForm)
	}
	return nil
}

func httpURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

func addr(a *Address) Address {
	if a == nil {
		return Address{}
	}
	return *a
}

func loop(c *ClosedLoop) ClosedLoop {
	if c == nil {
		return ClosedLoop{}
	}
	return *c
}

func hint(h *Hint) Hint {
	if h == nil {
		return Hint{}
	}
	return *h
}
