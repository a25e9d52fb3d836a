package sessiondtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessiond/sessiond/callbacks"
)

// Callback is one callback the Receiver accepted: signature verified, body
// decoded.
type Callback struct {
	WebhookID string
	Timestamp time.Time // webhook-timestamp
	Header    http.Header
	Body      []byte

	MerchantID       string `json:"merchant_id"`
	SessionID        string `json:"session_id"`
	SessionState     *int   `json:"session_state"`
	TransactionID    string `json:"transaction_id"`
	TransactionState *int   `json:"transaction_state"`
}

// Receiver is a real HTTP callback receiver on a loopback port. It checks
// each callback's Standard Webhooks signature (webhook-id,
// webhook-timestamp within 5 minutes of now, webhook-signature) with the
// merchant's callback secret: a callback that does not verify is answered
// 400 and, under New, fails the test. It answers the others 200, or the
// status set with SetStatus.
type Receiver struct {
	// URL is where to point callbacks, such as http://127.0.0.1:41235.
	URL string

	secret string
	srv    *httptest.Server
	status atomic.Int32
	onBad  func(error)
	fail   func(error)

	mu      sync.Mutex
	got     []Callback
	changed chan struct{} // closed and replaced when a callback arrives
}

func newReceiver(secret string) *Receiver {
	r := &Receiver{secret: secret, changed: make(chan struct{})}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	r.URL = r.srv.URL
	return r
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	cb, err := r.verify(req.Header, body)
	if err != nil {
		if r.onBad != nil {
			r.onBad(err)
		}
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if s := r.status.Load(); s != 0 {
		w.WriteHeader(int(s))
		return
	}
	r.mu.Lock()
	r.got = append(r.got, cb)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// verify checks a callback's signature and decodes it.
func (r *Receiver) verify(h http.Header, body []byte) (Callback, error) {
	id, ts := h.Get("webhook-id"), h.Get("webhook-timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if id == "" || err != nil {
		return Callback{}, fmt.Errorf("callback without webhook-id or webhook-timestamp: %q %q", id, ts)
	}
	at := time.Unix(sec, 0)
	if d := time.Since(at); d > 5*time.Minute || d < -5*time.Minute {
		return Callback{}, fmt.Errorf("callback %s: webhook-timestamp %s is more than 5 minutes off", id, at)
	}
	want, err := callbacks.Sign(r.secret, id, at, body)
	if err != nil {
		return Callback{}, err
	}
	ok := false
	for _, sig := range strings.Fields(h.Get("webhook-signature")) {
		ok = ok || sig == want
	}
	if !ok {
		return Callback{}, fmt.Errorf("callback %s: webhook-signature does not verify", id)
	}
	cb := Callback{WebhookID: id, Timestamp: at, Header: h.Clone(), Body: body}
	if err := json.Unmarshal(body, &cb); err != nil {
		return Callback{}, fmt.Errorf("callback %s: body %s: %w", id, body, err)
	}
	return cb, nil
}

// SetStatus makes the receiver answer status to every callback from now
// on, without recording them (0 or 200: accept them again).
func (r *Receiver) SetStatus(status int) {
	if status == http.StatusOK {
		status = 0
	}
	r.status.Store(int32(status))
}

// All returns the callbacks accepted so far, in the order they arrived.
func (r *Receiver) All() []Callback {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Callback(nil), r.got...)
}

// Reset forgets the callbacks accepted so far.
func (r *Receiver) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = nil
}

// WaitTimeout is how long Wait waits.
const WaitTimeout = 10 * time.Second

// Wait waits until at least n callbacks were accepted and returns them
// all, in the order they arrived. After WaitTimeout it fails the test
// (under New; after Start it panics).
func (r *Receiver) Wait(n int) []Callback {
	got, err := r.wait(n)
	if err != nil {
		r.fail(err)
	}
	return got
}

func (r *Receiver) wait(n int) ([]Callback, error) {
	deadline := time.NewTimer(WaitTimeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		got, changed := append([]Callback(nil), r.got...), r.changed
		r.mu.Unlock()
		if len(got) >= n {
			return got, nil
		}
		select {
		case <-changed:
		case <-deadline.C:
			return got, fmt.Errorf("%d callbacks within %s, want %d", len(got), WaitTimeout, n)
		}
	}
}

func (r *Receiver) close() { r.srv.Close() }
