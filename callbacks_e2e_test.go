package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sessiond/sessiond/server"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

const e2eWhsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// callback is one POST a receiver got.
type callback struct {
	WebhookID        string `json:"-"`
	MerchantID       string `json:"merchant_id"`
	SessionID        string `json:"session_id"`
	SessionState     *int   `json:"session_state"`
	TransactionID    string `json:"transaction_id"`
	TransactionState *int   `json:"transaction_state"`
}

// receiver is a real HTTP callback receiver that verifies every signature
// with the Standard Webhooks library and answers 503 while down.
type receiver struct {
	t    *testing.T
	srv  *httptest.Server
	down atomic.Bool
	mu   sync.Mutex
	got  []callback
	seen map[string]bool // webhook ids answered 2xx
	ch   chan struct{}
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t, seen: map[string]bool{}, ch: make(chan struct{}, 1000)}
	wh, err := standardwebhooks.NewWebhook(e2eWhsec)
	if err != nil {
		t.Fatal(err)
	}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if r.down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if err := wh.Verify(body, req.Header); err != nil {
			t.Errorf("callback signature: %v", err)
		}
		if ua := req.Header.Get("User-Agent"); ua != "Brite Callback" {
			t.Errorf("User-Agent %q", ua)
		}
		var cb callback
		if err := json.Unmarshal(body, &cb); err != nil {
			t.Errorf("callback body %s: %v", body, err)
		}
		cb.WebhookID = req.Header.Get("webhook-id")
		r.mu.Lock()
		if !r.seen[cb.WebhookID] { // at least once: a repeat keeps its id
			r.seen[cb.WebhookID] = true
			r.got = append(r.got, cb)
		}
		r.mu.Unlock()
		r.ch <- struct{}{}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// waitFor waits until n distinct callbacks arrived, or fails after 30s.
func (r *receiver) waitFor(n int) []callback {
	r.t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		r.mu.Lock()
		got := append([]callback(nil), r.got...)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-r.ch:
		case <-deadline:
			r.t.Fatalf("got %d callbacks, want %d: %+v", len(got), n, got)
		}
	}
}

func states(cbs []callback) []int {
	var out []int
	for _, cb := range cbs {
		if cb.SessionState != nil {
			out = append(out, *cb.SessionState)
		} else {
			out = append(out, 100+*cb.TransactionState) // transaction states as 100+n
		}
	}
	return out
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func callbackParams(url string, sessionStates, txStates []int) []map[string]any {
	var cbs []map[string]any
	for _, s := range sessionStates {
		cbs = append(cbs, map[string]any{"url": url, "session_state": s})
	}
	for _, s := range txStates {
		cbs = append(cbs, map[string]any{"url": url, "transaction_state": s})
	}
	return cbs
}

// TestCallbacksSurviveKill makes changes while the receiver is down, kills
// the server with SIGKILL, restarts it with the receiver up: every
// callback arrives, signed.
func TestCallbacksSurviveKill(t *testing.T) {
	rcv := newReceiver(t)
	rcv.down.Store(true)
	db := filepath.Join(t.TempDir(), "sessiond.db")
	args := []string{"--db", db, "--merchant", "pk_cb:sk_cb:" + e2eWhsec, "--callback-allow-private", "--callback-retry", "100ms,200ms,400ms,800ms,2s,5s,10s,20s"}
	p := startServer(t, args...)
	token := authorize(t, p.url, "pk_cb", "sk_cb")
	const n = 5
	for range n {
		var s struct{ Token string }
		mustCall(t, p.url, token, "session.create_deposit", map[string]any{
			"amount": "5", "country_id": "se", "callbacks": callbackParams(rcv.srv.URL, []int{1, 2, 12}, []int{0, 4}),
		}, &s)
		for _, st := range []int{1, 2, 3, 4, 5, 8, 9, 12} {
			mustCall(t, p.url, "", "client.transition", map[string]any{"token": s.Token, "state": st}, nil)
		}
	}
	p.stop(t, syscall.SIGKILL)

	rcv.down.Store(false)
	startServer(t, args...)
	got := rcv.waitFor(n * 5)
	if len(got) != n*5 {
		t.Errorf("got %d distinct callbacks, want %d", len(got), n*5)
	}
}

// TestExpiryAfterRestart stops the server past a session's deadline and
// starts it again: the session expires at start and its callback fires.
func TestExpiryAfterRestart(t *testing.T) {
	rcv := newReceiver(t)
	db := filepath.Join(t.TempDir(), "sessiond.db")
	// A long sweep interval: only the sweep at start can expire it.
	config := func(c *server.Config) {
		withMerchant("pk_ex", "sk_ex", e2eWhsec)(c)
		c.CallbackAllowPrivate, c.SessionTTL, c.ExpiryInterval = true, time.Millisecond, time.Hour
	}
	p := startMain(t, db, config)
	token := authorize(t, p.url, "pk_ex", "sk_ex")
	var s struct{ ID string }
	mustCall(t, p.url, token, "session.create_deposit", map[string]any{
		"amount": "5", "country_id": "se", "callbacks": callbackParams(rcv.srv.URL, []int{10}, nil),
	}, &s)
	var before struct{ State int }
	mustCall(t, p.url, token, "session.get", map[string]string{"id": s.ID}, &before)
	if before.State != 0 {
		t.Fatalf("state %d before the restart, want 0 (no sweep yet)", before.State)
	}
	if err := p.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}

	p = startMain(t, db, config)
	got := rcv.waitFor(1)
	if got[0].SessionID != s.ID || *got[0].SessionState != 10 {
		t.Errorf("callback %+v, want state 10 of %s", got[0], s.ID)
	}
	var after struct {
		State     int
		ErrorCode string `json:"error_code"`
	}
	mustCall(t, p.url, token, "session.get", map[string]string{"id": s.ID}, &after)
	if after.State != 10 || after.ErrorCode != "expired_session" {
		t.Errorf("after restart: %+v, want aborted with expired_session", after)
	}
}

// TestSandboxScenarios runs each magic reference on a sandbox server and
// checks that every state it reaches is called back once.
func TestSandboxScenarios(t *testing.T) {
	rcv := newReceiver(t)
	p := startMain(t, filepath.Join(t.TempDir(), "sessiond.db"), func(c *server.Config) {
		withMerchant("pk_sb", "sk_sb", e2eWhsec)(c)
		c.CallbackAllowPrivate, c.Sandbox, c.SandboxDelay = true, true, 150*time.Millisecond
	})
	token := authorize(t, p.url, "pk_sb", "sk_sb")
	all := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	tests := []struct {
		ref  string
		want []int
	}{
		{"completed", []int{1, 2, 3, 4, 5, 8, 9, 12, 100, 104, 105, 106}},
		{"aborted", []int{1, 10}},
		{"failed", []int{1, 11}},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			var s struct{ ID string }
			mustCall(t, p.url, token, "session.create_deposit", map[string]any{
				"amount": "5", "country_id": "se", "merchant_reference": tt.ref,
				"callbacks": callbackParams(rcv.srv.URL, all, []int{0, 1, 2, 3, 4, 5, 6, 7}),
			}, &s)
			rcv.mu.Lock()
			start := len(rcv.got)
			rcv.mu.Unlock()
			got := rcv.waitFor(start + len(tt.want))[start:]
			// Callbacks may arrive out of order (API.md §6): up to four
			// POSTs to one host are in flight at once, so on a busy
			// machine a step's callback can overtake the one before it.
			// Each state reached is called back exactly once.
			gotStates := states(got)
			slices.Sort(gotStates)
			if !equalInts(gotStates, tt.want) {
				t.Errorf("callbacks for states %v, want %v", gotStates, tt.want)
			}
			for _, cb := range got {
				if cb.SessionState != nil && cb.SessionID != s.ID {
					t.Errorf("callback for session %s, want %s", cb.SessionID, s.ID)
				}
			}
		})
	}

	// Without --sandbox the sandbox's method does not exist.
	q := startMain(t, filepath.Join(t.TempDir(), "plain.db"), withMerchant("pk_sb", "sk_sb", ""))
	tok := authorize(t, q.url, "pk_sb", "sk_sb")
	if e := rpcCall(t, q.url, tok, "sandbox.transaction_transition", map[string]any{"id": "x", "state": 1}, nil); e == nil || e.Code != -32601 {
		t.Errorf("sandbox method without --sandbox: %+v, want -32601", e)
	}
}

// TestSandboxResumesAfterRestart kills a sandbox server in the middle of
// every scenario (SIGKILL) and starts it again on the same file: each
// scenario goes on from where it was to its end, because the schedule is
// in the store, not in memory.
func TestSandboxResumesAfterRestart(t *testing.T) {
	rcv := newReceiver(t)
	db := filepath.Join(t.TempDir(), "sessiond.db")
	args := []string{"--db", db, "--merchant", "pk_sb:sk_sb:" + e2eWhsec, "--sandbox", "--sandbox-delay", "300ms", "--callback-allow-private"}
	p := startServer(t, args...)
	token := authorize(t, p.url, "pk_sb", "sk_sb")
	all := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	want := map[string][]int{
		"completed": {1, 2, 3, 4, 5, 8, 9, 12, 100, 104, 105, 106},
		"aborted":   {1, 10},
		"failed":    {1, 11},
	}
	ids := map[string]string{}
	for _, ref := range []string{"completed", "aborted", "failed"} {
		var s struct{ ID string }
		mustCall(t, p.url, token, "session.create_deposit", map[string]any{
			"amount": "5", "country_id": "se", "merchant_reference": ref,
			"callbacks": callbackParams(rcv.srv.URL, all, []int{0, 1, 2, 3, 4, 5, 6, 7}),
		}, &s)
		ids[s.ID] = ref
	}
	// The first step of each (state 1) is in, the last of none: kill.
	rcv.waitFor(3)
	p.stop(t, syscall.SIGKILL)
	rcv.mu.Lock()
	before := len(rcv.got)
	rcv.mu.Unlock()
	if before >= 16 {
		t.Fatalf("every callback arrived (%d) before the kill; the test proves nothing", before)
	}
	startServer(t, args...)
	got := rcv.waitFor(16)
	bySession := map[string][]int{}
	for _, cb := range got {
		sid := cb.SessionID
		if sid == "" { // a transaction callback; only "completed" has one
			sid = "tx"
		}
		bySession[sid] = append(bySession[sid], states([]callback{cb})...)
	}
	for id, ref := range ids {
		sessionStates := bySession[id]
		var wantSession []int
		for _, st := range want[ref] {
			if st < 100 {
				wantSession = append(wantSession, st)
			}
		}
		if !equalInts(sessionStates, wantSession) {
			t.Errorf("%s: session callbacks %v across the restart, want %v", ref, sessionStates, wantSession)
		}
	}
	if !equalInts(bySession["tx"], []int{100, 104, 105, 106}) {
		t.Errorf("transaction callbacks %v across the restart, want [100 104 105 106]", bySession["tx"])
	}
	t.Logf("%d of 16 callbacks before the kill, the rest after the restart", before)
}
