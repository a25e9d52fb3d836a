package callbacks

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sessiond/sessiond/session"
)

// Faults holds the callback faults a sandbox has armed: each fails the
// next attempts of one merchant's deliveries to matching URLs without
// sending them. The zero Faults has none; a nil *Faults holds none and
// never fails anything. It is safe for concurrent use.
type Faults struct {
	mu    sync.Mutex
	armed []*fault
}

type fault struct {
	merchantID string
	session.CallbackFault
}

// Add arms f for merchant merchantID's callbacks, after those armed before.
func (fs *Faults) Add(merchantID string, f session.CallbackFault) {
	if fs == nil {
		return
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.armed = append(fs.armed, &fault{merchantID, f})
}

// Forget disarms every fault of the merchant.
func (fs *Faults) Forget(merchantID string) {
	if fs == nil {
		return
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	kept := fs.armed[:0]
	for _, f := range fs.armed {
		if f.merchantID != merchantID {
			kept = append(kept, f)
		}
	}
	fs.armed = kept
}

// take uses up one attempt of the first armed fault that matches a
// delivery, and returns it.
func (fs *Faults) take(dl *session.Delivery) (session.CallbackFault, bool) {
	if fs == nil {
		return session.CallbackFault{}, false
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for i, f := range fs.armed {
		if f.merchantID != dl.MerchantID || !strings.HasPrefix(dl.URL, f.URLPrefix) {
			continue
		}
		got := f.CallbackFault
		if f.Count--; f.Count <= 0 {
			fs.armed = append(fs.armed[:i], fs.armed[i+1:]...)
		}
		return got, true
	}
	return session.CallbackFault{}, false
}

// errInjected is the failure of an attempt that a fault stopped.
var errInjected = errors.New("sandbox.fail_callbacks")

// injected returns what an attempt failed by f comes to: the status it
// answers, or an error naming the fault.
func injected(f session.CallbackFault) (int, error) {
	switch f.Kind {
	case session.FaultTimeout:
		return 0, fmt.Errorf("%w: timeout (not sent)", errInjected)
	case session.FaultReset:
		return 0, fmt.Errorf("%w: connection reset (not sent)", errInjected)
	}
	return f.Status, nil
}

// maxJournal is how many attempts a Journal keeps; past it the oldest go.
const maxJournal = 10000

// Journal records every callback attempt a Dispatcher makes, with what it
// sent, for a sandbox's sandbox.deliveries. It keeps the latest 10 000. A
// nil *Journal records nothing. It is safe for concurrent use.
type Journal struct {
	mu       sync.Mutex
	attempts []session.Attempt
}

func (j *Journal) record(a session.Attempt) {
	if j == nil {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.attempts) >= maxJournal {
		j.attempts = append(j.attempts[:0], j.attempts[len(j.attempts)-maxJournal+1:]...)
	}
	j.attempts = append(j.attempts, a)
}

// Attempts returns the merchant's attempts made at or after since (all for
// a zero since), of the session if sessionID is set, oldest first.
func (j *Journal) Attempts(merchantID string, since time.Time, sessionID string) []session.Attempt {
	out := []session.Attempt{}
	if j == nil {
		return out
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, a := range j.attempts {
		if a.MerchantID == merchantID && !a.At.Before(since) && (sessionID == "" || a.SessionID == sessionID) {
			out = append(out, a)
		}
	}
	return out
}

// Forget drops every attempt of the merchant.
func (j *Journal) Forget(merchantID string) {
	if j == nil {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	kept := j.attempts[:0]
	for _, a := range j.attempts {
		if a.MerchantID != merchantID {
			kept = append(kept, a)
		}
	}
	j.attempts = kept
}

// journal records a settled attempt at dl, made at now and stamped with
// stamp, in the Journal: the headers and body it sent (or would have sent,
// if a fault stopped it) and what came of it.
func (d *Dispatcher) journal(dl *session.Delivery, secret string, now, stamp time.Time, wasInjected bool) {
	if d.cfg.Journal == nil {
		return
	}
	body := dl.Body()
	h := map[string]string{
		"content-type":      "application/json",
		"user-agent":        d.cfg.UserAgent,
		"webhook-id":        dl.WebhookID,
		"webhook-timestamp": strconv.FormatInt(stamp.Unix(), 10),
	}
	if sig, err := Sign(secret, dl.WebhookID, stamp, body); err == nil {
		h["webhook-signature"] = sig
	}
	outcome := string(dl.Status)
	if dl.Status == session.DeliveryPending {
		outcome = string(session.DeliveryFailed)
	}
	d.cfg.Journal.record(session.Attempt{
		WebhookID:  dl.WebhookID,
		MerchantID: dl.MerchantID,
		SessionID:  dl.SessionID,
		URL:        dl.URL,
		Headers:    h,
		Body:       json.RawMessage(body),
		Outcome:    outcome,
		StatusCode: dl.LastStatusCode,
		Error:      dl.LastError,
		Injected:   wasInjected,
		At:         now,
	})
}
