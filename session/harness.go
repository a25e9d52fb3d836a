package session

import (
	"context"
	"fmt"
	"time"
)

// ExpireNow expires merchant m's session with the id at once, as the
// sandbox's sandbox.expire does: it moves to 10 with error code
// expired_session, firing its callbacks, whatever its deadline.
// Errors: ErrNotFound; CodeConflict (InvalidStateTransition) for a final
// session, or (VersionConflict) if it moved meanwhile.
func (s *Service) ExpireNow(ctx context.Context, m *Merchant, id string) (*Session, error) {
	sess, err := s.Get(ctx, m, id)
	if err != nil {
		return nil, err
	}
	return s.expireNow(ctx, sess)
}

func (s *Service) expireNow(ctx context.Context, sess *Session) (*Session, error) {
	if sess.State.Final() {
		return nil, Errorf(CodeConflict, NameInvalidStateTransition, "the session is final (%s)", sess.State)
	}
	change, err := s.move(ctx, sess.clone(), StateAborted, ErrorCodeExpired, s.Now())
	if err != nil {
		return nil, err
	}
	if err := s.save(ctx, change); err != nil {
		return nil, err
	}
	return change.Session, nil
}

// CallbackFault makes the next Count callback attempts to URLs starting
// with URLPrefix fail without being sent: with the HTTP Status, or, by
// Kind, as a timeout or a connection reset.
type CallbackFault struct {
	URLPrefix string
	Kind      FaultKind
	Status    int // for FaultStatus
	Count     int
}

// FaultKind is how an injected callback fault fails an attempt.
type FaultKind string

// Fault kinds.
const (
	FaultStatus  FaultKind = "status"  // the receiver answered Status
	FaultTimeout FaultKind = "timeout" // no answer within the callback timeout
	FaultReset   FaultKind = "reset"   // the connection was reset
)

// Attempt is one callback attempt as the sandbox's journal records it: what
// was sent (or, for an injected fault, would have been) and what came of it.
type Attempt struct {
	WebhookID  string
	MerchantID string
	SessionID  string
	URL        string
	Headers    map[string]string
	Body       []byte
	// Outcome is the attempt's result: "delivered", "failed" (retried
	// later or given up), "gone" or "blocked".
	Outcome    string
	StatusCode int    // the receiver's status, 0 if none
	Error      string // why the attempt failed, "" if it did not
	Injected   bool   // failed by a CallbackFault, not sent
	At         time.Time
}

// SandboxStore is what the sandbox's test controls need of a Store beyond
// Store. A store without it serves no sandbox.reset or sandbox.resend.
type SandboxStore interface {
	// ResetMerchant deletes every session, transaction, delivery and
	// bank account of the merchant.
	ResetMerchant(ctx context.Context, merchantID string) error
	// Delivery returns the delivery with the webhook id; ErrNotFound.
	Delivery(ctx context.Context, webhookID string) (*Delivery, error)
	// RequeueDelivery replaces the stored delivery with d's webhook id by
	// d, which is pending; ErrNotFound if there is none.
	RequeueDelivery(ctx context.Context, d *Delivery) error
}

func (s *Service) sandboxStore() (SandboxStore, error) {
	ss, ok := s.store.(SandboxStore)
	if !ok {
		return nil, fmt.Errorf("session: the store %T has no sandbox controls", s.store)
	}
	return ss, nil
}

// Reset deletes merchant m's sessions, transactions, callback deliveries
// and bank accounts; other merchants' data, and m's credentials and
// tokens, stay.
func (s *Service) Reset(ctx context.Context, m *Merchant) error {
	ss, err := s.sandboxStore()
	if err != nil {
		return err
	}
	return ss.ResetMerchant(ctx, m.ID)
}

// Resend queues merchant m's delivery with the webhook id again, whatever
// became of it: pending, due now, with its attempts and retry schedule
// started anew and the same webhook id. ErrNotFound for another
// merchant's.
func (s *Service) Resend(ctx context.Context, m *Merchant, webhookID string) (*Delivery, error) {
	ss, err := s.sandboxStore()
	if err != nil {
		return nil, err
	}
	d, err := ss.Delivery(ctx, webhookID)
	if err != nil {
		return nil, err
	}
	if d.MerchantID != m.ID {
		return nil, ErrNotFound
	}
	d.Status, d.NextAttempt = DeliveryPending, s.Now()
	d.Attempts, d.FirstAttempt = 0, time.Time{}
	d.LastStatusCode, d.LastError = 0, ""
	if err := ss.RequeueDelivery(ctx, d); err != nil {
		return nil, err
	}
	return d, nil
}
