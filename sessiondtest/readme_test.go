package sessiondtest_test

import (
	"testing"
	"time"

	"github.com/sessiond/sessiond/sessiondtest"
)

func TestCheckoutAgainstSessiond(t *testing.T) {
	srv := sessiondtest.New(t) // a real server on a free port, sandbox on, closed when the test ends

	t.Run("a deposit that completes", func(t *testing.T) {
		srv.Reset() // every subtest starts from an empty merchant
		var created struct{ ID string }
		srv.MustCall("session.create_deposit", map[string]any{
			"amount": "10.00", "country_id": "se", "merchant_reference": "completed",
			"callbacks": []map[string]any{{"url": srv.Callbacks.URL, "session_state": 12}},
		}, &created)
		cb := srv.Callbacks.Wait(1)[0] // signature already verified
		if cb.SessionID != created.ID || *cb.SessionState != 12 {
			t.Fatalf("callback %+v", cb)
		}
	})

	t.Run("an abandoned deposit expires", func(t *testing.T) {
		srv.Reset()
		var created struct{ ID string }
		srv.MustCall("session.create_deposit", map[string]any{
			"amount": "10.00", "country_id": "se",
			"callbacks": []map[string]any{{"url": srv.Callbacks.URL, "session_state": 10}},
		}, &created)
		srv.Clock.Advance(31 * time.Minute) // expiry runs before this returns
		var s struct {
			State     int    `json:"state"`
			ErrorCode string `json:"error_code"`
		}
		srv.MustCall("session.state", map[string]string{"id": created.ID}, &s)
		if s.State != 10 || s.ErrorCode != "expired_session" {
			t.Fatalf("after 31 minutes: %+v", s)
		}
		srv.Callbacks.Wait(1)
	})
}
