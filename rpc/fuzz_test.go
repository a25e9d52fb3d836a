package rpc_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
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

// FuzzWebSocketMessage sends arbitrary frames on one real socket (with a
// merchant's bearer) and checks what must hold for every message (API.md
// section 10): the socket stays open, the message gets at most one answer,
// and that answer is valid JSON in valid UTF-8 shaped as a POST /rpc
// answer, with no internal error logged. After each message a sentinel
// request proves the socket still reads and that no second answer came.
// The seeds are the request bodies of rpc/testdata/*.txt.
func FuzzWebSocketMessage(f *testing.F) {
	ts := mustServer(f, testConfig())
	ts.Srv.SetReady(true)
	fx := mustFixture(f, ts)
	for _, file := range caseFiles(f) {
		for _, c := range loadCases(f, file) {
			for _, ex := range c.exchanges {
				if ex.method == http.MethodPost && ex.path == "/rpc" {
					if body, err := fx.fillRequest(ex.body); err == nil {
						f.Add([]byte(body))
					}
				}
			}
		}
	}
	f.Add([]byte("{\"jsonrpc\":\"2.0\",\"id\":\"\xff\",\"method\":\"rpc.discover\"}"))
	f.Add([]byte(`{"jsonrpc":"2.0","id":1,"method":"merchant.authenticate","params":{"access_token":"` + fx["token"] + `"}}`))
	f.Add([]byte(`{"jsonrpc":"2.0","id":1,"method":"client.subscribe","params":[{"token":"` + fx["session_token"] + `"}]}`))

	url := "ws" + strings.TrimPrefix(ts.URL, "http") + "/rpc/ws"
	h := http.Header{"Authorization": {"Bearer " + fx["token"]}}
	var ws *websocket.Conn
	dial := func(t testing.TB) {
		var err error
		if ws, _, err = websocket.DefaultDialer.Dial(url, h); err != nil {
			t.Fatalf("dial: %v", err)
		}
	}
	dial(f)
	f.Cleanup(func() { ws.Close() })
	f.Fuzz(func(t *testing.T, msg []byte) {
		if len(msg) > testMaxBody {
			return // past the read limit the socket closes, by design
		}
		errorsBefore := ts.log.errorCount()
		if err := ws.WriteMessage(websocket.TextMessage, msg); err != nil {
			t.Fatalf("write: %v", err)
		}
		if err := ws.WriteMessage(websocket.TextMessage, []byte(wsSentinel)); err != nil {
			t.Fatalf("write the sentinel: %v", err)
		}
		var answers [][]byte
		for {
			ws.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, b, err := ws.ReadMessage()
			if err != nil {
				ws.Close()
				dial(t)
				t.Fatalf("the socket closed: %v\nmessage: %q", err, msg)
			}
			if bytes.Contains(b, []byte(`"id":"ws-replay-sentinel"`)) && bytes.HasPrefix(b, []byte(`{"jsonrpc":"2.0","id":"ws-replay-sentinel","error"`)) {
				break
			}
			answers = append(answers, b)
		}
		// Notifications of subscriptions the fuzzer made may come too; at
		// most one frame is an answer.
		n := 0
		for _, b := range answers {
			if !utf8.Valid(b) || !json.Valid(b) {
				t.Errorf("a frame that is not valid JSON in UTF-8: %q\nmessage: %q", b, msg)
				continue
			}
			if bytes.HasPrefix(b, []byte(`{"jsonrpc":"2.0","method":"session.changed"`)) {
				continue
			}
			n++
			for _, err := range checkRPCBody(b) {
				t.Errorf("%v\nmessage: %q\nanswer: %s", err, msg, b)
			}
		}
		if n > 1 {
			t.Errorf("%d answers to one message: %q", n, msg)
		}
		if n := ts.log.errorCount(); n != errorsBefore {
			t.Errorf("the server logged %d errors\nmessage: %q\nlog:\n%s", n-errorsBefore, msg, ts.log.String())
		}
	})
}
