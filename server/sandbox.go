package server

import (
	"context"
	"time"

	"github.com/sessiond/sessiond/callbacks"
	"github.com/sessiond/sessiond/rpc"
	"github.com/sessiond/sessiond/session"
)

// sandboxControls are the sandbox's test controls over this server's
// clock, callback engine and data.
type sandboxControls struct {
	clock      *session.Clock
	svc        *session.Service
	dispatcher *callbacks.Dispatcher
	sandbox    *session.Sandbox
	faults     *callbacks.Faults
	journal    *callbacks.Journal
	// flushFor bounds how long AdvanceTime waits for the callbacks that
	// fell due.
	flushFor time.Duration
}

var _ rpc.SandboxControls = (*sandboxControls)(nil)

// AdvanceTime moves the clock, then expires the sessions that fell due,
// takes the sandbox steps due and makes one attempt at each callback due,
// before it answers: a caller sees their effects at once.
func (sc *sandboxControls) AdvanceTime(ctx context.Context, d time.Duration) (time.Time, error) {
	now := sc.clock.Advance(d)
	for {
		n, err := sc.svc.ExpireDue(ctx, 500)
		if err != nil {
			return time.Time{}, err
		}
		if n < 500 {
			break
		}
	}
	if err := sc.sandbox.Steps(ctx); err != nil {
		return time.Time{}, err
	}
	flush, cancel := context.WithTimeout(ctx, sc.flushFor)
	defer cancel()
	// A receiver slower than flushFor is left to the running dispatcher.
	if err := sc.dispatcher.Flush(flush); err != nil && flush.Err() == nil {
		return time.Time{}, err
	}
	return now, nil
}

// Reset deletes the merchant's data, disarms its faults and empties its
// journal.
func (sc *sandboxControls) Reset(ctx context.Context, m *session.Merchant) error {
	sc.faults.Forget(m.ID)
	if err := sc.svc.Reset(ctx, m); err != nil {
		return err
	}
	sc.journal.Forget(m.ID)
	return nil
}

func (sc *sandboxControls) FailCallbacks(m *session.Merchant, f session.CallbackFault) error {
	sc.faults.Add(m.ID, f)
	return nil
}

func (sc *sandboxControls) Resend(ctx context.Context, m *session.Merchant, webhookID string) error {
	if _, err := sc.svc.Resend(ctx, m, webhookID); err != nil {
		return err
	}
	sc.dispatcher.Notify()
	return nil
}

func (sc *sandboxControls) Attempts(ctx context.Context, m *session.Merchant, since time.Time, sessionID string) ([]session.Attempt, error) {
	return sc.journal.Attempts(m.ID, since, sessionID), nil
}

// rpcControls returns sc as rpc wants it: nil (not a nil pointer) without
// a sandbox.
func rpcControls(sc *sandboxControls) rpc.SandboxControls {
	if sc == nil {
		return nil
	}
	return sc
}

// Clock returns the server's clock: with Config.Sandbox, what every
// time-driven part reads, and what sandbox.advance_time moves.
func (m *Main) Clock() *session.Clock { return m.clock }
