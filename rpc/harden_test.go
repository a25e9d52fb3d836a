package rpc_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/sessiond/sessiond/session"
)

// TestAuthorizeBruteForce sends batches of 100 wrong secrets for one
// public key: only the key's budget of attempts is evaluated, the rest get
// -32029 with a retry hint, and the right secret from another address is
// refused as well until the budget refills (on the fake clock).
func TestAuthorizeBruteForce(t *testing.T) {
	cfg := testConfig()
	cfg.MaxBatch, cfg.MaxBody = 100, 1<<20
	ts := mustServer(t, cfg)
	if _, _, err := ts.Svc.AddMerchant(context.Background(), "target", session.Credentials{PublicKey: alphaKey, Secret: alphaSecret}); err != nil {
		t.Fatal(err)
	}
	var batch bytes.Buffer
	batch.WriteByte('[')
	for i := range 100 {
		if i > 0 {
			batch.WriteByte(',')
		}
		fmt.Fprintf(&batch, `{"jsonrpc":"2.0","id":%d,"method":"merchant.authorize","params":{"public_key":%q,"secret":"guess-%d"}}`, i, alphaKey, i)
	}
	batch.WriteByte(']')

	codes := map[int64]int{}
	retry := 0
	for range 3 {
		status, body := ts.rawCall(t, "", batch.Bytes())
		var resps []struct{ Error *rpcError }
		if err := json.Unmarshal(body, &resps); status != http.StatusOK || err != nil || len(resps) != 100 {
			t.Fatalf("batch: %d %.200s (%v)", status, body, err)
		}
		for _, r := range resps {
			codes[r.Error.Code]++
			if r.Error.Code == -32029 {
				if s, _ := r.Error.Data["retry_after"].(float64); s >= 1 {
					retry++
				}
			}
		}
	}
	t.Logf("300 guesses in 3 batches: %v (code: count)", codes)
	if want := session.DefaultKeyAttempts.Burst; codes[-32001] != want || codes[-32029] != 300-want || retry != codes[-32029] {
		t.Errorf("300 guesses: %v, %d with retry_after; want %d evaluated (-32001), the rest -32029 with retry_after", codes, retry, want)
	}
	if _, e := ts.call(t, "", "merchant.authorize", map[string]string{"public_key": alphaKey, "secret": alphaSecret}); e == nil || e.Code != -32029 {
		t.Errorf("the right secret while the key is locked: %v, want -32029", e)
	}
	ts.Clock.Advance(session.DefaultKeyAttempts.Every)
	ts.mustCall(t, "", "merchant.authorize", map[string]string{"public_key": alphaKey, "secret": alphaSecret}, nil)
}
