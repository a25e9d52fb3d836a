package sessiondtest_test

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/sessiondtest"
)

// TestNew: the server listens on loopback, knows the merchant, and runs in
// sandbox mode.
func TestNew(t *testing.T) {
	srv := sessiondtest.New(t)
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Errorf("URL %s, want loopback", srv.URL)
	}
	if !strings.HasPrefix(srv.CallbackSecret, "whsec_") || srv.PublicKey == "" || srv.Secret == "" {
		t.Errorf("credentials %q %q %q", srv.PublicKey, srv.Secret, srv.CallbackSecret)
	}
	var ok bool
	srv.MustCall("sandbox.reset", nil, &ok)
	if !ok {
		t.Error("sandbox.reset: false")
	}
	var e *sessiondtest.Error
	if err := srv.Call("session.get", map[string]string{"id": "01a2e5f0-0000-7000-8000-000000000000"}, nil); !errors.As(err, &e) || e.Code != -32004 || e.Name != "NotFound" {
		t.Errorf("session.get of nothing: %v, want -32004 NotFound", err)
	}
}

// TestReceiverRefusesBadSignatures: a callback that is not signed with the
// merchant's secret is answered 400 and not recorded.
func TestReceiverRefusesBadSignatures(t *testing.T) {
	srv, err := sessiondtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for _, h := range []map[string]string{
		{},
		{"webhook-id": "msg_1", "webhook-timestamp": "1", "webhook-signature": "v1,AAAA"},
		{"webhook-id": "msg_1", "webhook-timestamp": strconv.FormatInt(time.Now().Unix(), 10), "webhook-signature": "v1,AAAA"},
	} {
		req, _ := http.NewRequest(http.MethodPost, srv.Callbacks.URL, strings.NewReader(`{"session_state":1}`))
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("headers %v: %s, want 400", h, resp.Status)
		}
	}
	if n := len(srv.Callbacks.All()); n != 0 {
		t.Errorf("recorded %d bad callbacks", n)
	}
}

// TestClockAndTokens: advancing the clock past the token lifetime expires
// the bearer; Call authorizes again by itself.
func TestClockAndTokens(t *testing.T) {
	srv := sessiondtest.New(t)
	before := srv.Clock.Now()
	now := srv.Clock.Advance(7 * time.Hour)
	if d := now.Sub(before); d < 7*time.Hour || d > 7*time.Hour+time.Minute {
		t.Errorf("advanced %s, want 7h", d)
	}
	if d := srv.Clock.Now().Sub(now); d < 0 || d > time.Minute {
		t.Errorf("Now %s after Advance's %s", srv.Clock.Now(), now)
	}
	tok, err := srv.Token()
	if err != nil {
		t.Fatal(err)
	}
	srv.MustCall("sandbox.reset", nil, nil) // the old token expired: authorized again
	if again, _ := srv.Token(); again == tok {
		t.Error("token not renewed after it expired")
	}
}

// TestFailingReceiver: with the receiver answering 503 the delivery is
// retried once the clock passes the first retry offset, and delivered when
// the receiver accepts again.
func TestFailingReceiver(t *testing.T) {
	srv := sessiondtest.New(t)
	srv.Callbacks.SetStatus(http.StatusServiceUnavailable)
	var created struct{ ID, Token string }
	srv.MustCall("session.create_deposit", map[string]any{
		"amount": "10.00", "country_id": "se",
		"callbacks": []map[string]any{{"url": srv.Callbacks.URL, "session_state": 1}},
	}, &created)
	if err := srv.ClientCall("client.transition", map[string]any{"token": created.Token, "state": 1}, nil); err != nil {
		t.Fatal(err)
	}
	attempts := func() int {
		var out struct{ Deliveries []struct{ Attempts int } }
		srv.MustCall("session.callbacks", map[string]string{"id": created.ID}, &out)
		return out.Deliveries[0].Attempts
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(10 * time.Second); attempts() < 1; <-tick.C {
		if time.Now().After(deadline) {
			t.Fatal("no first attempt within 10s")
		}
	}
	srv.Callbacks.SetStatus(http.StatusOK)
	srv.Clock.Advance(10 * time.Minute)
	if got := srv.Callbacks.All(); len(got) != 1 || got[0].SessionID != created.ID {
		t.Fatalf("after the retry: %d callbacks", len(got))
	}
	if n := attempts(); n != 2 {
		t.Errorf("attempts %d, want 2", n)
	}
}

// TestStartClose: Start's server no longer serves after Close.
func TestStartClose(t *testing.T) {
	srv, err := sessiondtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(srv.URL + "/readyz"); err == nil {
		t.Error("still serving after Close")
	}
	if !strings.Contains(srv.Logs(), `"message":"listening"`) {
		t.Errorf("logs without the listening line: %s", srv.Logs())
	}
}
