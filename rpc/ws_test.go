package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"
	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/store"
	"github.com/sourcegraph/jsonrpc2"
	jsonrpc2ws "github.com/sourcegraph/jsonrpc2/websocket"
)

// wsFixture is a real server (bbolt in a temp dir, real HTTP) with a hub
// fed by the store, and a merchant with a session.
type wsFixture struct {
	url, bearer, id, token string
	srv                    *httptest.Server
}

func newWSFixture(t *testing.T) *wsFixture {
	t.Helper()
	hub := NewHub()
	db, err := store.Open(filepath.Join(t.TempDir(), "s.db"), store.Options{OnSave: hub.Publish})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	svc := session.NewService(db)
	ctx := context.Background()
	_, cr, err := svc.AddMerchant(ctx, "shop", session.Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := svc.Authorize(ctx, cr.PublicKey, cr.Secret)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := svc.Authenticate(ctx, tok.AccessToken)
	d := session.Decimal("10")
	v, token, err := svc.Create(ctx, m, session.TypeDeposit, &session.Params{Amount: &d, CountryID: "se"})
	if err != nil {
		t.Fatal(err)
	}
	s := New(svc, Config{Hub: hub}, zerolog.Nop())
	s.SetReady(true)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return &wsFixture{url: ts.URL, bearer: tok.AccessToken, id: v.ID, token: token, srv: ts}
}

// notes collects session.changed notifications.
type notes struct {
	mu  sync.Mutex
	got []changed
	ch  chan struct{}
}

func (n *notes) Handle(ctx context.Context, c *jsonrpc2.Conn, req *jsonrpc2.Request) {
	if req.Method != "session.changed" || req.Params == nil {
		return
	}
	var v changed
	json.Unmarshal(*req.Params, &v)
	n.mu.Lock()
	n.got = append(n.got, v)
	n.mu.Unlock()
	n.ch <- struct{}{}
}

// waitFor waits until n notifications arrived, or fails after 10s.
func (n *notes) waitFor(t *testing.T, count int) []changed {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		n.mu.Lock()
		got := append([]changed(nil), n.got...)
		n.mu.Unlock()
		if len(got) >= count {
			return got
		}
		select {
		case <-n.ch:
		case <-deadline:
			t.Fatalf("got %d notifications, want %d", len(got), count)
		}
	}
}

func (f *wsFixture) dial(t *testing.T, bearer string) (*jsonrpc2.Conn, *notes) {
	t.Helper()
	h := http.Header{}
	if bearer != "" {
		h.Set("Authorization", "Bearer "+bearer)
	}
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(f.url, "http")+"/rpc/ws", h)
	if err != nil {
		t.Fatal(err)
	}
	n := &notes{ch: make(chan struct{}, 100)}
	c := jsonrpc2.NewConn(context.Background(), jsonrpc2ws.NewObjectStream(ws), n)
	t.Cleanup(func() { c.Close() })
	return c, n
}

func (f *wsFixture) move(t *testing.T, state int) {
	t.Helper()
	body := `{"jsonrpc":"2.0","id":1,"method":"client.transition","params":{"token":"` + f.token + `","state":` + itoa(state) + `}}`
	resp, err := http.Post(f.url+"/rpc", "application/json", bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct{ Error *jsonrpc2.Error }
	json.NewDecoder(resp.Body).Decode(&r)
	if r.Error != nil {
		t.Fatalf("move to %d: %v", state, r.Error)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestWebSocketSubscribe(t *testing.T) {
	f := newWSFixture(t)
	ctx := context.Background()
	conn, n := f.dial(t, f.bearer)
	var sub struct{ Subscription string }
	if err := conn.Call(ctx, "session.subscribe", map[string]string{"id": f.id}, &sub); err != nil {
		t.Fatal(err)
	}
	path := []int{1, 2, 3, 4, 5, 8, 9, 12}
	for _, st := range path {
		f.move(t, st)
	}
	got := n.waitFor(t, len(path))
	for i, st := range path {
		if got[i].State != session.State(st) || got[i].Version != i+2 || got[i].Subscription != sub.Subscription || got[i].SessionID != f.id {
			t.Errorf("notification %d: %+v, want state %d version %d", i, got[i], st, i+2)
		}
	}
	if got[len(got)-1].StateName != "STATE_COMPLETED" {
		t.Errorf("last state_name %q", got[len(got)-1].StateName)
	}

	// The same methods as /rpc work on the socket.
	var st struct{ Version int }
	if err := conn.Call(ctx, "session.state", map[string]string{"id": f.id}, &st); err != nil || st.Version != 9 {
		t.Errorf("session.state over the socket: %+v, %v", st, err)
	}
}

func TestWebSocketClientSubscribeAndUnsubscribe(t *testing.T) {
	f := newWSFixture(t)
	ctx := context.Background()
	conn, n := f.dial(t, "")
	var sub struct{ Subscription string }
	if err := conn.Call(ctx, "client.subscribe", map[string]string{"token": f.token}, &sub); err != nil {
		t.Fatal(err)
	}
	// Without a bearer, merchant methods are refused.
	var e *jsonrpc2.Error
	if err := conn.Call(ctx, "session.subscribe", map[string]string{"id": f.id}, nil); !asError(err, &e) || e.Code != CodeUnauthorized {
		t.Errorf("session.subscribe without bearer: %v, want -32001", err)
	}
	if err := conn.Call(ctx, "client.subscribe", map[string]string{"token": f.token + "x"}, nil); !asError(err, &e) || e.Code != CodeNotFound {
		t.Errorf("client.subscribe with a bad token: %v, want -32004", err)
	}
	f.move(t, 1)
	n.waitFor(t, 1)
	var ok bool
	if err := conn.Call(ctx, "session.unsubscribe", map[string]string{"subscription": sub.Subscription}, &ok); err != nil || !ok {
		t.Fatalf("unsubscribe: %v, %v", ok, err)
	}
	if err := conn.Call(ctx, "session.unsubscribe", map[string]string{"subscription": sub.Subscription}, &ok); !asError(err, &e) || e.Code != CodeNotFound {
		t.Errorf("second unsubscribe: %v, want -32004", err)
	}
	// A second subscriber proves a later change was published, and the
	// unsubscribed one got nothing more.
	conn2, n2 := f.dial(t, "")
	if err := conn2.Call(ctx, "client.subscribe", map[string]string{"token": f.token}, &sub); err != nil {
		t.Fatal(err)
	}
	f.move(t, 2)
	n2.waitFor(t, 1)
	if got := n.waitFor(t, 1); len(got) != 1 {
		t.Errorf("unsubscribed connection got %d notifications, want 1", len(got))
	}
}

func TestWebSocketLimits(t *testing.T) {
	f := newWSFixture(t)
	ctx := context.Background()
	conn, _ := f.dial(t, "")
	for i := range wsMaxSubscriptions {
		if err := conn.Call(ctx, "client.subscribe", map[string]string{"token": f.token}, nil); err != nil {
			t.Fatalf("subscription %d: %v", i, err)
		}
	}
	var e *jsonrpc2.Error
	if err := conn.Call(ctx, "client.subscribe", map[string]string{"token": f.token}, nil); !asError(err, &e) || e.Code != CodeRateLimited {
		t.Errorf("subscription past the limit: %v, want -32029", err)
	}

	// A bad bearer is refused at the upgrade.
	h := http.Header{"Authorization": {"Bearer nope"}}
	_, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(f.url, "http")+"/rpc/ws", h)
	if err == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("upgrade with a bad bearer: %v, want 401", err)
	}

	// A message over the size limit closes the socket.
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(f.url, "http")+"/rpc/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	big := `{"jsonrpc":"2.0","id":1,"method":"client.get","params":{"token":"` + strings.Repeat("x", 2<<20) + `"}}`
	ws.WriteMessage(websocket.TextMessage, []byte(big))
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := ws.ReadMessage(); err == nil {
		t.Error("the socket stayed open after an oversized message")
	}
}

// TestHubDropsSlowSubscriber fills a subscriber's queue: the next change
// disconnects it rather than buffering more.
func TestHubDropsSlowSubscriber(t *testing.T) {
	f := newWSFixture(t)
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(f.url, "http")+"/rpc/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	c := &wsConn{ws: ws, out: make(chan changed, 2), log: &zerolog.Logger{}}
	h := NewHub()
	h.add(&subscription{id: "sub_1", sessionID: "s1", conn: c})
	for v := 1; v <= 3; v++ {
		h.Publish(&session.Change{Session: &session.Session{ID: "s1", Version: v}})
	}
	if len(c.out) != 2 {
		t.Errorf("queue holds %d, want 2", len(c.out))
	}
	// kill closes the socket from a goroutine of its own: wait for it.
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := ws.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseNormalClosure) && !errors.Is(err, net.ErrClosed) {
		t.Errorf("the slow subscriber's socket: %v, want it closed", err)
	}
}

func asError(err error, e **jsonrpc2.Error) bool {
	v, ok := err.(*jsonrpc2.Error)
	*e = v
	return ok
}
