package rpc_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
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

// TestResponseCap: results past MaxResponse are refused with -32600, and
// entries after the cap is reached are not run at all.
func TestResponseCap(t *testing.T) {
	doc, err := os.ReadFile("openrpc.json")
	if err != nil {
		t.Fatal(err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, doc); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.MaxBatch, cfg.MaxResponse = 100, int64(compact.Len())*3/2 // room for one discovery document
	ts := mustServer(t, cfg)
	fx := mustFixture(t, ts)
	body := fx.fill(`[{"jsonrpc":"2.0","id":1,"method":"rpc.discover"},
		{"jsonrpc":"2.0","id":2,"method":"rpc.discover"},
		{"jsonrpc":"2.0","id":3,"method":"session.create_deposit","params":{"amount":"1","country_id":"se","merchant_reference":"after-cap"}}]`)
	status, b := ts.rawCall(t, fx["token"], []byte(body))
	var resps []struct {
		ID     int
		Result json.RawMessage
		Error  *rpcError
	}
	if err := json.Unmarshal(b, &resps); status != http.StatusOK || err != nil || len(resps) != 3 {
		t.Fatalf("batch: %d %.300s (%v)", status, b, err)
	}
	if resps[0].Error != nil || len(resps[0].Result) != compact.Len() {
		t.Errorf("first discover: %v, want the document", resps[0].Error)
	}
	for _, r := range resps[1:] {
		if r.Error == nil || r.Error.Code != -32600 {
			t.Errorf("entry %d past the cap: %v, want -32600", r.ID, r.Error)
		}
	}
	var found struct{ Sessions []any }
	ts.mustCall(t, fx["token"], "session.get_by_merchant_reference", map[string]string{"merchant_reference": "after-cap"}, &found)
	if len(found.Sessions) != 0 {
		t.Errorf("the create past the cap ran: %d sessions", len(found.Sessions))
	}
}

// TestDeclaredBodyTooLarge: a Content-Length over MaxBody is answered in
// the endpoint's style before any of the body is sent: 413 on /rpc, 400 on
// /api, whose statuses are Brite's (API.md section 7).
func TestDeclaredBodyTooLarge(t *testing.T) {
	ts := mustServer(t, testConfig())
	for path, want := range map[string]int{"/rpc": http.StatusRequestEntityTooLarge, "/api/session.get": http.StatusBadRequest} {
		pr, pw := io.Pipe() // a body that never comes
		req, _ := http.NewRequest(http.MethodPost, ts.URL+path, pr)
		req.ContentLength = 1 << 40
		req.Header.Set("Content-Type", "application/json")
		resp, err := ts.HTTP.Do(req)
		pw.Close()
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || !bytes.Contains(b, []byte(`"InvalidRequest"`)) {
			t.Errorf("%s with Content-Length 2^40: %d %s, want %d InvalidRequest", path, resp.StatusCode, b, want)
		}
	}
}

// FuzzServeAPI posts arbitrary bodies to POST /api/<method>, with a
// merchant's bearer, for a spread of methods: no panic and no internal
// error logged, a status of the Brite wire style (API.md section 7), and
// a body that is JSON: the bare result on 200, Brite's error body else.
func FuzzServeAPI(f *testing.F) {
	ts := mustServer(f, testConfig())
	ts.Srv.SetReady(true)
	fx := mustFixture(f, ts)
	methods := []string{"session.get", "session.create_deposit", "session.state", "session.get_by_merchant_reference",
		"client.get", "client.transition", "merchant.authorize", "rpc.discover", "transaction.list", "no.such"}
	for i, body := range []string{`{}`, `{"id":"` + fx["session_id"] + `"}`, `{"amount":"50.00","country_id":"se"}`,
		`{"token":"` + fx["session_token"] + `","state":1}`, `{"merchant_reference":"order-1"}`, `[]`, `null`, `{"id":`, ``} {
		f.Add(uint8(i), []byte(body))
	}
	h := ts.Srv.Handler()
	bearer := "Bearer " + fx["token"]
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		method := methods[int(which)%len(methods)]
		errorsBefore := ts.log.errorCount()
		req := httptest.NewRequest(http.MethodPost, "/api/"+method, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", bearer)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		got := rec.Body.Bytes()
		switch rec.Code {
		case http.StatusOK:
			if !json.Valid(got) {
				t.Errorf("%s: 200 with a body that is not JSON: %q\nrequest: %q", method, got, body)
			}
		case http.StatusBadRequest, http.StatusUnauthorized, http.StatusNotFound, http.StatusTooManyRequests:
			var e struct {
				ErrorName string `json:"error_name"`
				State     string `json:"state"`
			}
			if json.Unmarshal(got, &e) != nil || e.ErrorName == "" || e.State != "APPLICATION_ERROR" {
				t.Errorf("%s: HTTP %d with %q, want Brite's error body\nrequest: %q", method, rec.Code, got, body)
			}
		default:
			t.Errorf("%s: HTTP %d, want a Brite wire status\nrequest: %q\nresponse: %s", method, rec.Code, body, got)
		}
		if n := ts.log.errorCount(); n != errorsBefore {
			t.Errorf("%s: the server logged %d errors\nrequest: %q\nlog:\n%s", method, n-errorsBefore, body, ts.log.String())
		}
	})
}

// TestClientGoneIsNotAnInternalError: a create whose client has gone (its
// request's context ended) stores nothing and is logged as abandoned, at
// level info, not as an internal error: an operator's error log is for
// what went wrong on the server.
func TestClientGoneIsNotAnInternalError(t *testing.T) {
	ts := mustServer(t, testConfig())
	ts.Srv.SetReady(true)
	fx := mustFixture(t, ts)
	errorsBefore := ts.log.errorCount()

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	body := `{"jsonrpc":"2.0","id":1,"method":"session.create_deposit","params":{"amount":"1","country_id":"se","merchant_reference":"gone"}}`
	req := httptest.NewRequest(http.MethodPost, "/rpc", bytes.NewReader([]byte(body))).WithContext(ctx)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+fx["token"])
	ts.Srv.Handler().ServeHTTP(httptest.NewRecorder(), req)

	if n := ts.log.errorCount() - errorsBefore; n != 0 {
		t.Errorf("a request whose client had gone logged %d errors: %q", n, ts.log.errorLines())
	}
	if !strings.Contains(ts.log.String(), `"method":"session.create_deposit","message":"request abandoned`) {
		t.Errorf("no line says the request was abandoned; log:\n%s", ts.log.String())
	}
	var found struct{ Sessions []json.RawMessage }
	ts.mustCall(t, fx["token"], "session.get_by_merchant_reference", map[string]string{"merchant_reference": "gone"}, &found)
	if len(found.Sessions) != 0 {
		t.Errorf("the abandoned create stored %d sessions", len(found.Sessions))
	}
}
