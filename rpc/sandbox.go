package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"time"

	"github.com/sessiond/sessiond/session"
)

// SandboxControls are the sandbox's test controls that reach past the
// Service: the server's clock, the callback engine's faults and its journal
// of attempts. The server that wires the engine provides them.
type SandboxControls interface {
	// AdvanceTime moves the server's clock forward by d, runs what fell
	// due (expiry at least), and returns the time the clock then reads.
	AdvanceTime(ctx context.Context, d time.Duration) (time.Time, error)
	// Reset deletes merchant m's sessions, transactions, deliveries, bank
	// accounts, faults and journal.
	Reset(ctx context.Context, m *session.Merchant) error
	// FailCallbacks arms a fault for m's callbacks.
	FailCallbacks(m *session.Merchant, f session.CallbackFault) error
	// Resend queues m's delivery with the webhook id again; ErrNotFound.
	Resend(ctx context.Context, m *session.Merchant, webhookID string) error
	// Attempts returns m's journal, oldest first: attempts at or after
	// since (zero: all), of the session if sessionID is set.
	Attempts(ctx context.Context, m *session.Merchant, since time.Time, sessionID string) ([]session.Attempt, error)
}

// maxAdvance bounds one sandbox.advance_time: ten years.
const maxAdvance = 10 * 365 * 24 * time.Hour

// errNoControls answers the test controls of a server wired without them.
var errNoControls = errors.New("rpc: sandbox without test controls")

// sandboxMethods adds the sandbox.* test controls to t; they answer
// -32603 on a server without Controls.
func (s *Server) sandboxMethods(t map[string]method) {
	guard := func(fn func(context.Context, *request) (any, error)) method {
		return method{true, func(ctx context.Context, r *request) (any, error) {
			if s.cfg.Controls == nil {
				return nil, errNoControls
			}
			return fn(ctx, r)
		}}
	}
	t["sandbox.reset"] = guard(s.sandboxReset)
	t["sandbox.advance_time"] = guard(s.sandboxAdvanceTime)
	t["sandbox.expire"] = guard(s.sandboxExpire)
	t["sandbox.fail_callbacks"] = guard(s.sandboxFailCallbacks)
	t["sandbox.resend"] = guard(s.sandboxResend)
	t["sandbox.deliveries"] = guard(s.sandboxDeliveries)
}

func (s *Server) sandboxReset(ctx context.Context, r *request) (any, error) {
	if err := r.decode(&struct{}{}); err != nil {
		return nil, err
	}
	if err := s.cfg.Controls.Reset(ctx, r.merchant); err != nil {
		return nil, err
	}
	return true, nil
}

func (s *Server) sandboxAdvanceTime(ctx context.Context, r *request) (any, error) {
	var p struct {
		Seconds *float64 `json:"seconds"`
	}
	if err := r.decode(&p); err != nil {
		return nil, err
	}
	if p.Seconds == nil {
		return nil, session.FieldError(session.NameMissingParameter, "seconds", "seconds is required")
	}
	secs := *p.Seconds
	if math.IsNaN(secs) || secs < 0 || secs > maxAdvance.Seconds() {
		return nil, session.FieldError(session.NameInvalidParams, "seconds", "seconds must be a number from 0 to %d", int64(maxAdvance.Seconds()))
	}
	now, err := s.cfg.Controls.AdvanceTime(ctx, time.Duration(secs*float64(time.Second)))
	if err != nil {
		return nil, err
	}
	return struct {
		Now unixTime `json:"now"`
	}{unixTime(now)}, nil
}

func (s *Server) sandboxExpire(ctx context.Context, r *request) (any, error) {
	id, err := r.id()
	if err != nil {
		return nil, err
	}
	v, err := s.svc.ExpireNow(ctx, r.merchant, id)
	if err != nil {
		return nil, err
	}
	return stateOf(v), nil
}

// maxFaultCount bounds the attempts one sandbox.fail_callbacks fails.
const maxFaultCount = 1000

func (s *Server) sandboxFailCallbacks(ctx context.Context, r *request) (any, error) {
	var p struct {
		URLPrefix string          `json:"url_prefix"`
		Status    json.RawMessage `json:"status"`
		Count     *int            `json:"count"`
	}
	if err := r.decode(&p); err != nil {
		return nil, err
	}
	if err := required("url_prefix", p.URLPrefix); err != nil {
		return nil, err
	}
	if len(p.URLPrefix) > 2048 {
		return nil, session.FieldError(session.NameInvalidParams, "url_prefix", "url_prefix must be at most 2048 characters")
	}
	f := session.CallbackFault{URLPrefix: p.URLPrefix, Count: 1}
	var word string
	switch {
	case len(p.Status) == 0 || string(p.Status) == "null":
		return nil, session.FieldError(session.NameMissingParameter, "status", "status is required")
	case json.Unmarshal(p.Status, &word) == nil && (word == "timeout" || word == "reset"):
		f.Kind = session.FaultKind(word)
	default:
		code, err := strconv.Atoi(string(p.Status))
		if err != nil || code < 100 || code > 599 || (code >= 200 && code < 300) {
			return nil, session.FieldError(session.NameInvalidParams, "status", `status must be a failing HTTP status (100 to 599, not 2xx), "timeout" or "reset"`)
		}
		f.Kind, f.Status = session.FaultStatus, code
	}
	if p.Count != nil {
		f.Count = *p.Count
	}
	if f.Count < 1 || f.Count > maxFaultCount {
		return nil, session.FieldError(session.NameInvalidParams, "count", "count must be from 1 to %d", maxFaultCount)
	}
	if err := s.cfg.Controls.FailCallbacks(r.merchant, f); err != nil {
		return nil, err
	}
	return true, nil
}

func (s *Server) sandboxResend(ctx context.Context, r *request) (any, error) {
	var p struct {
		WebhookID string `json:"webhook_id"`
	}
	if err := r.decode(&p); err != nil {
		return nil, err
	}
	if err := required("webhook_id", p.WebhookID); err != nil {
		return nil, err
	}
	if err := s.cfg.Controls.Resend(ctx, r.merchant, p.WebhookID); err != nil {
		return nil, err
	}
	return true, nil
}

// attemptObject is one entry of sandbox.deliveries.
type attemptObject struct {
	WebhookID  string            `json:"webhook_id"`
	SessionID  string            `json:"session_id"`
	URL        string            `json:"url"`
	Headers    map[string]string `json:"headers"`
	Body       json.RawMessage   `json:"body"`
	Outcome    string            `json:"outcome"`
	StatusCode *int              `json:"status_code"`
	Error      *string           `json:"error"`
	Injected   bool              `json:"injected"`
	At         unixTime          `json:"at"`
}

func (s *Server) sandboxDeliveries(ctx context.Context, r *request) (any, error) {
	var p struct {
		Since     *float64 `json:"since"`
		SessionID string   `json:"session_id"`
	}
	if err := r.decode(&p); err != nil {
		return nil, err
	}
	var since time.Time
	if p.Since != nil {
		if math.IsNaN(*p.Since) || *p.Since < 0 || *p.Since > 1e11 {
			return nil, session.FieldError(session.NameInvalidParams, "since", "since must be Unix seconds")
		}
		// Times go out in whole microseconds: an at sent back as since
		// must match its own attempt, whatever the float rounding.
		since = time.UnixMicro(int64(math.Round(*p.Since * 1e6)))
	}
	as, err := s.cfg.Controls.Attempts(ctx, r.merchant, since, p.SessionID)
	if err != nil {
		return nil, err
	}
	out := struct {
		Deliveries []attemptObject `json:"deliveries"`
	}{Deliveries: make([]attemptObject, len(as))}
	for i, a := range as {
		o := attemptObject{
			WebhookID: a.WebhookID, SessionID: a.SessionID, URL: a.URL, Headers: a.Headers,
			Body: a.Body, Outcome: a.Outcome, Injected: a.Injected, At: unixTime(a.At),
		}
		if a.StatusCode != 0 {
			o.StatusCode = &a.StatusCode
		}
		if a.Error != "" {
			o.Error = &a.Error
		}
		out.Deliveries[i] = o
	}
	return out, nil
}
