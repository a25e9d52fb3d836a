package callbacks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sessiond/sessiond/session"
)

// Sign returns the Standard Webhooks webhook-signature of a callback:
// "v1," then the base64 HMAC-SHA256 of webhookID "." Unix seconds of ts
// "." body, keyed with the bytes that secret holds in base64 after its
// "whsec_" prefix. It fails if secret lacks the prefix or holds no key.
func Sign(secret, webhookID string, ts time.Time, body []byte) (string, error) {
	enc, ok := strings.CutPrefix(secret, session.CallbackSecretPrefix)
	if !ok {
		return "", fmt.Errorf("callbacks: callback secret does not start with %s", session.CallbackSecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return "", fmt.Errorf("callbacks: callback secret: %w", err)
	}
	if len(key) == 0 {
		return "", errors.New("callbacks: empty callback secret")
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(webhookID + "." + strconv.FormatInt(ts.Unix(), 10) + "."))
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}
