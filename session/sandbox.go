package session

import (
	"context"
	"sync"
	"time"
)

// sandboxNext returns the sandbox's next move of a session whose merchant
// reference names a scenario (see scenarioOf).
func sandboxNext(s *Session) (State, string, bool) { return scenarioNext(s) }

// SandboxAdvance makes the sandbox's next move of the session with the id,
// if it has one, and returns the session as it then is.
func (s *Service) SandboxAdvance(ctx context.Context, id string) (*Session, error) {
	sess, err := s.store.Session(ctx, id)
	if err != nil {
		return nil, err
	}
	to, errorCode, ok := sandboxNext(sess)
	if !ok {
		return sess, nil
	}
	if to == StateDepositStarted && sess.Approval == ApprovalPending {
		return nil, Errorf(CodeConflict, NameApprovalRequired, "the merchant has not approved the session yet")
	}
	next := sess.clone()
	if to == StateAuthenticationStarted {
		next.Bank = &Bank{ID: "testbank", Name: "Test Bank"}
	}
	if to == StateAuthenticationCompleted && next.CustomerID == "" {
		if next.CustomerID, err = randomString(s.Random, "cust_", 12); err != nil {
			return nil, err
		}
	}
	change, err := s.move(ctx, next, to, errorCode, s.Now())
	if err != nil {
		return nil, err
	}
	if err := s.store.Save(ctx, change); err != nil {
		return nil, err
	}
	return change.Session, nil
}

// txMoves is the sandbox's move table for transactions.
var txMoves = map[TransactionState][]TransactionState{
	TxCreated:   {TxPending, TxAborted, TxFailed},
	TxPending:   {TxCompleted, TxAborted, TxFailed},
	TxCompleted: {TxCredit, TxAborted, TxFailed},
	TxCredit:    {TxSettled},
	TxSettled:   {TxDebit},
}

// CanMoveTransaction reports whether the sandbox may move a transaction
// from one state to another: 0→1→4→5→6, any of 0, 1, 4 to 2 or 3, and 6→7.
func CanMoveTransaction(from, to TransactionState) bool {
	for _, s := range txMoves[from] {
		if s == to {
			return true
		}
	}
	return false
}

// TransactionTransition moves merchant m's transaction by hand, as the
// sandbox's sandbox.transaction_transition does, firing its callbacks.
// Errors: ErrNotFound; CodeInvalid for a bad state or error code;
// CodeConflict (InvalidStateTransition) for a move the table refuses.
func (s *Service) TransactionTransition(ctx context.Context, m *Merchant, id string, to TransactionState, errorCode string) (*Transaction, error) {
	if !to.Valid() {
		return nil, FieldError(NameInvalidState, "state", "state must be a transaction state 0 to 7")
	}
	if errorCode != "" && to != TxAborted && to != TxFailed {
		return nil, FieldError(NameInvalidParams, "error_code", "error_code is only taken with state 2 or 3")
	}
	if len(errorCode) > maxString {
		return nil, FieldError(NameInvalidErrorCode, "error_code", "error_code "+errNotPlainText, maxString)
	}
	tx, err := s.Transaction(ctx, m, id)
	if err != nil {
		return nil, err
	}
	return s.moveTransaction(ctx, tx, to, errorCode)
}

func (s *Service) moveTransaction(ctx context.Context, tx *Transaction, to TransactionState, errorCode string) (*Transaction, error) {
	if !CanMoveTransaction(tx.State, to) {
		return nil, Errorf(CodeConflict, NameInvalidStateTransition, "a transaction cannot move from %s to %s", tx.State, to)
	}
	var sess *Session // nil for a transaction made by API, which has its own callbacks
	if tx.SessionID != "" {
		var err error
		if sess, err = s.store.Session(ctx, tx.SessionID); err != nil {
			return nil, err
		}
	}
	now := s.Now()
	next := *tx
	from := tx.State
	next.State = to
	stampTransaction(&next, to, now)
	if errorCode != "" {
		next.ErrorCode = errorCode
	}
	c := &Change{Transaction: &next, TxFrom: &from, Deliveries: s.transactionDeliveries(sess, &next, now)}
	if err := s.store.Save(ctx, c); err != nil {
		return nil, err
	}
	return &next, nil
}

// sandboxSettle moves a completed transaction on, one step: to credit,
// then settled.
func (s *Service) sandboxSettle(ctx context.Context, id string) error {
	tx, err := s.store.Transaction(ctx, id)
	if err != nil {
		return err
	}
	switch tx.State {
	case TxPending: // withdrawals and refunds; a deposit at 1 was put there by hand
		if tx.Type != TxTypeDeposit {
			_, err = s.moveTransaction(ctx, tx, TxCompleted, "")
		}
	case TxCompleted:
		_, err = s.moveTransaction(ctx, tx, TxCredit, "")
	case TxCredit:
		_, err = s.moveTransaction(ctx, tx, TxSettled, "")
	}
	return err
}

// Sandbox drives sessions and transactions by themselves, as Brite's
// sandbox does: sessions whose merchant reference is "completed",
// "aborted" or "failed" move one state per Delay to that outcome, and
// completed transactions go on to credit and settled. Its schedule is in
// memory: after a restart, sessions it was driving stay where they are.
// Create it with NewSandbox; call Close when finished.
type Sandbox struct {
	svc     *Service
	delay   time.Duration
	onError func(error)

	mu     sync.Mutex
	timers map[*time.Timer]struct{}
	closed bool
	wg     sync.WaitGroup
}

// NewSandbox returns a Sandbox that moves things every delay and reports
// failed moves to onError.
func NewSandbox(svc *Service, delay time.Duration, onError func(error)) *Sandbox {
	return &Sandbox{svc: svc, delay: delay, onError: onError, timers: map[*time.Timer]struct{}{}}
}

// Observe schedules the next sandbox step after a committed change. It
// never blocks, so it can be called from the store's commit hook.
func (sb *Sandbox) Observe(c *Change) {
	if c.Session != nil {
		if _, _, ok := sandboxNext(c.Session); ok {
			id := c.Session.ID
			sb.after(func(ctx context.Context) error {
				_, err := sb.svc.SandboxAdvance(ctx, id)
				if ErrorName(err) == NameApprovalRequired {
					return nil // waits for session.approve, whose change schedules it again
				}
				return err
			})
		}
	}
	if t := c.Transaction; t != nil && (t.State == TxCompleted || t.State == TxCredit || t.State == TxPending && t.Type != TxTypeDeposit) {
		id := t.ID
		sb.after(func(ctx context.Context) error { return sb.svc.sandboxSettle(ctx, id) })
	}
}

func (sb *Sandbox) after(step func(context.Context) error) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if sb.closed {
		return
	}
	sb.wg.Add(1)
	var t *time.Timer
	t = time.AfterFunc(sb.delay, func() {
		defer sb.wg.Done()
		sb.mu.Lock()
		delete(sb.timers, t)
		sb.mu.Unlock()
		// A conflict means the session or transaction moved meanwhile;
		// that move scheduled what comes next, if anything. Not found:
		// sandbox.reset deleted it.
		if err := step(context.Background()); err != nil && ErrorCode(err) != CodeConflict && ErrorCode(err) != CodeNotFound {
			sb.onError(err)
		}
	})
	sb.timers[t] = struct{}{}
}

// Close stops the steps not yet started and waits for those running.
func (sb *Sandbox) Close() {
	sb.mu.Lock()
	sb.closed = true
	for t := range sb.timers {
		if t.Stop() {
			sb.wg.Done()
		}
	}
	sb.timers = nil
	sb.mu.Unlock()
	sb.wg.Wait()
}
