package rpc_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzServeRPC posts arbitrary bodies to POST /rpc, with a merchant's
// bearer, on a real server and database, and checks what must hold for
// every body (API.md section 1): no panic and no internal error, a status
// of 200, 204, 413 or 415, and a 200 body that is one JSON-RPC response
// object or a non-empty array of them, each with "jsonrpc":"2.0", exactly
// one of result and error, and Brite's error data. (Ids echoed byte for
// byte are checked by TestConformance: known bugs, skipped there, would
// stop the fuzzer at once.) The seeds are the request bodies of rpc/testdata/*.txt,
// filled from the fixture, and rpc/testdata/fuzz/FuzzServeRPC.
func FuzzServeRPC(f *testing.F) {
	ts := mustServer(f, testConfig())
	ts.Srv.SetReady(true)
	fx := mustFixture(f, ts)
	for _, file := range caseFiles(f) {
		for _, c := range loadCases(f, file) {
			for _, ex := range c.exchanges {
				if ex.method != http.MethodPost || ex.path != "/rpc" {
					continue
				}
				body, err := fx.fillRequest(ex.body)
				if err != nil {
					f.Fatalf("%s: %s: %v", file, c.name, err)
				}
				f.Add([]byte(body))
			}
		}
	}
	// Requests go to the handler directly, without a network, for speed.
	h := ts.Srv.Handler()
	bearer := "Bearer " + fx["token"]
	f.Fuzz(func(t *testing.T, body []byte) {
		errorsBefore := ts.log.errorCount()
		req := httptest.NewRequest(http.MethodPost, "/rpc", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", bearer)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		got := rec.Body.Bytes()

		switch rec.Code {
		case http.StatusOK:
			for _, err := range checkRPCBody(got) {
				t.Errorf("%v\nrequest: %q\nresponse: %s", err, body, got)
			}
		case http.StatusNoContent:
			if len(got) != 0 {
				t.Errorf("got a body with HTTP 204: %q\nrequest: %q", got, body)
			}
		case http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
		default:
			t.Errorf("got HTTP %d, want one of 200 204 413 415\nrequest: %q\nresponse: %s", rec.Code, body, got)
		}
		if n := ts.log.errorCount(); n != errorsBefore {
			t.Errorf("the server logged %d errors (internal error or panic)\nrequest: %q\nresponse: %s\nlog:\n%s", n-errorsBefore, body, got, ts.log.String())
		}
	})
}
