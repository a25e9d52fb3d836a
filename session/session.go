package session

import (
	"encoding/json"
	"time"
)

// Session is one payment session: what the merchant created it with, where
// the end user has taken it, and its version, which grows by one with every
// change.
type Session struct {
	ID              string       `json:"id"`
	Type            Type         `json:"type"`
	MerchantID      string       `json:"merchant_id"`
	Reference       int64        `json:"reference,omitempty"` // short key, unique per server
	TokenHash       []byte       `json:"token_hash"`
	State           State        `json:"state"`
	ErrorCode       string       `json:"error_code,omitempty"`
	Amount          Amount       `json:"amount,omitempty"`
	CurrencyID      string       `json:"currency_id,omitempty"`
	CustomerID      string       `json:"customer_id,omitempty"`
	TransactionID   string       `json:"transaction_id,omitempty"`
	Bank            *Bank        `json:"bank,omitempty"` // chosen, or preselected with bank_id
	BankIntegration string       `json:"bank_integration_id,omitempty"`
	BankAccount     *BankAccount `json:"bank_account,omitempty"`
	Approval        Approval     `json:"approval,omitempty"`
	Created         time.Time    `json:"created"`
	Expires         time.Time    `json:"expires"`
	Completed       time.Time    `json:"completed,omitzero"`
	LastRequest     time.Time    `json:"last_request,omitzero"`
	IP              string       `json:"ip,omitempty"`
	UserAgent       string       `json:"user_agent,omitempty"`
	Step            int          `json:"step"` // furthest step reached on the type's path
	Version         int          `json:"version"`
	Params          Params       `json:"params"` // the create params, as given
}

// TotalSteps is the number of steps on the session type's happy path.
func (s *Session) TotalSteps() int { return s.Type.TotalSteps() }

// Active reports whether the end user can still move the session at now.
func (s *Session) Active(now time.Time) bool { return !s.State.Final() && now.Before(s.Expires) }

// clone returns a copy of s that can be changed without changing s; the
// params are never changed after create, so they are shared.
func (s *Session) clone() *Session {
	c := *s
	return &c
}

// Approval is the merchant's decision on an approval_required session.
type Approval string

// Approval values; the empty Approval means the session needs none.
const (
	ApprovalPending  Approval = "pending"
	ApprovalApproved Approval = "approved"
	ApprovalRejected Approval = "rejected"
)

// Bank is the bank the end user chose.
type Bank struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// BankAccount is the account the end user picked; the server assigns ID.
type BankAccount struct {
	ID     string `json:"id"`
	Holder string `json:"holder"`
	IBAN   string `json:"iban"`
	BBAN   string `json:"bban"`
}

// Callback asks for a POST to URL whenever the session enters SessionState,
// or its transaction enters TransactionState (exactly one is set).
type Callback struct {
	URL              string            `json:"url"`
	SessionState     *State            `json:"session_state,omitempty"`
	TransactionState *TransactionState `json:"transaction_state,omitempty"`
}

// Address is a postal address.
type Address struct {
	Street     string `json:"street,omitempty"`
	PostalCode string `json:"postal_code,omitempty"`
	City       string `json:"city,omitempty"`
	CountryID  string `json:"country_id,omitempty"`
}

// ClosedLoop ties a session to a known customer and account.
type ClosedLoop struct {
	CustomerID    string `json:"customer_id,omitempty"`
	BankAccountID string `json:"bank_account_id,omitempty"`
	NIN           string `json:"nin,omitempty"`
}

// Hint suggests the customer and account of a withdrawal.
type Hint struct {
	CustomerID    string `json:"customer_id,omitempty"`
	BankAccountID string `json:"bank_account_id,omitempty"`
}

// Params are the create params of a session, kept as given (strings given
// empty count as absent).
type Params struct {
	Amount                *Decimal        `json:"amount,omitempty"`
	CountryID             string          `json:"country_id,omitempty"`
	CurrencyID            string          `json:"currency_id,omitempty"`
	MerchantReference     string          `json:"merchant_reference,omitempty"`
	CustomerID            string          `json:"customer_id,omitempty"`
	CustomerFirstname     string          `json:"customer_firstname,omitempty"`
	CustomerLastname      string          `json:"customer_lastname,omitempty"`
	CustomerEmail         string          `json:"customer_email,omitempty"`
	CustomerDOB           string          `json:"customer_dob,omitempty"`
	CustomerStreetAddress string          `json:"customer_street_address,omitempty"`
	CustomerZip           string          `json:"customer_zip,omitempty"`
	CustomerCity          string          `json:"customer_city,omitempty"`
	CustomerAddress       *Address        `json:"customer_address,omitempty"`
	SSN                   string          `json:"ssn,omitempty"`
	Locale                string          `json:"locale,omitempty"`
	BrandName             string          `json:"brand_name,omitempty"`
	RedirectURI           string          `json:"redirect_uri,omitempty"`
	DeeplinkRedirect      string          `json:"deeplink_redirect,omitempty"`
	ApprovalRequired      bool            `json:"approval_required,omitempty"`
	ClosedLoop            *ClosedLoop     `json:"closed_loop,omitempty"`
	Hint                  *Hint           `json:"hint,omitempty"`
	StatementReference    string          `json:"statement_reference,omitempty"`
	RequestedStartDate    string          `json:"requested_start_date,omitempty"`
	Callbacks             []Callback      `json:"callbacks,omitempty"`
	Role                  string          `json:"role,omitempty"`
	Verifications         json.RawMessage `json:"verifications,omitempty"`
	ViewState             json.RawMessage `json:"view_state,omitempty"`
	BankID                string          `json:"bank_id,omitempty"`
	CustomerReference     string          `json:"customer_reference,omitempty"`
	Metadata              json.RawMessage `json:"metadata,omitempty"`
}

// Transaction kinds, stored by name; on the wire they are numbers
// (TransactionTypeNumber). Brite does not publish its numbering; this one
// is sessiond's.
const (
	TxTypeDeposit    = "deposit"
	TxTypeWithdrawal = "withdrawal"
	TxTypeRefund     = "refund"
)

// TransactionTypes lists the transaction kinds; a kind's index is its
// number on the wire. Never renumber: append.
var TransactionTypes = []string{TxTypeDeposit, TxTypeWithdrawal, TxTypeRefund}

// TransactionTypeNumber returns the wire number of a transaction kind, or
// -1 for an unknown one.
func TransactionTypeNumber(kind string) int {
	for i, k := range TransactionTypes {
		if k == kind {
			return i
		}
	}
	return -1
}

// AccountRef names one side of a transaction as Brite shows it: the bank,
// the country and the IBAN of the account.
type AccountRef struct {
	BankName  string `json:"bank_name"`
	CountryID string `json:"country_id"`
	IBAN      string `json:"iban"`
}

// Transaction is a money movement: a session's deposit or withdrawal, or
// a payout or refund the merchant asked for by API (those have no session
// and carry their own callbacks).
type Transaction struct {
	ID                    string           `json:"id"`
	Type                  string           `json:"type"` // TxTypeDeposit, TxTypeWithdrawal or TxTypeRefund
	State                 TransactionState `json:"state"`
	Amount                Amount           `json:"amount"`
	CurrencyID            string           `json:"currency_id"`
	CountryID             string           `json:"country_id"`
	SessionID             string           `json:"session_id,omitempty"`
	MerchantID            string           `json:"merchant_id"`
	MerchantReference     string           `json:"merchant_reference,omitempty"`
	CustomerID            string           `json:"customer_id,omitempty"`
	BankAccountID         string           `json:"bank_account_id,omitempty"`
	FromBankAccountID     string           `json:"from_bank_account_id,omitempty"`
	ToBankAccountID       string           `json:"to_bank_account_id,omitempty"`
	FromBankAccount       *AccountRef      `json:"from_bank_account,omitempty"`
	ToBankAccount         *AccountRef      `json:"to_bank_account,omitempty"`
	Message               string           `json:"message,omitempty"`
	OriginalTransactionID string           `json:"original_transaction_id,omitempty"`
	ApprovalRequired      bool             `json:"approval_required,omitempty"`
	Callbacks             []Callback       `json:"callbacks,omitempty"` // API-created only; a session's are on the session
	Created               time.Time        `json:"created"`
	Approved              time.Time        `json:"approved,omitzero"`
	Completed             time.Time        `json:"completed,omitzero"`
	Settled               time.Time        `json:"settled,omitzero"`
	ETA                   time.Time        `json:"eta,omitzero"`
	ErrorCode             string           `json:"error_code,omitempty"`
}

// DeliveryStatus is where a callback delivery stands.
type DeliveryStatus string

// Delivery statuses. Only DeliveryPending is ever attempted again.
const (
	DeliveryPending   DeliveryStatus = "pending"
	DeliveryDelivered DeliveryStatus = "delivered"
	DeliveryFailed    DeliveryStatus = "failed"
	DeliveryGone      DeliveryStatus = "gone"
	DeliveryBlocked   DeliveryStatus = "blocked"
)

// Delivery is one callback to send: recorded with the change that causes
// it, then attempted until it is delivered or given up.
type Delivery struct {
	WebhookID        string            `json:"webhook_id"`
	MerchantID       string            `json:"merchant_id"`
	SessionID        string            `json:"session_id"`
	TransactionID    string            `json:"transaction_id,omitempty"`
	URL              string            `json:"url"`
	SessionState     *State            `json:"session_state,omitempty"`
	TransactionState *TransactionState `json:"transaction_state,omitempty"`
	Status           DeliveryStatus    `json:"status"`
	Attempts         int               `json:"attempts"`
	LastStatusCode   int               `json:"last_status_code,omitempty"`
	LastError        string            `json:"last_error,omitempty"`
	NextAttempt      time.Time         `json:"next_attempt,omitzero"`
	FirstAttempt     time.Time         `json:"first_attempt,omitzero"` // retries are offsets from it
	Created          time.Time         `json:"created"`
}

// Body is the callback's JSON body, in Brite's shape.
func (d *Delivery) Body() []byte {
	var v any
	if d.TransactionState != nil {
		v = struct {
			MerchantID       string           `json:"merchant_id"`
			TransactionID    string           `json:"transaction_id"`
			TransactionState TransactionState `json:"transaction_state"`
		}{d.MerchantID, d.TransactionID, *d.TransactionState}
	} else {
		v = struct {
			MerchantID   string `json:"merchant_id"`
			SessionID    string `json:"session_id"`
			SessionState State  `json:"session_state"`
		}{d.MerchantID, d.SessionID, *d.SessionState}
	}
	b, _ := json.Marshal(v) // cannot fail: strings and ints
	return b
}

// Change is what one use case writes, in one store transaction: the
// session at its new version, the transaction it creates or moves, and the
// callback deliveries the change causes. A change that moves an existing
// transaction names the state it moves it from (TxFrom); one that creates
// a transaction leaves TxFrom nil; a change without a session that leaves
// TxFrom nil creates its transaction (a payout or refund made by API).
type Change struct {
	Session     *Session
	Transaction *Transaction
	TxFrom      *TransactionState // the stored state a moved transaction must still be in
	Deliveries  []*Delivery
	Timers      []Timer  // set (or, with a zero Due, deleted) with the change
	Moved       bool     // the session's state changed
	Account     *Account // a bank account the end user picked, stored with the move
}

// Merchant is an API client. Its secret is kept only as a salted hash
// (SecretKDF names how it was made: argon2id, or "" for the SHA-256 of
// older records); the callback secret is kept as is, since it signs
// callbacks.
type Merchant struct {
	ID             string    `json:"id"`
	Name           string    `json:"name"`
	PublicKey      string    `json:"public_key"`
	SecretSalt     []byte    `json:"secret_salt"`
	SecretHash     []byte    `json:"secret_hash"`
	SecretKDF      string    `json:"secret_kdf,omitempty"`
	CallbackSecret string    `json:"callback_secret"`
	Created        time.Time `json:"created"`
	// TokenGeneration counts revocations: only tokens issued at the
	// current generation are accepted, so adding one revokes every token
	// the merchant holds.
	TokenGeneration uint64 `json:"token_generation,omitempty"`
	// PreviousCallbackSecret still signs callbacks, beside CallbackSecret,
	// until PreviousCallbackUntil: the overlap of a rotation, in which
	// receivers switch to the new secret.
	PreviousCallbackSecret string    `json:"previous_callback_secret,omitempty"`
	PreviousCallbackUntil  time.Time `json:"previous_callback_until,omitempty"`
	// Disabled merchants cannot authorize, and hold no live token.
	Disabled bool `json:"disabled,omitempty"`
	// FrameAncestors are the origins (scheme://host[:port]), beyond the
	// server's own list, that may embed this merchant's hosted pages in a
	// frame; the caller checks their form before it sets them.
	FrameAncestors []string `json:"frame_ancestors,omitempty"`
}

// TokenKind tells access tokens from refresh tokens.
type TokenKind string

// Token kinds.
const (
	TokenAccess  TokenKind = "access"
	TokenRefresh TokenKind = "refresh"
)

// Token is a stored access or refresh token, known only by its hash.
type Token struct {
	Hash       []byte    `json:"hash"`
	Kind       TokenKind `json:"kind"`
	MerchantID string    `json:"merchant_id"`
	Expires    time.Time `json:"expires"`
	Pair       []byte    `json:"pair"` // hash of the token issued with it
	// Generation is the merchant's TokenGeneration when it was issued.
	Generation uint64 `json:"generation,omitempty"`
	// ChainStart is when the merchant.authorize that began this chain of
	// refreshes ran; a refresh past ChainStart + Service.TokenChainTTL is
	// refused.
	ChainStart time.Time `json:"chain_start,omitzero"`
}

// Client describes the end user's request, recorded on the session.
type Client struct {
	IP        string
	UserAgent string
}
