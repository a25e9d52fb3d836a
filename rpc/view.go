package rpc

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/sessiond/sessiond/session"
)

// unixTime is a time on the wire: Unix seconds as a number, with up to
// microseconds as a fraction.
type unixTime time.Time

func (t unixTime) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, float64(time.Time(t).UnixMicro())/1e6, 'f', -1, 64), nil
}

func optTime(t time.Time) *unixTime {
	if t.IsZero() {
		return nil
	}
	u := unixTime(t)
	return &u
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// bankAccountObject is the session's picked account on the wire: a holder,
// IBAN or BBAN the end user did not give is null, as every absent value is.
type bankAccountObject struct {
	ID     string  `json:"id"`
	Holder *string `json:"holder"`
	IBAN   *string `json:"iban"`
	BBAN   *string `json:"bban"`
}

func bankAccountOf(a *session.BankAccount) *bankAccountObject {
	if a == nil {
		return nil
	}
	return &bankAccountObject{ID: a.ID, Holder: optString(a.Holder), IBAN: optString(a.IBAN), BBAN: optString(a.BBAN)}
}

func optAmount(a session.Amount) *session.Amount {
	if a == 0 {
		return nil
	}
	return &a
}

// sessionObject is the session as session.get shows it (API.md section 3).
type sessionObject struct {
	ID                    string              `json:"id"`
	Type                  int                 `json:"type"`
	TypeName              session.Type        `json:"type_name"`
	MerchantID            string              `json:"merchant_id"`
	Reference             *int64              `json:"reference"`
	State                 session.State       `json:"state"`
	StateName             string              `json:"state_name"`
	ErrorCode             *string             `json:"error_code"`
	Amount                *session.Amount     `json:"amount"`
	CurrencyID            *string             `json:"currency_id"`
	CountryID             string              `json:"country_id"`
	Locale                *string             `json:"locale"`
	MerchantReference     *string             `json:"merchant_reference"`
	CustomerID            *string             `json:"customer_id"`
	TransactionID         *string             `json:"transaction_id"`
	BankID                *string             `json:"bank_id"`
	BankIntegrationID     *string             `json:"bank_integration_id"`
	Bank                  *session.Bank       `json:"bank"`
	BankAccountID         *string             `json:"bank_account_id"`
	BankAccount           *bankAccountObject  `json:"bank_account"`
	ApprovalRequired      bool                `json:"approval_required"`
	Approval              *string             `json:"approval"`
	Created               unixTime            `json:"created"`
	Completed             *unixTime           `json:"completed"`
	Expires               unixTime            `json:"expires"`
	LastRequest           *unixTime           `json:"last_request"`
	IP                    *string             `json:"ip"`
	UserAgent             *string             `json:"user_agent"`
	Role                  string              `json:"role"`
	CurrentStep           int                 `json:"current_step"`
	TotalSteps            int                 `json:"total_steps"`
	Version               int                 `json:"version"`
	Callbacks             []session.Callback  `json:"callbacks"`
	Verifications         json.RawMessage     `json:"verifications"`
	ViewState             json.RawMessage     `json:"view_state"`
	CustomerFirstname     *string             `json:"customer_firstname"`
	CustomerLastname      *string             `json:"customer_lastname"`
	CustomerEmail         *string             `json:"customer_email"`
	CustomerDOB           *string             `json:"customer_dob"`
	CustomerStreetAddress *string             `json:"customer_street_address"`
	CustomerZip           *string             `json:"customer_zip"`
	CustomerCity          *string             `json:"customer_city"`
	CustomerAddress       *session.Address    `json:"customer_address"`
	SSN                   *string             `json:"ssn"`
	BrandName             *string             `json:"brand_name"`
	RedirectURI           *string             `json:"redirect_uri"`
	DeeplinkRedirect      *string             `json:"deeplink_redirect"`
	ClosedLoop            *session.ClosedLoop `json:"closed_loop"`
	Hint                  *session.Hint       `json:"hint"`
	StatementReference    *string             `json:"statement_reference"`
	RequestedStartDate    *string             `json:"requested_start_date"`
	CustomerReference     *string             `json:"customer_reference"`
	Metadata              json.RawMessage     `json:"metadata"`
}

func (s *Server) sessionObject(v *session.Session, now time.Time) *sessionObject {
	p := &v.Params
	o := &sessionObject{
		ID:                    v.ID,
		Type:                  v.Type.Number(),
		TypeName:              v.Type,
		MerchantID:            v.MerchantID,
		State:                 v.State,
		StateName:             v.State.String(),
		ErrorCode:             optString(v.ErrorCode),
		Amount:                optAmount(v.Amount),
		CurrencyID:            optString(v.CurrencyID),
		CountryID:             p.CountryID,
		Locale:                optString(p.Locale),
		MerchantReference:     optString(p.MerchantReference),
		CustomerID:            optString(v.CustomerID),
		TransactionID:         optString(v.TransactionID),
		Bank:                  v.Bank,
		BankAccount:           bankAccountOf(v.BankAccount),
		ApprovalRequired:      p.ApprovalRequired,
		Approval:              optString(string(v.Approval)),
		Created:               unixTime(v.Created),
		Completed:             optTime(v.Completed),
		Expires:               unixTime(v.Expires),
		LastRequest:           optTime(v.LastRequest),
		IP:                    optString(v.IP),
		UserAgent:             optString(v.UserAgent),
		Role:                  p.Role,
		CurrentStep:           v.Step,
		TotalSteps:            v.TotalSteps(),
		Version:               v.Version,
		Callbacks:             p.Callbacks,
		Verifications:         p.Verifications,
		ViewState:             v.ViewState(now, s.cfg.SessionWarning),
		CustomerFirstname:     optString(p.CustomerFirstname),
		CustomerLastname:      optString(p.CustomerLastname),
		CustomerEmail:         optString(p.CustomerEmail),
		CustomerDOB:           optString(p.CustomerDOB),
		CustomerStreetAddress: optString(p.CustomerStreetAddress),
		CustomerZip:           optString(p.CustomerZip),
		CustomerCity:          optString(p.CustomerCity),
		CustomerAddress:       p.CustomerAddress,
		SSN:                   optString(p.SSN),
		BrandName:             optString(p.BrandName),
		RedirectURI:           optString(p.RedirectURI),
		DeeplinkRedirect:      optString(p.DeeplinkRedirect),
		ClosedLoop:            p.ClosedLoop,
		Hint:                  p.Hint,
		StatementReference:    optString(p.StatementReference),
		RequestedStartDate:    optString(p.RequestedStartDate),
		CustomerReference:     optString(p.CustomerReference),
		Metadata:              p.Metadata,
		BankIntegrationID:     optString(v.BankIntegration),
	}
	if v.Reference != 0 {
		o.Reference = &v.Reference
	}
	if v.Bank != nil {
		o.BankID = &v.Bank.ID
	}
	if o.Metadata == nil {
		o.Metadata = json.RawMessage("null")
	}
	if v.BankAccount != nil {
		o.BankAccountID = &v.BankAccount.ID
	}
	if o.Callbacks == nil {
		o.Callbacks = []session.Callback{}
	}
	if o.Verifications == nil {
		o.Verifications = json.RawMessage("[]")
	}
	return o
}

// stateOf is the answer of session.state and of the calls that move a
// session: {id, state, state_name, transaction_id, error_code, version},
// encoded by hand as encoding/json would encode it (the answer of every
// write, it is worth no reflection).
func stateOf(v *session.Session) preEncoded {
	b := make([]byte, 0, 160)
	b = append(b, `{"id":`...)
	b = appendString(b, v.ID)
	b = append(b, `,"state":`...)
	b = strconv.AppendInt(b, int64(v.State), 10)
	b = append(b, `,"state_name":`...)
	b = appendString(b, v.State.String())
	b = append(b, `,"transaction_id":`...)
	b = appendOptString(b, v.TransactionID)
	b = append(b, `,"error_code":`...)
	b = appendOptString(b, v.ErrorCode)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, int64(v.Version), 10)
	return append(b, '}')
}

// appendString appends s as a JSON string, escaped exactly as
// encoding/json escapes it.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendOptString appends s as a JSON string, or null for "".
func appendOptString(b []byte, s string) []byte {
	if s == "" {
		return append(b, "null"...)
	}
	return appendString(b, s)
}

// clientObject is what the end user may see of a session (client.get).
type clientObject struct {
	ID          string          `json:"id"`
	Type        int             `json:"type"`
	TypeName    session.Type    `json:"type_name"`
	State       session.State   `json:"state"`
	StateName   string          `json:"state_name"`
	Amount      *session.Amount `json:"amount"`
	CurrencyID  *string         `json:"currency_id"`
	CountryID   string          `json:"country_id"`
	Locale      *string         `json:"locale"`
	BrandName   *string         `json:"brand_name"`
	CurrentStep int             `json:"current_step"`
	TotalSteps  int             `json:"total_steps"`
	Expires     unixTime        `json:"expires"`
	ViewState   json.RawMessage `json:"view_state"`
	// Beyond API.md's list, for the hosted page: the version to move
	// from, and why a final session ended.
	Version   int     `json:"version"`
	ErrorCode *string `json:"error_code"`
	// The merchant's name, which the page shows as the payee when the
	// session has no brand_name, and when the session completed.
	MerchantName string    `json:"merchant_name"`
	Completed    *unixTime `json:"completed"`
	// For the receipt: the session's short reference, and the message
	// of its transaction, once it has one.
	Reference *int64  `json:"reference"`
	Message   *string `json:"message"`
}

func (s *Server) clientObject(v *session.Session, now time.Time) *clientObject {
	o := &clientObject{
		ID:          v.ID,
		Type:        v.Type.Number(),
		TypeName:    v.Type,
		State:       v.State,
		StateName:   v.State.String(),
		Amount:      optAmount(v.Amount),
		CurrencyID:  optString(v.CurrencyID),
		CountryID:   v.Params.CountryID,
		Locale:      optString(v.Params.Locale),
		BrandName:   optString(v.Params.BrandName),
		CurrentStep: v.Step,
		TotalSteps:  v.TotalSteps(),
		Expires:     unixTime(v.Expires),
		ViewState:   v.ViewState(now, s.cfg.SessionWarning),
		Version:     v.Version,
		ErrorCode:   optString(v.ErrorCode),
		Completed:   optTime(v.Completed),
	}
	if v.Reference != 0 {
		o.Reference = &v.Reference
	}
	return o
}

// transactionObject is a transaction on the wire (API.md section 5).
type transactionObject struct {
	ID                    string                   `json:"id"`
	Type                  int                      `json:"type"`
	TypeName              string                   `json:"type_name"`
	State                 session.TransactionState `json:"state"`
	StateName             string                   `json:"state_name"`
	Amount                session.Amount           `json:"amount"`
	CurrencyID            string                   `json:"currency_id"`
	CountryID             string                   `json:"country_id"`
	SessionID             *string                  `json:"session_id"`
	MerchantReference     *string                  `json:"merchant_reference"`
	CustomerID            *string                  `json:"customer_id"`
	BankAccountID         *string                  `json:"bank_account_id"`
	FromBankAccountID     *string                  `json:"from_bank_account_id"`
	ToBankAccountID       *string                  `json:"to_bank_account_id"`
	FromBankAccount       *accountRefObject        `json:"from_bank_account"`
	ToBankAccount         *accountRefObject        `json:"to_bank_account"`
	Message               *string                  `json:"message"`
	OriginalTransactionID *string                  `json:"original_transaction_id"`
	Created               unixTime                 `json:"created"`
	Approved              *unixTime                `json:"approved"`
	Completed             *unixTime                `json:"completed"`
	Settled               *unixTime                `json:"settled"`
	ErrorCode             *string                  `json:"error_code"`
	ETA                   *unixTime                `json:"eta"`
}

func transactionOf(t *session.Transaction) *transactionObject {
	return &transactionObject{
		ID:                    t.ID,
		Type:                  session.TransactionTypeNumber(t.Type),
		TypeName:              t.Type,
		State:                 t.State,
		StateName:             t.State.String(),
		Amount:                t.Amount,
		CurrencyID:            t.CurrencyID,
		CountryID:             t.CountryID,
		SessionID:             optString(t.SessionID),
		MerchantReference:     optString(t.MerchantReference),
		CustomerID:            optString(t.CustomerID),
		BankAccountID:         optString(t.BankAccountID),
		FromBankAccountID:     optString(t.FromBankAccountID),
		ToBankAccountID:       optString(t.ToBankAccountID),
		FromBankAccount:       accountRefOf(t.FromBankAccount),
		ToBankAccount:         accountRefOf(t.ToBankAccount),
		Message:               optString(t.Message),
		OriginalTransactionID: optString(t.OriginalTransactionID),
		Created:               unixTime(t.Created),
		Approved:              optTime(t.Approved),
		Completed:             optTime(t.Completed),
		Settled:               optTime(t.Settled),
		ErrorCode:             optString(t.ErrorCode),
		ETA:                   optTime(t.ETA),
	}
}

// accountRefObject is one side of a transaction on the wire; what is not
// known (the bank of an account picked without a bank) is null.
type accountRefObject struct {
	BankName  *string `json:"bank_name"`
	CountryID string  `json:"country_id"`
	IBAN      *string `json:"iban"`
}

func accountRefOf(a *session.AccountRef) *accountRefObject {
	if a == nil {
		return nil
	}
	return &accountRefObject{BankName: optString(a.BankName), CountryID: a.CountryID, IBAN: optString(a.IBAN)}
}

// deliveryObject is a callback delivery on the wire (API.md section 6).
type deliveryObject struct {
	WebhookID        string                    `json:"webhook_id"`
	URL              string                    `json:"url"`
	SessionState     *session.State            `json:"session_state,omitempty"`
	TransactionState *session.TransactionState `json:"transaction_state,omitempty"`
	Status           session.DeliveryStatus    `json:"status"`
	Attempts         int                       `json:"attempts"`
	LastStatusCode   *int                      `json:"last_status_code"`
	LastError        *string                   `json:"last_error"`
	NextAttempt      *unixTime                 `json:"next_attempt"`
	Created          unixTime                  `json:"created"`
}

func deliveryOf(d *session.Delivery) *deliveryObject {
	o := &deliveryObject{
		WebhookID:        d.WebhookID,
		URL:              d.URL,
		SessionState:     d.SessionState,
		TransactionState: d.TransactionState,
		Status:           d.Status,
		Attempts:         d.Attempts,
		LastError:        optString(d.LastError),
		NextAttempt:      optTime(d.NextAttempt),
		Created:          unixTime(d.Created),
	}
	if d.LastStatusCode != 0 {
		o.LastStatusCode = &d.LastStatusCode
	}
	if d.Status != session.DeliveryPending {
		o.NextAttempt = nil
	}
	return o
}
