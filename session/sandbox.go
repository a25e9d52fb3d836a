package session

import (
	"context"
	"strings"
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
	if err := s.save(ctx, change); err != nil {
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
	if err := s.save(ctx, c); err != nil {
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

// Keys of the sandbox's timers in the store.
const (
	sandboxSessionKey = "sandbox/session/"
	sandboxTxKey      = "sandbox/transaction/"
)

// sandboxTimers adds to c the sandbox's next step of what c changes, due
// a SandboxDelay after now: the next move of a session whose merchant
// reference names an outcome (or the end of its schedule), and the next
// settlement step of a completed transaction (or of a pending payout or
// refund). The schedule is saved with
// the change that makes it, so a restart resumes it where it was.
func (s *Service) sandboxTimers(c *Change, now time.Time) {
	if s.SandboxDelay <= 0 {
		return
	}
	due := now.Add(s.SandboxDelay)
	if sess := c.Session; sess != nil {
		if _, magic := scenarioOf(sess.Params.MerchantReference); magic {
			t := Timer{Key: sandboxSessionKey + sess.ID}
			if _, _, ok := sandboxNext(sess); ok {
				t.Due = due
			}
			c.Timers = append(c.Timers, t)
		}
	}
	if t := c.Transaction; t != nil && (t.State == TxCompleted || t.State == TxCredit || t.State == TxPending && t.Type != TxTypeDeposit) {
		c.Timers = append(c.Timers, Timer{Key: sandboxTxKey + t.ID, Due: due})
	}
}

// save saves c with the timers it schedules.
func (s *Service) save(ctx context.Context, c *Change) error {
	s.sandboxTimers(c, s.Now())
	return s.store.Save(ctx, c)
}

// saveBatch saves cs, each with the timers it schedules.
func (s *Service) saveBatch(ctx context.Context, cs []*Change) []error {
	now := s.Now()
	for _, c := range cs {
		s.sandboxTimers(c, now)
	}
	return s.store.SaveBatch(ctx, cs)
}

// sandboxStep runs the sandbox step a timer names.
func (s *Service) sandboxStep(ctx context.Context, key string) error {
	switch {
	case strings.HasPrefix(key, sandboxSessionKey):
		_, err := s.SandboxAdvance(ctx, strings.TrimPrefix(key, sandboxSessionKey))
		if ErrorName(err) == NameApprovalRequired {
			return nil // waits for session.approve, whose change schedules it again
		}
		return err
	case strings.HasPrefix(key, sandboxTxKey):
		return s.sandboxSettle(ctx, strings.TrimPrefix(key, sandboxTxKey))
	}
	return nil // not the sandbox's
}

// Sandbox drives sessions and transactions by themselves, as Brite's
// sandbox does: sessions whose merchant reference is "completed",
// "aborted" or "failed" move one state per delay to that outcome, and
// completed transactions go on to credit and settled. Its schedule is kept
// in the store as timers saved with each change, so a restart resumes
// every scenario where it was, and the steps are claimed, so two
// processes on one database never take the same step. Create it with
// NewSandbox, run it with Run.
type Sandbox struct {
	svc      *Service
	onError  func(error)
	wake     chan struct{}
	stepping sync.Mutex // one steps at a time
}

// sandboxLease is how long a step is held by the process that claimed it.
const sandboxLease = 30 * time.Second

// NewSandbox turns the sandbox on in svc, one step every delay (set before
// svc's first call), and returns the Sandbox that takes the steps,
// reporting failed ones to onError.
func NewSandbox(svc *Service, delay time.Duration, onError func(error)) *Sandbox {
	svc.SandboxDelay = delay
	return &Sandbox{svc: svc, onError: onError, wake: make(chan struct{}, 1)}
}

// Observe wakes Run for a committed change that schedules a step; it
// never blocks.
func (sb *Sandbox) Observe(c *Change) {
	if len(c.Timers) > 0 {
		select {
		case sb.wake <- struct{}{}:
		default:
		}
	}
}

// Run takes the steps as they fall due until ctx is done: at once, when
// Observe is told of a new step, when the next falls due, and at least
// every second.
func (sb *Sandbox) Run(ctx context.Context) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-sb.wake:
		case <-timer.C:
		}
		next, err := sb.steps(ctx)
		if err != nil && ctx.Err() == nil {
			sb.onError(err)
		}
		wait := time.Second
		if now := sb.svc.Now(); !next.IsZero() && next.Before(now.Add(wait)) {
			wait = max(next.Sub(now), 0)
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
	}
}

// Steps takes every step due now, as Run does, and returns once they and
// any Run had under way are taken (sandbox.advance_time, after moving the
// clock).
func (sb *Sandbox) Steps(ctx context.Context) error {
	_, err := sb.steps(ctx)
	return err
}

// steps takes every step due now and returns when the next is due.
func (sb *Sandbox) steps(ctx context.Context) (time.Time, error) {
	sb.stepping.Lock()
	defer sb.stepping.Unlock()
	for {
		now := sb.svc.Now()
		due, next, err := sb.svc.store.ClaimTimers(ctx, sb.svc.owner, now, sandboxLease, 100)
		if err != nil {
			return time.Time{}, err
		}
		for _, t := range due {
			// A conflict means the session or transaction moved meanwhile;
			// that move scheduled what comes next, if anything. Not found:
			// sandbox.reset deleted it.
			if err := sb.svc.sandboxStep(ctx, t.Key); err != nil && ErrorCode(err) != CodeConflict && ErrorCode(err) != CodeNotFound {
				sb.onError(err)
				continue // claimed until its lease ends, then tried again
			}
			if err := sb.svc.store.DoneTimer(ctx, sb.svc.owner, t); err != nil {
				sb.onError(err)
			}
		}
		if len(due) < 100 {
			return next, nil
		}
	}
}
