package session

import (
	"context"
	"strings"
)

// A scenario is what a magic merchant reference makes the sandbox do with
// a session: run along its type's path to completion, or one step in and
// then to a final state, or stop at bank account selection until the
// merchant approves.
type scenario struct {
	end       State  // where the session ends
	errorCode string // the error code it ends with, for StateAborted
	approval  bool   // created awaiting approval; waits at 4 until session.approve
	expire    bool   // expired as soon as it is created
}

// scenarioOf returns the scenario a merchant reference names:
//
//	completed             along the type's path to 12
//	approval              along the path to 4, then, once approved, on to 12
//	aborted               to 1, then 10 with psu_abandoned_session
//	aborted:<error_code>  to 1, then 10 with that error code
//	failed                to 1, then 11
//	expire                10 with expired_session as soon as it is created
func scenarioOf(ref string) (scenario, bool) {
	switch ref {
	case "completed":
		return scenario{end: StateCompleted}, true
	case "approval":
		return scenario{end: StateCompleted, approval: true}, true
	case "aborted":
		return scenario{end: StateAborted, errorCode: "psu_abandoned_session"}, true
	case "failed":
		return scenario{end: StateFailed}, true
	case "expire":
		return scenario{end: StateAborted, errorCode: ErrorCodeExpired, expire: true}, true
	}
	if code, ok := strings.CutPrefix(ref, "aborted:"); ok && sandboxErrorCode(code) {
		return scenario{end: StateAborted, errorCode: code}, true
	}
	return scenario{}, false
}

// sandboxErrorCode reports whether a session may end with the code: an end
// user's error code, or one only the server sets.
func sandboxErrorCode(code string) bool {
	return ErrorCodes[code] || code == ErrorCodeExpired || code == ErrorCodeMerchantRejected
}

// scenarioNext returns the sandbox's next move of a session whose merchant
// reference names a scenario, and false if there is none (no scenario, a
// final session, or one waiting for approval or for its expiry at create).
func scenarioNext(s *Session) (State, string, bool) {
	sc, ok := scenarioOf(s.Params.MerchantReference)
	if !ok || s.State.Final() || sc.expire {
		return 0, "", false
	}
	if sc.end != StateCompleted && s.State != StateCreated {
		return sc.end, sc.errorCode, true
	}
	if sc.approval && s.State == StateBankAccountSelectionCompleted && s.Approval != ApprovalApproved {
		return 0, "", false
	}
	path := flows[s.Type].path
	for i, st := range path[:len(path)-1] {
		if st == s.State {
			return path[i+1], "", true
		}
	}
	return 0, "", false
}

// sandboxCreate sets up a new session for its scenario before it is
// stored: "approval" makes it require approval.
func (s *Service) sandboxCreate(sess *Session) {
	if !s.Sandbox {
		return
	}
	if sc, ok := scenarioOf(sess.Params.MerchantReference); ok && sc.approval {
		sess.Params.ApprovalRequired = true
		sess.Approval = ApprovalPending
	}
}

// sandboxCreated runs a new session's scenario at once where it says so:
// "expire" expires it.
func (s *Service) sandboxCreated(ctx context.Context, sess *Session) error {
	if !s.Sandbox {
		return nil
	}
	if sc, ok := scenarioOf(sess.Params.MerchantReference); ok && sc.expire {
		_, err := s.expireNow(ctx, sess)
		return err
	}
	return nil
}
