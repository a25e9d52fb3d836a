package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// eventually polls cond every 10ms until it holds, or fails the test after
// 20s with what.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(20 * time.Second)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("not within 20s: %s", what)
		}
	}
}

// post is one request a recorder got.
type post struct {
	Header http.Header
	Body   []byte
}

// recorder is a real callback receiver that records every request (repeats
// included), checks its signature with the Standard Webhooks library and
// answers status (200 while it is 0).
type recorder struct {
	srv    *httptest.Server
	status atomic.Int32
	mu     sync.Mutex
	posts  []post
}

func newRecorder(t *testing.T) *recorder {
	r := &recorder{}
	wh, err := standardwebhooks.NewWebhook(e2eWhsec)
	if err != nil {
		t.Fatal(err)
	}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if err := wh.Verify(body, req.Header); err != nil {
			t.Errorf("callback signature: %v", err)
		}
		r.mu.Lock()
		r.posts = append(r.posts, post{req.Header.Clone(), body})
		r.mu.Unlock()
		if s := r.status.Load(); s != 0 {
			w.WriteHeader(int(s))
		}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) got() []post {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]post(nil), r.posts...)
}

// sandboxServer starts the real binary with --sandbox, private callbacks
// and two merchants, pk_a (signing with e2eWhsec) and pk_b; args are added.
func sandboxServer(t *testing.T, args ...string) *proc {
	t.Helper()
	return startServer(t, append([]string{
		"--db", filepath.Join(t.TempDir(), "sessiond.db"), "--sandbox", "--callback-allow-private",
		"--merchant", "pk_a:sk_a:" + e2eWhsec, "--merchant", "pk_b:sk_b:" + e2eWhsec,
	}, args...)...)
}

type sessionState struct {
	ID        string  `json:"id"`
	State     int     `json:"state"`
	ErrorCode *string `json:"error_code"`
	Version   int     `json:"version"`
}

type delivery struct {
	WebhookID      string  `json:"webhook_id"`
	URL            string  `json:"url"`
	Status         string  `json:"status"`
	Attempts       int     `json:"attempts"`
	LastStatusCode *int    `json:"last_status_code"`
	LastError      *string `json:"last_error"`
}

type attempt struct {
	WebhookID  string            `json:"webhook_id"`
	SessionID  string            `json:"session_id"`
	URL        string            `json:"url"`
	Headers    map[string]string `json:"headers"`
	Body       json.RawMessage   `json:"body"`
	Outcome    string            `json:"outcome"`
	StatusCode *int              `json:"status_code"`
	Error      *string           `json:"error"`
	Injected   bool              `json:"injected"`
	At         float64           `json:"at"`
}

func callbacksOf(t *testing.T, url, token, id string) []delivery {
	t.Helper()
	var out struct{ Deliveries []delivery }
	mustCall(t, url, token, "session.callbacks", map[string]string{"id": id}, &out)
	return out.Deliveries
}

func journal(t *testing.T, url, token string, params map[string]any) []attempt {
	t.Helper()
	var out struct{ Deliveries []attempt }
	if params == nil {
		params = map[string]any{}
	}
	mustCall(t, url, token, "sandbox.deliveries", params, &out)
	return out.Deliveries
}

func stateOf(t *testing.T, url, token, id string) sessionState {
	t.Helper()
	var s sessionState
	mustCall(t, url, token, "session.state", map[string]string{"id": id}, &s)
	return s
}

func createDeposit(t *testing.T, url, token string, params map[string]any) (id, sessionToken string) {
	t.Helper()
	p := map[string]any{"amount": "10.00", "country_id": "se"}
	for k, v := range params {
		p[k] = v
	}
	var c struct{ ID, Token string }
	mustCall(t, url, token, "session.create_deposit", p, &c)
	return c.ID, c.Token
}

func advance(t *testing.T, url, token string, d time.Duration) float64 {
	t.Helper()
	var out struct{ Now float64 }
	mustCall(t, url, token, "sandbox.advance_time", map[string]any{"seconds": d.Seconds()}, &out)
	return out.Now
}

// TestReadyFile: --ready-file appears only once /readyz answers 200 (here
// a second server waits for the data file a first one holds, its port
// already bound), holds the URL and pid, matches the plain stdout line, and
// is removed at stop.
func TestReadyFile(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "sessiond.db")
	first := startServer(t, "--db", db)

	ready := filepath.Join(dir, "ready.json")
	cmd := exec.Command(binary, "serve", "--addr", "127.0.0.1:0", "--db", db, "--lock-timeout", "60s", "--ready-file", ready)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 10)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
	})

	// The second server waits for the lock. Its ready file must not
	// appear meanwhile: look while the first server still holds the file,
	// a few times over a stretch of its own requests.
	for range 20 {
		mustCall(t, first.url, "", "rpc.discover", map[string]any{}, nil)
		if _, err := os.Stat(ready); err == nil {
			t.Fatal("ready file written while the data file is locked by another server")
		}
	}
	if code := first.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("first server exit %d", code)
	}

	var info struct {
		URL         string  `json:"url"`
		PID         int     `json:"pid"`
		AdminSocket *string `json:"admin_socket"`
	}
	eventually(t, "the ready file appears", func() bool {
		b, err := os.ReadFile(ready)
		return err == nil && json.Unmarshal(b, &info) == nil
	})
	if info.PID != cmd.Process.Pid || !strings.HasPrefix(info.URL, "http://127.0.0.1:") || info.AdminSocket == nil {
		t.Fatalf("ready file %+v, want the url, pid %d and an admin_socket member", info, cmd.Process.Pid)
	}
	if fi, err := os.Stat(*info.AdminSocket); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("admin_socket %q: %v, want the admin socket", *info.AdminSocket, err)
	}
	resp, err := http.Get(info.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz right after the ready file appeared: %s", resp.Status)
	}
	select {
	case l := <-lines:
		if want := "sessiond listening on " + info.URL; l != want {
			t.Errorf("stdout %q, want %q", l, want)
		}
	case <-time.After(20 * time.Second):
		t.Error("no line on stdout")
	}

	cmd.Process.Signal(syscall.SIGTERM)
	if err := <-exited; err != nil {
		t.Fatalf("exit: %v", err)
	}
	if _, err := os.Stat(ready); !os.IsNotExist(err) {
		t.Errorf("ready file after stop: %v, want it removed", err)
	}
}

// TestSandboxReset: sandbox.reset deletes the calling merchant's sessions,
// transactions and journal; the other merchant's stay, and so do the
// caller's credentials.
func TestSandboxReset(t *testing.T) {
	rcv := newRecorder(t)
	p := sandboxServer(t)
	a, b := authorize(t, p.url, "pk_a", "sk_a"), authorize(t, p.url, "pk_b", "sk_b")
	cbs := callbackParams(rcv.srv.URL, []int{1}, nil)

	var ids []string
	for _, tok := range []string{a, b} {
		id, st := createDeposit(t, p.url, tok, map[string]any{"merchant_reference": "ref-1", "callbacks": cbs})
		for _, s := range []int{1, 2, 3, 4, 5} {
			mustCall(t, p.url, "", "client.transition", map[string]any{"token": st, "state": s}, nil)
		}
		ids = append(ids, id)
	}
	eventually(t, "both callbacks attempted", func() bool { return len(rcv.got()) == 2 })
	var accounts []string
	for _, tok := range []string{a, b} {
		var acc struct{ ID string }
		mustCall(t, p.url, tok, "bank_account.create", map[string]any{"customer_id": "cust_1", "country_id": "se", "holder": "A. Holder", "iban": "SE4550000000058398257466"}, &acc)
		accounts = append(accounts, acc.ID)
	}
	var txA, txB struct {
		TransactionID string `json:"transaction_id"`
	}
	mustCall(t, p.url, a, "session.get", map[string]string{"id": ids[0]}, &txA)
	mustCall(t, p.url, b, "session.get", map[string]string{"id": ids[1]}, &txB)

	var ok bool
	mustCall(t, p.url, a, "sandbox.reset", map[string]any{}, &ok)
	if !ok {
		t.Fatal("sandbox.reset: false")
	}
	if e := rpcCall(t, p.url, a, "session.get", map[string]string{"id": ids[0]}, nil); e == nil || e.Code != -32004 {
		t.Errorf("reset merchant's session: %+v, want -32004", e)
	}
	if e := rpcCall(t, p.url, a, "transaction.get", map[string]string{"id": txA.TransactionID}, nil); e == nil || e.Code != -32004 {
		t.Errorf("reset merchant's transaction: %+v, want -32004", e)
	}
	var byRef struct{ Sessions []json.RawMessage }
	mustCall(t, p.url, a, "session.get_by_merchant_reference", map[string]string{"merchant_reference": "ref-1"}, &byRef)
	if len(byRef.Sessions) != 0 {
		t.Errorf("reset merchant's sessions by reference: %d, want 0", len(byRef.Sessions))
	}
	if e := rpcCall(t, p.url, a, "bank_account.get", map[string]string{"id": accounts[0]}, nil); e == nil || e.Code != -32004 {
		t.Errorf("reset merchant's bank account: %+v, want -32004", e)
	}
	mustCall(t, p.url, b, "bank_account.get", map[string]string{"id": accounts[1]}, nil)
	if got := journal(t, p.url, a, nil); len(got) != 0 {
		t.Errorf("reset merchant's journal: %d attempts, want 0", len(got))
	}

	// The other merchant's data is untouched.
	if s := stateOf(t, p.url, b, ids[1]); s.State != 5 {
		t.Errorf("other merchant's session at %d, want 5", s.State)
	}
	mustCall(t, p.url, b, "transaction.get", map[string]string{"id": txB.TransactionID}, nil)
	if got := callbacksOf(t, p.url, b, ids[1]); len(got) != 1 || got[0].Status != "delivered" {
		t.Errorf("other merchant's deliveries %+v", got)
	}
	if got := journal(t, p.url, b, nil); len(got) != 1 {
		t.Errorf("other merchant's journal: %d attempts, want 1", len(got))
	}
	// The caller's token still works, and new sessions start afresh.
	id, _ := createDeposit(t, p.url, a, nil)
	stateOf(t, p.url, a, id)
}

// TestAdvanceTimeExpires: advancing the clock 31 minutes expires a session
// before advance_time answers, fires its callback, and moves session.get's
// times.
func TestAdvanceTimeExpires(t *testing.T) {
	rcv := newRecorder(t)
	p := sandboxServer(t)
	tok := authorize(t, p.url, "pk_a", "sk_a")
	id, _ := createDeposit(t, p.url, tok, map[string]any{"callbacks": callbackParams(rcv.srv.URL, []int{10}, nil)})
	var before struct {
		Created   float64 `json:"created"`
		Expires   float64 `json:"expires"`
		ViewState struct {
			SessionManagement struct {
				Active bool
				End    int
			} `json:"session_management"`
		} `json:"view_state"`
	}
	mustCall(t, p.url, tok, "session.get", map[string]string{"id": id}, &before)

	now := advance(t, p.url, tok, 31*time.Minute)
	if now < before.Created+31*60 {
		t.Errorf("now %.3f, want at least created %.3f + 31m", now, before.Created)
	}
	s := stateOf(t, p.url, tok, id)
	if s.State != 10 || s.ErrorCode == nil || *s.ErrorCode != "expired_session" {
		t.Fatalf("after 31 minutes: %+v, want 10 expired_session", s)
	}
	var after struct {
		Completed float64 `json:"completed"`
		ViewState struct {
			SessionManagement struct {
				Active bool
				End    int
			} `json:"session_management"`
		} `json:"view_state"`
	}
	mustCall(t, p.url, tok, "session.get", map[string]string{"id": id}, &after)
	if after.Completed < before.Expires || after.ViewState.SessionManagement.Active || after.ViewState.SessionManagement.End != 0 {
		t.Errorf("session.get after: completed %.3f (expires %.3f), session_management %+v", after.Completed, before.Expires, after.ViewState.SessionManagement)
	}
	// The callback was attempted before advance_time answered.
	got := rcv.got()
	if len(got) != 1 || !strings.Contains(string(got[0].Body), `"session_state":10`) {
		t.Fatalf("callbacks %d, want the one for state 10", len(got))
	}
	// It was made by the server's clock, 31 minutes ahead.
	if at := journal(t, p.url, tok, nil)[0].At; at < before.Created+31*60 {
		t.Errorf("attempt at %.3f, want at least created %.3f + 31m", at, before.Created)
	}
}

// TestAdvanceTimeRetries: a failing callback is retried when the clock is
// advanced past each retry offset (10m, 30m, 60m), and given up after.
func TestAdvanceTimeRetries(t *testing.T) {
	rcv := newRecorder(t)
	rcv.status.Store(500)
	p := sandboxServer(t)
	tok := authorize(t, p.url, "pk_a", "sk_a")
	id, st := createDeposit(t, p.url, tok, map[string]any{"callbacks": callbackParams(rcv.srv.URL, []int{1}, nil)})
	mustCall(t, p.url, "", "client.transition", map[string]any{"token": st, "state": 1}, nil)
	eventually(t, "the first attempt", func() bool { return len(rcv.got()) == 1 })
	eventually(t, "the first attempt recorded", func() bool { return callbacksOf(t, p.url, tok, id)[0].Attempts == 1 })

	advance(t, p.url, tok, 9*time.Minute)
	if n := len(rcv.got()); n != 1 {
		t.Errorf("after 9 minutes: %d attempts, want 1", n)
	}
	for i, step := range []time.Duration{time.Minute + time.Second, 20 * time.Minute, 30 * time.Minute} {
		advance(t, p.url, tok, step)
		if n := len(rcv.got()); n != i+2 {
			t.Errorf("after the %d. retry offset: %d attempts, want %d", i+1, n, i+2)
		}
	}
	d := callbacksOf(t, p.url, tok, id)[0]
	if d.Status != "failed" || d.Attempts != 4 || d.LastStatusCode == nil || *d.LastStatusCode != 500 {
		t.Errorf("delivery %+v, want failed after 4 attempts with 500", d)
	}
}

// TestFailCallbacks: sandbox.fail_callbacks with 503 ×2 fails the next two
// attempts without sending them; the retry after them is sent and
// delivered. session.callbacks and the journal show three attempts.
func TestFailCallbacks(t *testing.T) {
	rcv := newRecorder(t)
	p := sandboxServer(t)
	tok := authorize(t, p.url, "pk_a", "sk_a")
	var ok bool
	mustCall(t, p.url, tok, "sandbox.fail_callbacks", map[string]any{"url_prefix": rcv.srv.URL, "status": 503, "count": 2}, &ok)
	id, st := createDeposit(t, p.url, tok, map[string]any{"callbacks": callbackParams(rcv.srv.URL+"/cb", []int{1}, nil)})
	mustCall(t, p.url, "", "client.transition", map[string]any{"token": st, "state": 1}, nil)
	eventually(t, "the first attempt recorded", func() bool { return callbacksOf(t, p.url, tok, id)[0].Attempts == 1 })
	d := callbacksOf(t, p.url, tok, id)[0]
	if d.Status != "pending" || d.LastStatusCode == nil || *d.LastStatusCode != 503 || d.LastError == nil || !strings.Contains(*d.LastError, "sandbox.fail_callbacks") {
		t.Errorf("after the first injected failure: %+v", d)
	}
	advance(t, p.url, tok, 10*time.Minute)
	advance(t, p.url, tok, 20*time.Minute)
	d = callbacksOf(t, p.url, tok, id)[0]
	if d.Status != "delivered" || d.Attempts != 3 {
		t.Errorf("delivery %+v, want delivered at the third attempt", d)
	}
	if n := len(rcv.got()); n != 1 {
		t.Errorf("receiver got %d posts, want 1 (the injected failures are not sent)", n)
	}
	as := journal(t, p.url, tok, map[string]any{"session_id": id})
	if len(as) != 3 {
		t.Fatalf("journal: %d attempts, want 3", len(as))
	}
	for i, want := range []struct {
		injected bool
		outcome  string
		status   int
	}{{true, "failed", 503}, {true, "failed", 503}, {false, "delivered", 200}} {
		a := as[i]
		if a.Injected != want.injected || a.Outcome != want.outcome || a.StatusCode == nil || *a.StatusCode != want.status {
			t.Errorf("attempt %d: injected %v outcome %s status %v, want %+v", i, a.Injected, a.Outcome, a.StatusCode, want)
		}
		if a.WebhookID != d.WebhookID {
			t.Errorf("attempt %d webhook id %s, want %s", i, a.WebhookID, d.WebhookID)
		}
		if i > 0 && a.At <= as[i-1].At {
			t.Errorf("journal not oldest first: %v after %v", a.At, as[i-1].At)
		}
	}

	// timeout and reset fail with those errors.
	for _, kind := range []string{"timeout", "reset"} {
		mustCall(t, p.url, tok, "sandbox.fail_callbacks", map[string]any{"url_prefix": rcv.srv.URL, "status": kind, "count": 1}, nil)
		id, st := createDeposit(t, p.url, tok, map[string]any{"callbacks": callbackParams(rcv.srv.URL, []int{1}, nil)})
		mustCall(t, p.url, "", "client.transition", map[string]any{"token": st, "state": 1}, nil)
		eventually(t, kind+" recorded", func() bool { return callbacksOf(t, p.url, tok, id)[0].Attempts == 1 })
		if d := callbacksOf(t, p.url, tok, id)[0]; d.LastError == nil || !strings.Contains(*d.LastError, kind) || d.Status != "pending" {
			t.Errorf("%s: %+v", kind, d)
		}
	}
	if n := len(rcv.got()); n != 1 {
		t.Errorf("receiver got %d posts, want still 1", n)
	}

	for _, bad := range []map[string]any{
		{"status": 503, "count": 1},
		{"url_prefix": "http://x", "count": 1},
		{"url_prefix": "http://x", "status": "slow"},
		{"url_prefix": "http://x", "status": 42},
		{"url_prefix": "http://x", "status": 204},
		{"url_prefix": "http://x", "status": 503, "count": 0},
	} {
		if e := rpcCall(t, p.url, tok, "sandbox.fail_callbacks", bad, nil); e == nil || e.Code != -32602 {
			t.Errorf("fail_callbacks %v: %+v, want -32602", bad, e)
		}
	}
}

// TestResendAndJournal: sandbox.resend sends a delivered callback again
// with the same webhook-id, signed anew (the receiver verifies it); the
// journal shows both attempts with their headers and bodies.
func TestResendAndJournal(t *testing.T) {
	rcv := newRecorder(t)
	p := sandboxServer(t)
	tok := authorize(t, p.url, "pk_a", "sk_a")
	id, st := createDeposit(t, p.url, tok, map[string]any{"callbacks": callbackParams(rcv.srv.URL, []int{1}, nil)})
	mustCall(t, p.url, "", "client.transition", map[string]any{"token": st, "state": 1}, nil)
	eventually(t, "the callback delivered", func() bool { return callbacksOf(t, p.url, tok, id)[0].Status == "delivered" })
	d := callbacksOf(t, p.url, tok, id)[0]

	// Resend in a later second than the first attempt's webhook-timestamp,
	// so that a signature made anew differs.
	first, _ := strconv.ParseInt(rcv.got()[0].Header.Get("webhook-timestamp"), 10, 64)
	eventually(t, "the next second", func() bool { return time.Now().Unix() > first })
	var ok bool
	mustCall(t, p.url, tok, "sandbox.resend", map[string]string{"webhook_id": d.WebhookID}, &ok)
	eventually(t, "the resent callback", func() bool { return len(rcv.got()) == 2 })
	got := rcv.got()
	if got[0].Header.Get("webhook-id") != d.WebhookID || got[1].Header.Get("webhook-id") != d.WebhookID {
		t.Errorf("webhook ids %q and %q, want %q twice", got[0].Header.Get("webhook-id"), got[1].Header.Get("webhook-id"), d.WebhookID)
	}
	if got[0].Header.Get("webhook-signature") == got[1].Header.Get("webhook-signature") {
		t.Error("the resent callback has the first one's signature, want it signed anew")
	}
	eventually(t, "both attempts in the journal", func() bool { return len(journal(t, p.url, tok, nil)) == 2 })
	as := journal(t, p.url, tok, nil)
	wh, _ := standardwebhooks.NewWebhook(e2eWhsec)
	for i, a := range as {
		if a.URL != rcv.srv.URL || a.Outcome != "delivered" || a.StatusCode == nil || *a.StatusCode != 200 || a.SessionID != id {
			t.Errorf("attempt %d: %+v", i, a)
		}
		if string(a.Body) != string(got[i].Body) {
			t.Errorf("attempt %d body %s, receiver got %s", i, a.Body, got[i].Body)
		}
		h := http.Header{}
		for k, v := range a.Headers {
			h.Set(k, v)
		}
		for _, k := range []string{"Content-Type", "User-Agent", "webhook-id", "webhook-timestamp", "webhook-signature"} {
			if h.Get(k) != got[i].Header.Get(k) {
				t.Errorf("attempt %d header %s %q, receiver got %q", i, k, h.Get(k), got[i].Header.Get(k))
			}
		}
		if err := wh.Verify(a.Body, h); err != nil {
			t.Errorf("attempt %d: journal's signature: %v", i, err)
		}
	}
	// since keeps the later attempt only.
	if later := journal(t, p.url, tok, map[string]any{"since": as[1].At}); len(later) != 1 {
		t.Errorf("since the second attempt: %d attempts, want 1", len(later))
	}
	// Another merchant's webhook id is not found.
	b := authorize(t, p.url, "pk_b", "sk_b")
	if e := rpcCall(t, p.url, b, "sandbox.resend", map[string]string{"webhook_id": d.WebhookID}, nil); e == nil || e.Code != -32004 {
		t.Errorf("resend of another merchant's delivery: %+v, want -32004", e)
	}
}

// TestSandboxExpire: sandbox.expire expires a session at once, with its
// callback; a final session is a conflict and another merchant's is not
// found.
func TestSandboxExpire(t *testing.T) {
	rcv := newRecorder(t)
	p := sandboxServer(t)
	tok := authorize(t, p.url, "pk_a", "sk_a")
	id, _ := createDeposit(t, p.url, tok, map[string]any{"callbacks": callbackParams(rcv.srv.URL, []int{10}, nil)})
	b := authorize(t, p.url, "pk_b", "sk_b")
	if e := rpcCall(t, p.url, b, "sandbox.expire", map[string]string{"id": id}, nil); e == nil || e.Code != -32004 {
		t.Errorf("another merchant's: %+v, want -32004", e)
	}
	var s sessionState
	mustCall(t, p.url, tok, "sandbox.expire", map[string]string{"id": id}, &s)
	if s.State != 10 || s.ErrorCode == nil || *s.ErrorCode != "expired_session" {
		t.Errorf("sandbox.expire: %+v", s)
	}
	eventually(t, "the expiry callback", func() bool { return len(rcv.got()) == 1 })
	if e := rpcCall(t, p.url, tok, "sandbox.expire", map[string]string{"id": id}, nil); e == nil || e.Code != -32009 || e.Data.ErrorName != "InvalidStateTransition" {
		t.Errorf("expire a final session: %+v, want -32009 InvalidStateTransition", e)
	}
}

// TestSandboxMethodsNeedSandbox: without --sandbox every sandbox method is
// -32601.
func TestSandboxMethodsNeedSandbox(t *testing.T) {
	p := startServer(t, "--db", filepath.Join(t.TempDir(), "sessiond.db"), "--merchant", "pk_a:sk_a")
	tok := authorize(t, p.url, "pk_a", "sk_a")
	for _, m := range []string{"sandbox.reset", "sandbox.advance_time", "sandbox.expire", "sandbox.fail_callbacks",
		"sandbox.resend", "sandbox.deliveries", "sandbox.transaction_transition"} {
		if e := rpcCall(t, p.url, tok, m, map[string]any{}, nil); e == nil || e.Code != -32601 {
			t.Errorf("%s without --sandbox: %+v, want -32601", m, e)
		}
	}
}

// TestAdvanceTimeDrivesSandbox: the sandbox's steps follow the server's
// clock. With a delay of an hour between steps nothing moves by itself
// during the test; each hour advanced takes exactly the next step.
func TestAdvanceTimeDrivesSandbox(t *testing.T) {
	p := sandboxServer(t, "--sandbox-delay", "1h", "--session-ttl", "24h", "--token-ttl", "24h")
	tok := authorize(t, p.url, "pk_a", "sk_a")
	id, _ := createDeposit(t, p.url, tok, map[string]any{"merchant_reference": "completed"})
	if s := stateOf(t, p.url, tok, id); s.State != 0 {
		t.Fatalf("before any time passed: %d, want 0", s.State)
	}
	advance(t, p.url, tok, 59*time.Minute)
	if s := stateOf(t, p.url, tok, id); s.State != 0 {
		t.Fatalf("59 minutes in: %d, want 0", s.State)
	}
	var got []int
	for range 8 {
		advance(t, p.url, tok, time.Hour)
		got = append(got, stateOf(t, p.url, tok, id).State)
	}
	if want := []int{1, 2, 3, 4, 5, 8, 9, 12}; !equalInts(got, want) {
		t.Errorf("one state per hour advanced: %v, want %v", got, want)
	}
}
