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
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"
	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/store"
	"github.com/sourcegraph/jsonrpc2"
	jsonrpc2ws "github.com/sourcegraph/jsonrpc2/websocket"
	"golang.org/x/crypto/argon2"
)

// wsFixture is a real server (bbolt in a temp dir, real HTTP) with a hub
// fed by the store, and a merchant with a session.
type wsFixture struct {
	url, bearer, id, token string
	srv                    *httptest.Server
	rpc                    *Server
}

func newWSFixture(t *testing.T) *wsFixture { return newWSFixtureWith(t, Config{}) }

func newWSFixtureWith(t *testing.T, cfg Config) *wsFixture {
	t.Helper()
	hub := NewHub()
	feed := session.NewFeed()
	following, stopFollowing := context.WithCancel(context.Background())
	go hub.Follow(following, feed.Subscribe(1<<12))
	t.Cleanup(stopFollowing)
	db, err := store.Open(filepath.Join(t.TempDir(), "s.db"), store.Options{Feed: feed})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	svc := session.NewService(db, argon2.IDKey)
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
	cfg.Hub = hub
	s := New(svc, cfg, zerolog.Nop())
	s.SetReady(true)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return &wsFixture{url: ts.URL, bearer: tok.AccessToken, id: v.ID, token: token, srv: ts, rpc: s}
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

// rawSocket is a WebSocket client that sends and reads frames as they are.
type rawSocket struct {
	t  *testing.T
	ws *websocket.Conn
}

func (f *wsFixture) rawDial(t *testing.T, bearer string) *rawSocket {
	t.Helper()
	ws, err := f.rawDialFrom(t, "127.0.0.1", bearer)
	if err != nil {
		t.Fatal(err)
	}
	return ws
}

// rawDialFrom connects from a local address of the loopback range, so that
// one test can be several clients.
func (f *wsFixture) rawDialFrom(t *testing.T, local, bearer string) (*rawSocket, error) {
	t.Helper()
	h := http.Header{}
	if bearer != "" {
		h.Set("Authorization", "Bearer "+bearer)
	}
	d := websocket.Dialer{NetDialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}).DialContext}
	ws, resp, err := d.Dial("ws"+strings.TrimPrefix(f.url, "http")+"/rpc/ws", h)
	if err != nil {
		if resp != nil {
			return nil, &upgradeError{resp.StatusCode}
		}
		return nil, err
	}
	t.Cleanup(func() { ws.Close() })
	return &rawSocket{t, ws}, nil
}

type upgradeError struct{ status int }

func (e *upgradeError) Error() string { return "upgrade refused with HTTP " + itoa(e.status) }

// roundTrip sends one frame and returns the next frame read.
func (r *rawSocket) roundTrip(msg string) string {
	r.t.Helper()
	if err := r.ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		r.t.Fatalf("write %s: %v", msg, err)
	}
	return r.read()
}

func (r *rawSocket) read() string {
	r.t.Helper()
	r.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, b, err := r.ws.ReadMessage()
	if err != nil {
		r.t.Fatalf("read: %v", err)
	}
	return string(b)
}

// TestWebSocketProtocol checks that frames get what POST /rpc bodies get
// (API.md sections 1 and 10): ids echoed as sent, batches, parse errors
// that leave the socket open, notifications unanswered.
func TestWebSocketProtocol(t *testing.T) {
	f := newWSFixture(t)
	ws := f.rawDial(t, f.bearer)
	state := `{"id":"` + f.id + `","state":0,"state_name":"STATE_CREATED","transaction_id":null,"error_code":null,"version":1}`
	for _, c := range []struct{ name, send, want string }{
		{"id -1", `{"jsonrpc":"2.0","id":-1,"method":"session.state","params":{"id":"` + f.id + `"}}`,
			`{"jsonrpc":"2.0","id":-1,"result":` + state + `}`},
		{"id null", `{"jsonrpc":"2.0","id":null,"method":"session.state","params":{"id":"` + f.id + `"}}`,
			`{"jsonrpc":"2.0","id":null,"result":` + state + `}`},
		{"id 1.5", `{"jsonrpc":"2.0","id":1.5,"method":"session.state","params":[{"id":"` + f.id + `"}]}`,
			`{"jsonrpc":"2.0","id":1.5,"result":` + state + `}`},
		{"id 18446744073709551616", `{"jsonrpc":"2.0","id":18446744073709551616,"method":"session.state","params":{"id":"` + f.id + `"}}`,
			`{"jsonrpc":"2.0","id":18446744073709551616,"result":` + state + `}`},
		{"id string", `{"jsonrpc":"2.0","id":"a","method":"session.state","params":{"id":"` + f.id + `"}}`,
			`{"jsonrpc":"2.0","id":"a","result":` + state + `}`},
		{"batch", `[{"jsonrpc":"2.0","id":1,"method":"session.state","params":{"id":"` + f.id + `"}},{"jsonrpc":"2.0","method":"session.state","params":{"id":"` + f.id + `"}},1]`,
			`[{"jsonrpc":"2.0","id":1,"result":` + state + `},{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid Request","data":{"error_name":"InvalidRequest","error_message":"a request must be an object","state":"APPLICATION_ERROR"}}}]`},
		{"not JSON", `{"jsonrpc":"2.0",`,
			`{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error","data":{"error_name":"ParseError","error_message":"the body is not valid JSON","state":"APPLICATION_ERROR"}}}`},
		{"empty frame", ``,
			`{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error","data":{"error_name":"ParseError","error_message":"the body is not valid JSON","state":"APPLICATION_ERROR"}}}`},
		{"empty batch", `[]`,
			`{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid Request","data":{"error_name":"InvalidRequest","error_message":"empty batch","state":"APPLICATION_ERROR"}}}`},
		{"jsonrpc 1.0", `{"jsonrpc":"1.0","id":7,"method":"session.state","params":{"id":"` + f.id + `"}}`,
			`{"jsonrpc":"2.0","id":7,"error":{"code":-32600,"message":"Invalid Request","data":{"error_name":"InvalidRequest","error_message":"jsonrpc must be exactly \"2.0\"","state":"APPLICATION_ERROR"}}}`},
		{"params a scalar", `{"jsonrpc":"2.0","id":8,"method":"session.state","params":3}`,
			`{"jsonrpc":"2.0","id":8,"error":{"code":-32602,"message":"Invalid params","data":{"error_name":"InvalidParams","error_message":"params must be an object, [] or [{…}]","state":"APPLICATION_ERROR","field":"params"}}}`},
	} {
		if got := ws.roundTrip(c.send); got != c.want {
			t.Errorf("%s: got\n%s\nwant\n%s", c.name, got, c.want)
		}
	}

	// A notification gets no answer: the next frame is the next request's.
	ws.ws.WriteMessage(websocket.TextMessage, []byte(`{"jsonrpc":"2.0","method":"session.state","params":{"id":"`+f.id+`"}}`))
	if got := ws.roundTrip(`{"jsonrpc":"2.0","id":9,"method":"session.state","params":{"id":"` + f.id + `"}}`); !strings.HasPrefix(got, `{"jsonrpc":"2.0","id":9,`) {
		t.Errorf("after a notification: %s, want the answer to id 9", got)
	}
}

// TestWebSocketEchoes sends what must not come back as sent (issue: an id
// that is not UTF-8 was echoed byte for byte, a 1 MB method name in full):
// every answer is valid JSON in valid UTF-8, and names are cut short.
func TestWebSocketEchoes(t *testing.T) {
	f := newWSFixture(t)
	ws := f.rawDial(t, "")
	got := ws.roundTrip("{\"jsonrpc\":\"2.0\",\"id\":\"a\xff\xfeb\",\"method\":\"rpc.discover\",\"params\":{\"x\":1}}")
	if !utf8.ValidString(got) || !json.Valid([]byte(got)) {
		t.Errorf("answer to an id that is not UTF-8 is not valid JSON: %q", got)
	}
	if want := `"id":"a\ufffd\ufffdb"`; !strings.Contains(got, `"id":"a`+"\uFFFD\uFFFD"+`b"`) {
		t.Errorf("got %s, want the id with U+FFFD for each bad byte (%s)", got, want)
	}

	long := strings.Repeat("é", 300_000)
	got = ws.roundTrip(`{"jsonrpc":"2.0","id":1,"method":"` + long + `"}`)
	if len(got) > 1024 || !utf8.ValidString(got) || !strings.Contains(got, `"code":-32601`) {
		t.Errorf("unknown long method: %d bytes, %.200s", len(got), got)
	}

	// Over HTTP the same holds.
	resp, err := http.Post(f.url+"/rpc", "application/json", strings.NewReader("{\"jsonrpc\":\"2.0\",\"id\":\"\xc3\",\"method\":\"x"+long+"\"}"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	if b := buf.Bytes(); len(b) > 1024 || !utf8.Valid(b) || !json.Valid(b) {
		t.Errorf("POST /rpc: %d bytes, valid UTF-8 %v, valid JSON %v: %.200q", len(b), utf8.Valid(b), json.Valid(b), b)
	}
}

// TestWebSocketAuthenticate: a socket opened without a bearer serves only
// client.*, rpc.discover and subscriptions until merchant.authenticate.
func TestWebSocketAuthenticate(t *testing.T) {
	f := newWSFixture(t)
	ws := f.rawDial(t, "")
	unauthorized := func(name, msg string) {
		t.Helper()
		got := ws.roundTrip(msg)
		if !strings.Contains(got, `"code":-32001`) || !strings.Contains(got, `"error_name":"Unauthorized"`) {
			t.Errorf("%s on an anonymous socket: %s, want -32001", name, got)
		}
	}
	unauthorized("session.get", `{"jsonrpc":"2.0","id":1,"method":"session.get","params":{"id":"`+f.id+`"}}`)
	unauthorized("session.subscribe", `{"jsonrpc":"2.0","id":1,"method":"session.subscribe","params":{"id":"`+f.id+`"}}`)
	unauthorized("merchant.authorize", `{"jsonrpc":"2.0","id":1,"method":"merchant.authorize","params":{"public_key":"a","secret":"b"}}`)
	unauthorized("a bad token", `{"jsonrpc":"2.0","id":1,"method":"merchant.authenticate","params":{"access_token":"nope"}}`)
	if got := ws.roundTrip(`{"jsonrpc":"2.0","id":1,"method":"client.get","params":{"token":"` + f.token + `"}}`); !strings.Contains(got, `"result":{`) {
		t.Errorf("client.get on an anonymous socket: %s", got)
	}
	if got := ws.roundTrip(`{"jsonrpc":"2.0","id":2,"method":"merchant.authenticate","params":[{"access_token":"` + f.bearer + `"}]}`); got != `{"jsonrpc":"2.0","id":2,"result":true}` {
		t.Fatalf("merchant.authenticate: %s", got)
	}
	if got := ws.roundTrip(`{"jsonrpc":"2.0","id":3,"method":"session.get","params":{"id":"` + f.id + `"}}`); !strings.Contains(got, `"result":{"id":"`+f.id+`"`) {
		t.Errorf("session.get after merchant.authenticate: %s", got)
	}
	got := ws.roundTrip(`{"jsonrpc":"2.0","id":4,"method":"session.subscribe","params":{"id":"` + f.id + `"}}`)
	if got != `{"jsonrpc":"2.0","id":4,"result":{"subscription":"sub_1"}}` {
		t.Fatalf("session.subscribe after merchant.authenticate: %s", got)
	}
	f.move(t, 1)
	if got := ws.read(); got != `{"jsonrpc":"2.0","method":"session.changed","params":{"subscription":"sub_1","session_id":"`+f.id+`","state":1,"state_name":"STATE_AUTHENTICATION_STARTED","version":2,"error_code":null}}` {
		t.Errorf("notification: %s", got)
	}

	// The socket-only methods are unknown on POST /rpc.
	resp, err := http.Post(f.url+"/rpc", "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"merchant.authenticate","params":{"access_token":"`+f.bearer+`"}}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct{ Error *jsonrpc2.Error }
	json.NewDecoder(resp.Body).Decode(&r)
	if r.Error == nil || r.Error.Code != jsonrpc2.CodeMethodNotFound {
		t.Errorf("merchant.authenticate over HTTP: %+v, want -32601", r.Error)
	}
}

// TestWebSocketAnonymousCaps fills the anonymous pool (the attack: 4096
// anonymous sockets shut every merchant out): merchants still get in, an
// address cannot take the whole pool, and a socket that authenticates
// gives its anonymous slot back.
func TestWebSocketAnonymousCaps(t *testing.T) {
	f := newWSFixtureWith(t, Config{WSMaxSockets: 2, WSMaxAnonymous: 3, WSMaxAnonymousPerAddr: 2})
	refused := func(local, bearer string) {
		t.Helper()
		_, err := f.rawDialFrom(t, local, bearer)
		var ue *upgradeError
		if !errors.As(err, &ue) || ue.status != http.StatusTooManyRequests {
			t.Errorf("socket from %s (bearer %v): %v, want HTTP 429", local, bearer != "", err)
		}
	}
	open := func(local, bearer string) *rawSocket {
		t.Helper()
		ws, err := f.rawDialFrom(t, local, bearer)
		if err != nil {
			t.Fatalf("socket from %s (bearer %v): %v", local, bearer != "", err)
		}
		return ws
	}
	a1 := open("127.0.0.1", "")
	open("127.0.0.1", "")
	refused("127.0.0.1", "") // the address's share
	open("127.0.0.2", "")
	refused("127.0.0.3", "") // the whole anonymous pool

	m := open("127.0.0.3", f.bearer) // merchants still get in
	if got := m.roundTrip(`{"jsonrpc":"2.0","id":1,"method":"session.state","params":{"id":"` + f.id + `"}}`); !strings.Contains(got, `"result"`) {
		t.Errorf("merchant socket: %s", got)
	}

	// Authenticating moves a socket to the merchants' pool (one place left).
	if got := a1.roundTrip(`{"jsonrpc":"2.0","id":1,"method":"merchant.authenticate","params":{"access_token":"` + f.bearer + `"}}`); got != `{"jsonrpc":"2.0","id":1,"result":true}` {
		t.Fatalf("merchant.authenticate: %s", got)
	}
	open("127.0.0.3", "")
	refused("127.0.0.4", "")
	refused("127.0.0.4", f.bearer) // the merchants' pool is full too

	// A closed socket gives its slot back.
	m.ws.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ws, err := f.rawDialFrom(t, "127.0.0.4", f.bearer)
		if err == nil {
			ws.ws.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no merchant slot after a merchant socket closed: %v", err)
		}
	}
}

// callLog is an Observer that records the methods called.
type callLog struct {
	mu    sync.Mutex
	calls []string
}

func (o *callLog) ObserveCall(method string, code int64, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls = append(o.calls, method+" "+itoa(int(code)))
}

// TestWebSocketMethodsObserved: the socket's own methods run through the
// method table, so metrics see them as they see every other call.
func TestWebSocketMethodsObserved(t *testing.T) {
	obs := &callLog{}
	f := newWSFixtureWith(t, Config{Observer: obs})
	ws := f.rawDial(t, "")
	ws.roundTrip(`{"jsonrpc":"2.0","id":1,"method":"client.subscribe","params":{"token":"` + f.token + `"}}`)
	ws.roundTrip(`{"jsonrpc":"2.0","id":2,"method":"session.unsubscribe","params":{"subscription":"sub_9"}}`)
	ws.roundTrip(`{"jsonrpc":"2.0","id":3,"method":"merchant.authenticate","params":{"access_token":"` + f.bearer + `"}}`)
	obs.mu.Lock()
	defer obs.mu.Unlock()
	want := []string{"client.subscribe 0", "session.unsubscribe -32004", "merchant.authenticate 0"}
	if strings.Join(obs.calls, ",") != strings.Join(want, ",") {
		t.Errorf("observed %q, want %q", obs.calls, want)
	}
}

// TestWebSocketPanic: a method that panics on a socket is recovered as on
// POST /rpc: -32603 to the client, counted by the observer, and the
// socket stays open.
func TestWebSocketPanic(t *testing.T) {
	obs := &callLog{}
	f := newWSFixtureWith(t, Config{Observer: obs})
	f.rpc.methods["test.panic"] = method{false, func(context.Context, *request) (any, error) { panic("boom") }}
	ws := f.rawDial(t, f.bearer)
	want := `{"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":"Internal error.","data":{"error_name":"InternalError","error_message":"Internal error.","state":"APPLICATION_ERROR"}}}`
	if got := ws.roundTrip(`{"jsonrpc":"2.0","id":1,"method":"test.panic"}`); got != want {
		t.Errorf("panicking method: %s, want %s", got, want)
	}
	if got := ws.roundTrip(`{"jsonrpc":"2.0","id":2,"method":"session.state","params":{"id":"` + f.id + `"}}`); !strings.Contains(got, `"result"`) {
		t.Errorf("after the panic: %s", got)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.calls) == 0 || obs.calls[0] != "test.panic -32603" {
		t.Errorf("observed %q, want the panic counted as -32603", obs.calls)
	}
}
