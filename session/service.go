// Package session is the domain of sessiond: payment sessions, their states
// and moves (Brite's numbering and rules), merchants and their tokens, and
// the Service whose methods are the use cases. It uses only the standard
// library and golang.org/x/crypto's argon2 (for merchant secrets); storage sits behind the Store interface it declares, and time
// behind an injected clock.
package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
	"unicode/utf8"
)

// Service runs the use cases of sessiond on a Store. Set its fields before
// the first call; they are not safe to change afterwards.
type Service struct {
	store    Store
	accounts AccountStore // store, if it implements AccountStore
	ids      uuidGen
	refs     refGen
	auth     authCache
	verified verifiedCache
	attempts attemptLimiter
	owner    string   // names this process in the store's claims
	argon2id Argon2id // hashes merchant secrets
	// sweeping serializes ExpireDue, so that a sweep that returns has
	// waited for any sweep under way (sandbox.advance_time relies on it).
	sweeping sync.Mutex
	// merchantMu serializes read-modify-writes of merchants, so that a
	// revocation is never overwritten by a concurrent secret upgrade.
	merchantMu sync.Mutex

	// Now is the clock; tests replace it.
	Now func() time.Time
	// Random is the source of ids and tokens.
	Random io.Reader
	// SessionTTL is how long a session lives after it is created.
	SessionTTL time.Duration
	// TokenTTL is how long an access token lives; refresh tokens live an
	// hour longer.
	TokenTTL time.Duration
	// Sandbox runs the scenarios of magic merchant references that act at
	// create ("approval", "expire").
	Sandbox bool
	// TokenChainTTL is how long refreshes may extend what one
	// merchant.authorize began; after it, the merchant authorizes again
	// with its secret. 0 means no limit.
	TokenChainTTL time.Duration
	// KeyAttempts and AddressAttempts limit failed merchant.authorize
	// attempts per public key and per client address (IPv6: per /64).
	// A zero AttemptLimit means no limit.
	KeyAttempts, AddressAttempts AttemptLimit
	// SecretCost is the cost of new secret hashes; the zero value is
	// DefaultSecretCost.
	SecretCost SecretCost
	// PayoutETA is how long after approval a payout or refund is expected
	// to settle (its eta); 0 means DefaultPayoutETA.
	PayoutETA time.Duration
	// SandboxDelay, if positive, turns the sandbox on: sessions with a
	// magic merchant reference are moved one step per SandboxDelay (see
	// NewSandbox).
	SandboxDelay time.Duration
}

// Defaults of the Service's settings.
const (
	DefaultSessionTTL = 30 * time.Minute
	DefaultTokenTTL   = 6 * time.Hour
	refreshExtra      = time.Hour
	maxByReference    = 100
)

// NewService returns a Service on store with the default settings, which
// hashes merchant secrets with argon2id (golang.org/x/crypto/argon2.IDKey).
func NewService(store Store, argon2id Argon2id) *Service {
	accounts, _ := store.(AccountStore)
	return &Service{
		store:      store,
		argon2id:   argon2id,
		owner:      NewOwner(),
		accounts:   accounts,
		Now:        time.Now,
		Random:     defaultRandom,
		SessionTTL: DefaultSessionTTL,
		TokenTTL:   DefaultTokenTTL,

		TokenChainTTL:   DefaultTokenChainTTL,
		KeyAttempts:     DefaultKeyAttempts,
		AddressAttempts: DefaultAddressAttempts,
	}
}

func (s *Service) newID() (string, [16]byte, error) {
	u, err := s.ids.next(s.Now(), s.Random)
	if err != nil {
		return "", u, fmt.Errorf("session: new id: %w", err)
	}
	return formatUUID(u), u, nil
}

// Create makes a session of type t for merchant m, and returns it with the
// end user's token, which is not stored (only its hash is).
func (s *Service) Create(ctx context.Context, m *Merchant, t Type, p *Params) (*Session, string, error) {
	sess, token, err := s.newSession(m, t, p, s.Now())
	if err != nil {
		return nil, "", err
	}
	if err := s.save(ctx, &Change{Session: sess}); err != nil {
		return nil, "", err
	}
	if err := s.sandboxCreated(ctx, sess); err != nil {
		return nil, "", err
	}
	return sess, token, nil
}

// newSession validates p and returns a new session created at now, with
// its token.
func (s *Service) newSession(m *Merchant, t Type, p *Params, now time.Time) (*Session, string, error) {
	if !t.Valid() {
		return nil, "", FieldError(NameInvalidParams, "type", "type must be one of 0 to 6 or deposit recurring_payment withdrawal bank_account_selection authentication swish_payment ideal_payment")
	}
	amount, currency, err := p.validate(t, now)
	if err != nil {
		return nil, "", err
	}
	id, raw, err := s.newID()
	if err != nil {
		return nil, "", err
	}
	token, err := newSessionToken(raw, s.Random)
	if err != nil {
		return nil, "", fmt.Errorf("session: new token: %w", err)
	}
	if p.Role == "" {
		p.Role = defaultRole
	}
	sess := &Session{
		ID:         id,
		Type:       t,
		MerchantID: m.ID,
		Reference:  s.refs.next(now),
		TokenHash:  hashToken(token),
		State:      StateCreated,
		Amount:     amount,
		CurrencyID: currency,
		CustomerID: p.CustomerID,
		Created:    now,
		Expires:    now.Add(s.SessionTTL),
		Version:    1,
		Params:     *p,
	}
	if sess.CustomerID == "" && p.ClosedLoop != nil {
		sess.CustomerID = p.ClosedLoop.CustomerID
	}
	if p.ApprovalRequired {
		sess.Approval = ApprovalPending
	}
	if b, ok := BankOf(p.CountryID, p.BankID); ok {
		sess.Bank, sess.BankIntegration = &Bank{ID: b.ID, Name: b.Name}, b.IntegrationID
	}
	s.sandboxCreate(sess)
	return sess, token, nil
}

// Seed stores n deposit sessions of merchant m with merchant references
// prefix0 … prefix<n-1>, batch at a time in one transaction each, for
// load and scale tests. The first due of them were created a session TTL
// and a minute ago, so the first expiry sweep finds exactly those due.
// progress, if set, is told how many are stored after each batch.
func (s *Service) Seed(ctx context.Context, m *Merchant, n, due, batch int, prefix string, progress func(int)) error {
	amount := Decimal("10.00")
	now := s.Now()
	changes := make([]*Change, 0, batch)
	for i := range n {
		created := now
		if i < due {
			created = now.Add(-s.SessionTTL - time.Minute)
		}
		p := Params{Amount: &amount, CountryID: "se", MerchantReference: fmt.Sprintf("%s%d", prefix, i)}
		sess, _, err := s.newSession(m, TypeDeposit, &p, created)
		if err != nil {
			return err
		}
		changes = append(changes, &Change{Session: sess})
		if len(changes) == batch || i == n-1 {
			for _, err := range s.store.SaveBatch(ctx, changes) {
				if err != nil {
					return err
				}
			}
			if progress != nil {
				progress(i + 1)
			}
			changes = changes[:0]
		}
	}
	return nil
}

// Get returns merchant m's session with the id; ErrNotFound for another
// merchant's.
func (s *Service) Get(ctx context.Context, m *Merchant, id string) (*Session, error) {
	sess, err := s.store.Session(ctx, id)
	if err != nil {
		return nil, err
	}
	if sess.MerchantID != m.ID {
		return nil, ErrNotFound
	}
	return sess, nil
}

// ByToken returns merchant m's session with the end-user token.
func (s *Service) ByToken(ctx context.Context, m *Merchant, token string) (*Session, error) {
	sess, err := s.SessionOfToken(ctx, token)
	if err != nil {
		return nil, err
	}
	if sess.MerchantID != m.ID {
		return nil, ErrNotFound
	}
	return sess, nil
}

// ByReference returns merchant m's sessions with the merchant reference,
// newest first, at most 100.
func (s *Service) ByReference(ctx context.Context, m *Merchant, ref string) ([]*Session, error) {
	if ref == "" {
		return nil, FieldError(NameMissingParameter, "merchant_reference", "merchant_reference is required")
	}
	return s.store.SessionsByReference(ctx, m.ID, ref, maxByReference)
}

// SessionOfToken returns the session of an end-user token, without
// recording the request; ErrNotFound for an unknown or malformed token.
func (s *Service) SessionOfToken(ctx context.Context, token string) (*Session, error) {
	return s.sessionOfToken(ctx, token, s.store.Session)
}

func (s *Service) sessionOfToken(ctx context.Context, token string, read func(context.Context, string) (*Session, error)) (*Session, error) {
	id, ok := sessionIDOfToken(token)
	if !ok {
		return nil, ErrNotFound
	}
	sess, err := read(ctx, id)
	if err != nil {
		return nil, err
	}
	if !equalHash(sess.TokenHash, hashToken(token)) {
		return nil, ErrNotFound
	}
	return sess, nil
}

// Transaction returns merchant m's transaction with the id.
func (s *Service) Transaction(ctx context.Context, m *Merchant, id string) (*Transaction, error) {
	tx, err := s.store.Transaction(ctx, id)
	if err != nil {
		return nil, err
	}
	if tx.MerchantID != m.ID {
		return nil, ErrNotFound
	}
	return tx, nil
}

// Deliveries returns the callback deliveries of merchant m's session.
func (s *Service) Deliveries(ctx context.Context, m *Merchant, id string) ([]*Delivery, error) {
	if _, err := s.Get(ctx, m, id); err != nil {
		return nil, err
	}
	return s.store.SessionDeliveries(ctx, id)
}

// ClientGet returns the session of the end user's token and records the
// request on it.
func (s *Service) ClientGet(ctx context.Context, token string, c Client) (*Session, error) {
	sess, err := s.SessionOfToken(ctx, token)
	if err != nil {
		return nil, err
	}
	now := s.Now()
	if err := s.store.Touch(ctx, sess.ID, now, c); err != nil {
		return nil, err
	}
	sess.LastRequest, sess.IP, sess.UserAgent = now, c.IP, c.UserAgent
	return sess, nil
}

// Move is an end user's request to move a session.
type Move struct {
	State       State
	Version     *int   // if set, the session must be at this version
	ErrorCode   string // required to StateAborted
	CustomerID  string // to StateAuthenticationCompleted
	Bank        *Bank  // to StateAuthenticationStarted
	BankAccount *BankAccount
}

// ClientTransition moves the session of the end user's token as asked.
// Errors: ErrNotFound for an unknown token; CodeInvalid for a bad move
// request; CodeConflict (InvalidStateTransition, VersionConflict,
// SessionExpired, ApprovalRequired) when the session's state refuses it.
//
// On a store that can read early (EarlyReader), the move is first decided
// on the session read so, and decided again on a read made with Session
// if it is refused for any reason: its save is refused unless the session
// is still at the version read, so an early read that was behind never
// moves a session, and never refuses a move that Session's read allows.
func (s *Service) ClientTransition(ctx context.Context, token string, mv Move, c Client) (*Session, error) {
	if er, ok := s.store.(EarlyReader); ok {
		wasEarly := false
		read := func(ctx context.Context, id string) (*Session, error) {
			sess, early, err := er.SessionEarly(ctx, id)
			wasEarly = early
			return sess, err
		}
		sess, err := s.clientTransition(ctx, token, mv, c, read)
		var refused *Error
		if !wasEarly || !errors.As(err, &refused) {
			return sess, err
		}
	}
	return s.clientTransition(ctx, token, mv, c, s.store.Session)
}

func (s *Service) clientTransition(ctx context.Context, token string, mv Move, c Client, read func(context.Context, string) (*Session, error)) (*Session, error) {
	sess, err := s.sessionOfToken(ctx, token, read)
	if err != nil {
		return nil, err
	}
	if err := mv.validate(); err != nil {
		return nil, err
	}
	now := s.Now()
	if !sess.State.Final() && !now.Before(sess.Expires) {
		// A conflict here means the sweep (or another request) got to the
		// session first; it is past its deadline either way.
		if _, err := s.expire(ctx, sess, now); err != nil && ErrorCode(err) != CodeConflict {
			return nil, err
		}
		return nil, Errorf(CodeConflict, NameSessionExpired, "the session expired at %s", sess.Expires.UTC().Format(time.RFC3339))
	}
	if mv.Version != nil && *mv.Version != sess.Version {
		return nil, ErrVersionConflict
	}
	if !sess.Type.CanMove(sess.State, mv.State) {
		return nil, Errorf(CodeConflict, NameInvalidStateTransition, "a %s session cannot move from %s to %s", sess.Type, sess.State, mv.State)
	}
	if mv.State == StateDepositStarted && sess.Approval == ApprovalPending {
		return nil, Errorf(CodeConflict, NameApprovalRequired, "the merchant has not approved the session yet")
	}
	next := sess.clone()
	next.LastRequest, next.IP, next.UserAgent = now, c.IP, c.UserAgent
	to, errorCode := mv.State, mv.ErrorCode
	switch mv.State {
	case StateAuthenticationStarted:
		if mv.Bank != nil { // else the preselected bank, if any, stays
			next.Bank, next.BankIntegration = mv.Bank, mv.Bank.ID
			if b, ok := BankOf(sess.Params.CountryID, mv.Bank.ID); ok {
				next.BankIntegration = b.IntegrationID
			}
		}
	case StateAuthenticationCompleted:
		customer := mv.CustomerID
		if expected := sess.CustomerID; expected != "" {
			if customer != "" && customer != expected {
				to, errorCode = StateAborted, ErrorCodeNotCustomer
			}
			customer = expected
		}
		if customer == "" {
			if customer, err = randomString(s.Random, "cust_", 12); err != nil {
				return nil, fmt.Errorf("session: new customer id: %w", err)
			}
		}
		next.CustomerID = customer
	case StateBankAccountSelectionCompleted:
		if mv.BankAccount != nil {
			a := *mv.BankAccount
			if a.ID, err = randomString(s.Random, "ba_", 12); err != nil {
				return nil, fmt.Errorf("session: new bank account id: %w", err)
			}
			next.BankAccount = &a
		}
	}
	change, err := s.move(ctx, next, to, errorCode, now)
	if err != nil {
		return nil, err
	}
	if to == StateBankAccountSelectionCompleted && next.BankAccount != nil {
		change.Account = sessionAccountRecord(next, now)
	}
	if err := s.save(ctx, change); err != nil {
		return nil, err
	}
	return change.Session, nil
}

func (mv *Move) validate() error {
	if !mv.State.Valid() {
		return FieldError(NameInvalidState, "state", "state must be a session state 0 to 12")
	}
	only := func(field string, given bool, state State) error {
		if given && mv.State != state {
			return FieldError(NameInvalidParams, field, "%s is only taken with state %d", field, state)
		}
		return nil
	}
	for _, err := range []error{
		only("customer_id", mv.CustomerID != "", StateAuthenticationCompleted),
		only("bank", mv.Bank != nil, StateAuthenticationStarted),
		only("bank_account", mv.BankAccount != nil, StateBankAccountSelectionCompleted),
	} {
		if err != nil {
			return err
		}
	}
	switch {
	case mv.State == StateAborted && mv.ErrorCode == "":
		return FieldError(NameMissingParameter, "error_code", "error_code is required to abort")
	case mv.ErrorCode != "" && mv.State != StateAborted && mv.State != StateFailed:
		return FieldError(NameInvalidParams, "error_code", "error_code is only taken with state 10 or 11")
	case mv.ErrorCode != "" && !ErrorCodes[mv.ErrorCode]:
		return FieldError(NameInvalidErrorCode, "error_code", "unknown error_code %q", mv.ErrorCode)
	}
	for _, f := range []struct{ name, value string }{
		{"customer_id", mv.CustomerID},
		{"bank.id", bank(mv.Bank).ID},
		{"bank.name", bank(mv.Bank).Name},
		{"bank_account.holder", account(mv.BankAccount).Holder},
		{"bank_account.iban", account(mv.BankAccount).IBAN},
		{"bank_account.bban", account(mv.BankAccount).BBAN},
	} {
		if utf8.RuneCountInString(f.value) > maxString {
			return FieldError(NameInvalidParams, f.name, f.name+" "+errNotPlainText, maxString)
		}
	}
	return nil
}

func bank(b *Bank) Bank {
	if b == nil {
		return Bank{}
	}
	return *b
}

func account(a *BankAccount) BankAccount {
	if a == nil {
		return BankAccount{}
	}
	return *a
}

// move returns the change that takes next (a clone of the stored session)
// to state `to`: the new version and step, the transaction it creates or
// moves, and the callbacks it fires.
func (s *Service) move(ctx context.Context, next *Session, to State, errorCode string, now time.Time) (*Change, error) {
	next.State = to
	next.Version++
	if n, ok := next.Type.step(to); ok && n > next.Step {
		next.Step = n
	}
	if to.Final() {
		next.Completed = now
		next.ErrorCode = errorCode
	}
	c := &Change{Session: next, Moved: true}
	c.Deliveries = s.sessionDeliveries(next, now)

	var tx *Transaction
	switch {
	case to == StateDepositStarted && next.Type.isPayment():
		t, err := s.newTransaction(next, TxTypeDeposit, now)
		if err != nil {
			return nil, err
		}
		tx = t
	case to == StateCompleted && next.Type == TypeWithdrawal:
		// A withdrawal starts at 0 and moves to 1 at once, as a payout
		// made by API does; the callbacks of both states fire.
		t, err := s.newTransaction(next, TxTypeWithdrawal, now)
		if err != nil {
			return nil, err
		}
		t.CustomerID = next.CustomerID
		c.Deliveries = append(c.Deliveries, s.transactionDeliveries(next, t, now)...)
		s.approveTransaction(t, now)
		tx = t
	case to.Final() && next.TransactionID != "":
		stored, err := s.store.Transaction(ctx, next.TransactionID)
		if err != nil {
			return nil, fmt.Errorf("session: transaction of session %s: %w", next.ID, err)
		}
		txTo := map[State]TransactionState{StateCompleted: TxCompleted, StateAborted: TxAborted, StateFailed: TxFailed}[to]
		// The transaction follows its session only while it is created or
		// pending: one moved on by hand (sandbox) stays where it was
		// moved. The store checks it is still in the state read.
		if stored.State == TxCreated || stored.State == TxPending {
			t := *stored
			t.State, t.Completed = txTo, now
			if txTo != TxCompleted {
				t.ErrorCode = errorCode
			}
			from := stored.State
			c.TxFrom = &from
			tx = &t
		}
	}
	if tx != nil {
		tx.CustomerID = next.CustomerID
		if next.BankAccount != nil {
			tx.BankAccountID = next.BankAccount.ID
		}
		c.Transaction = tx
		c.Deliveries = append(c.Deliveries, s.transactionDeliveries(next, tx, now)...)
	}
	return c, nil
}

func (s *Service) newTransaction(sess *Session, kind string, now time.Time) (*Transaction, error) {
	id, _, err := s.newID()
	if err != nil {
		return nil, err
	}
	sess.TransactionID = id
	t := &Transaction{
		ID:                id,
		Type:              kind,
		State:             TxCreated,
		Amount:            sess.Amount,
		CurrencyID:        sess.CurrencyID,
		CountryID:         sess.Params.CountryID,
		SessionID:         sess.ID,
		MerchantID:        sess.MerchantID,
		MerchantReference: sess.Params.MerchantReference,
		Message:           sess.Params.StatementReference,
		Created:           now,
	}
	if t.Message == "" {
		if t.Message, err = newMessage(s.Random); err != nil {
			return nil, fmt.Errorf("session: new statement message: %w", err)
		}
	}
	user, merchant := sessionAccount(sess), merchantAccount(t.CountryID)
	userID := ""
	if sess.BankAccount != nil {
		userID = sess.BankAccount.ID
	}
	if kind == TxTypeDeposit {
		t.FromBankAccountID, t.FromBankAccount = userID, user
		t.ToBankAccountID, t.ToBankAccount = MerchantAccountID, merchant
	} else {
		t.FromBankAccountID, t.FromBankAccount = MerchantAccountID, merchant
		t.ToBankAccountID, t.ToBankAccount = userID, user
	}
	return t, nil
}

func (s *Service) sessionDeliveries(sess *Session, now time.Time) []*Delivery {
	var ds []*Delivery
	for _, cb := range sess.Params.Callbacks {
		if cb.SessionState != nil && *cb.SessionState == sess.State {
			st := sess.State
			ds = append(ds, s.newDelivery(sess, cb.URL, now, func(d *Delivery) { d.SessionState = &st }))
		}
	}
	return ds
}

// transactionDeliveries returns the callbacks a transaction's change
// fires: its session's, or for a transaction made by API (sess nil) its
// own.
func (s *Service) transactionDeliveries(sess *Session, tx *Transaction, now time.Time) []*Delivery {
	var ds []*Delivery
	cbs := tx.Callbacks
	if sess != nil {
		cbs = sess.Params.Callbacks
	} else {
		sess = &Session{MerchantID: tx.MerchantID}
	}
	for _, cb := range cbs {
		if cb.TransactionState != nil && *cb.TransactionState == tx.State {
			st := tx.State
			ds = append(ds, s.newDelivery(sess, cb.URL, now, func(d *Delivery) {
				d.TransactionID, d.TransactionState = tx.ID, &st
			}))
		}
	}
	return ds
}

func (s *Service) newDelivery(sess *Session, url string, now time.Time, set func(*Delivery)) *Delivery {
	u, err := s.ids.next(now, s.Random)
	if err != nil {
		// crypto/rand does not fail on supported platforms; a delivery
		// must never be dropped for want of an id.
		panic(fmt.Sprintf("session: new webhook id: %v", err))
	}
	d := &Delivery{
		WebhookID:   "msg_" + formatUUID(u),
		MerchantID:  sess.MerchantID,
		SessionID:   sess.ID,
		URL:         url,
		Status:      DeliveryPending,
		NextAttempt: now,
		Created:     now,
	}
	set(d)
	return d
}

// Approve records merchant m's approval of an approval_required session.
func (s *Service) Approve(ctx context.Context, m *Merchant, id string) (*Session, error) {
	sess, err := s.Get(ctx, m, id)
	if err != nil {
		return nil, err
	}
	if err := decidable(sess); err != nil {
		return nil, err
	}
	next := sess.clone()
	next.Approval = ApprovalApproved
	next.Version++
	if err := s.save(ctx, &Change{Session: next}); err != nil {
		return nil, err
	}
	return next, nil
}

// Reject aborts merchant m's session with error code merchant_rejected; a
// merchant may reject any session that is not final, approved or not.
func (s *Service) Reject(ctx context.Context, m *Merchant, id string) (*Session, error) {
	sess, err := s.Get(ctx, m, id)
	if err != nil {
		return nil, err
	}
	if sess.State.Final() {
		return nil, Errorf(CodeConflict, NameInvalidStateTransition, "the session is final (%s)", sess.State)
	}
	next := sess.clone()
	if next.Approval != "" {
		next.Approval = ApprovalRejected
	}
	change, err := s.move(ctx, next, StateAborted, ErrorCodeMerchantRejected, s.Now())
	if err != nil {
		return nil, err
	}
	if err := s.save(ctx, change); err != nil {
		return nil, err
	}
	return change.Session, nil
}

func decidable(sess *Session) error {
	switch {
	case sess.Approval == "":
		return Errorf(CodeConflict, NameInvalidStateTransition, "the session was not created with approval_required")
	case sess.Approval != ApprovalPending:
		return Errorf(CodeConflict, NameAlreadyDecided, "the session is already %s", sess.Approval)
	case sess.State.Final():
		return Errorf(CodeConflict, NameInvalidStateTransition, "the session is final (%s)", sess.State)
	}
	return nil
}

// Expire aborts the session with the id with error code expired_session if
// it is past its deadline and not final; it reports whether it did.
func (s *Service) Expire(ctx context.Context, id string) (bool, error) {
	sess, err := s.store.Session(ctx, id)
	if err != nil {
		return false, err
	}
	return s.expire(ctx, sess, s.Now())
}

func (s *Service) expire(ctx context.Context, sess *Session, now time.Time) (bool, error) {
	if sess.State.Final() || now.Before(sess.Expires) {
		return false, nil
	}
	change, err := s.move(ctx, sess.clone(), StateAborted, ErrorCodeExpired, now)
	if err != nil {
		return false, err
	}
	if err := s.save(ctx, change); err != nil {
		return false, err
	}
	return true, nil
}

// expiryLease is how long a sweep holds the sessions it claims.
const expiryLease = time.Minute

// ExpireDue expires up to limit sessions whose deadline has passed and
// returns how many it expired, saving them in one batch. A session that
// changes meanwhile, or that another owner has claimed, is left to the next
// sweep.
func (s *Service) ExpireDue(ctx context.Context, limit int) (int, error) {
	s.sweeping.Lock()
	defer s.sweeping.Unlock()
	now := s.Now()
	due, err := s.store.ClaimDue(ctx, s.owner, now, expiryLease, limit)
	if err != nil {
		return 0, err
	}
	var firstErr error
	changes := make([]*Change, 0, len(due))
	for _, sess := range due {
		if sess.State.Final() || now.Before(sess.Expires) {
			continue
		}
		c, err := s.move(ctx, sess.clone(), StateAborted, ErrorCodeExpired, now)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		changes = append(changes, c)
	}
	n := 0
	for _, err := range s.saveBatch(ctx, changes) {
		switch {
		case err == nil:
			n++
		case ErrorCode(err) != CodeConflict && firstErr == nil:
			firstErr = err
		}
	}
	return n, firstErr
}

// ViewState returns the session's view_state with session_management
// computed for now: whether the session is active, and the whole seconds
// until it ends and until the warning before its end.
func (s *Session) ViewState(now time.Time, warning time.Duration) json.RawMessage {
	vs := map[string]json.RawMessage{}
	if len(s.Params.ViewState) > 0 {
		_ = json.Unmarshal(s.Params.ViewState, &vs) // validated as an object at create
	}
	secs := func(d time.Duration) int64 {
		if d < 0 {
			return 0
		}
		return int64(d / time.Second)
	}
	left := s.Expires.Sub(now)
	sm, _ := json.Marshal(struct {
		Active  bool  `json:"active"`
		Warning int64 `json:"warning"`
		End     int64 `json:"end"`
	}{s.Active(now), secs(left - warning), secs(left)})
	vs["session_management"] = sm
	b, _ := json.Marshal(vs)
	return b
}

// sweepBatch is how many due sessions one sweep step expires; a sweep
// repeats steps until fewer are due.
const sweepBatch = 500

// RunExpiry expires due sessions (and purges expired tokens) every
// interval until ctx is done, and returns ctx's error. Failures go to
// onError and the next sweep tries again.
func (s *Service) RunExpiry(ctx context.Context, interval time.Duration, onError func(error)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		for {
			n, err := s.ExpireDue(ctx, sweepBatch)
			if err != nil && ctx.Err() == nil {
				onError(err)
			}
			if err != nil || n < sweepBatch {
				break
			}
		}
		if _, err := s.store.PurgeTokens(ctx, s.Now(), sweepBatch); err != nil && ctx.Err() == nil {
			onError(err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
