package callbacks_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/sessiond/sessiond/callbacks"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// TestSignKnownAnswer uses the vector of the Standard Webhooks Go library's
// own tests (TestWebhookSign).
func TestSignKnownAnswer(t *testing.T) {
	got, err := callbacks.Sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
		time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}

// TestSignVerifies checks Sign against the library's Verify.
func TestSignVerifies(t *testing.T) {
	const secret = "whsec_c2VjcmV0IGtleSBvZiBhIG1lcmNoYW50"
	body := []byte(`{"merchant_id":"m","session_id":"s","session_state":12}`)
	now := time.Now()
	sig, err := callbacks.Sign(secret, "msg_1", now, body)
	if err != nil {
		t.Fatal(err)
	}
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("webhook-id", "msg_1")
	h.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	h.Set("webhook-signature", sig)
	if err := wh.Verify(body, h); err != nil {
		t.Errorf("Verify(%s): %v", sig, err)
	}
	h.Set("webhook-id", "msg_2")
	if err := wh.Verify(body, h); err == nil {
		t.Error("a signature for msg_1 verifies for msg_2")
	}
}

// TestSignBadSecret: a secret without the prefix or without a key is refused.
func TestSignBadSecret(t *testing.T) {
	for _, secret := range []string{"", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_", "whsec_!!!"} {
		if sig, err := callbacks.Sign(secret, "msg_1", time.Unix(0, 0), nil); err == nil {
			t.Errorf("Sign(%q) = %s, want an error", secret, sig)
		}
	}
}
