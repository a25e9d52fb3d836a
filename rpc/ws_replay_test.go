package rpc_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestConformanceWebSocket replays the cases of rpc/testdata/*.txt over
// GET /rpc/ws (API.md section 10: the same engine as POST /rpc). Each
// exchange that POST /rpc answers with 200 or 204 is sent as one text
// frame on a socket opened with the exchange's Authorization header, and
// must get the same answer: the expected body for 200, no frame for 204.
// Other exchanges (the /api style, health, the HTTP limits of 413 and
// 415) are HTTP's own and go over HTTP as in TestConformance. A case
// marked "http-only: reason" is skipped here.
func TestConformanceWebSocket(t *testing.T) {
	for _, file := range caseFiles(t) {
		cases := loadCases(t, file)
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			t.Parallel()
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					if c.skip != "" && os.Getenv("SESSIOND_RUN_SKIPPED") == "" {
						t.Skipf("%s:%d: %s", file, c.line, c.skip)
					}
					if c.httpOnly != "" {
						t.Skipf("%s:%d: HTTP only: %s", file, c.line, c.httpOnly)
					}
					cfg := testConfig()
					cfg.StrictParams = c.strict
					ts := mustServer(t, cfg)
					fx := mustFixture(t, ts)
					ts.Srv.SetReady(c.ready)
					for _, ex := range c.exchanges {
						if ex.method == http.MethodPost && ex.path == "/rpc" && (ex.status == http.StatusOK || ex.status == http.StatusNoContent) {
							ts.replayWS(t, fx, file, ex)
						} else {
							ts.replay(t, fx, file, ex)
						}
					}
					if lines := ts.log.errorLines(); len(lines) > 0 {
						t.Errorf("%s:%d: the server logged errors:\n%s", file, c.line, strings.Join(lines, "\n"))
					}
				})
			}
		})
	}
}

// wsSentinel follows a frame that must get no answer: the next frame read
// must be the sentinel's.
const wsSentinel = `{"jsonrpc":"2.0","id":"ws-replay-sentinel","method":"rpc.discover","params":[[]]}`

func (ts *testServer) replayWS(t *testing.T, fx fixture, file string, ex *exchange) {
	t.Helper()
	at := fmt.Sprintf("%s:%d (WebSocket)", file, ex.line)
	body, err := fx.fillRequest(ex.body)
	if err != nil {
		t.Fatalf("%s: %v", at, err)
	}
	// The request's headers go on the upgrade: the bearer, and what the
	// server records of the end user (User-Agent).
	h := http.Header{}
	for _, hd := range ex.header {
		if strings.EqualFold(hd.name, "Content-Type") {
			continue
		}
		v, err := fx.fillRequest(hd.value)
		if err != nil {
			t.Fatalf("%s: %v", at, err)
		}
		h.Add(hd.name, v)
	}
	url := "ws" + strings.TrimPrefix(ts.URL, "http") + "/rpc/ws"
	ws, resp, err := websocket.DefaultDialer.Dial(url, h)
	if err != nil && resp != nil && resp.StatusCode == http.StatusUnauthorized {
		// A bad bearer is refused at the upgrade; a client goes on without
		// one, and merchant methods answer -32001 as on POST /rpc.
		ws, _, err = websocket.DefaultDialer.Dial(url, nil)
	}
	if err != nil {
		t.Fatalf("%s: dial: %v", at, err)
	}
	defer ws.Close()
	send := func(msg string) {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatalf("%s: write: %v", at, err)
		}
	}
	read := func() []byte {
		ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, b, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("%s: read: %v", at, err)
		}
		return b
	}
	send(body)
	if ex.status == http.StatusNoContent {
		send(wsSentinel)
		if got := read(); !bytes.Contains(got, []byte(`"id":"ws-replay-sentinel"`)) {
			t.Errorf("%s: got %s, want no answer", at, got)
		}
		return
	}
	got := read()
	for _, text := range ex.contains {
		if w := fx.fill(text); !bytes.Contains(got, []byte(w)) {
			t.Errorf("%s: got %s, want it to contain %s", at, got, w)
		}
	}
	switch ex.wantBody {
	case anyBody:
	case "":
		t.Errorf("%s: a 200 exchange without an expected body", at)
	default:
		m := &matching{now: ts.Clock.Now()}
		if diff, err := m.diff([]byte(fx.fill(ex.wantBody)), got); err != nil {
			t.Errorf("%s: %v", at, err)
		} else if diff != "" {
			t.Errorf("%s: response mismatch (-want +got):\n%s\ngot body: %s", at, diff, got)
		}
	}
	errs := checkRPCBody(got)
	errs = append(errs, checkIDs([]byte(body), got)...)
	for _, err := range errs {
		t.Errorf("%s: %v\nbody: %s", at, err, got)
	}
	if errors.Join(errs...) == nil && ws.WriteMessage(websocket.PingMessage, nil) != nil {
		t.Errorf("%s: the socket closed after the answer", at)
	}
}
