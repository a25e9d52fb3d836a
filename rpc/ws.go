package rpc

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"
	"github.com/rs/zerolog/hlog"
	"github.com/sessiond/sessiond/session"
)

// WebSocket limits. The socket caps are defaults of Config.
const (
	wsMaxSockets       = 4096             // merchant sockets per server
	wsMaxAnonymous     = 1024             // sockets without a merchant, per server
	wsMaxAnonymousAddr = 32               // sockets without a merchant, per client address
	wsMaxSubscriptions = 100              // per connection
	wsQueue            = 256              // notifications waiting per connection; past it the reader is too slow
	wsWriteTimeout     = 10 * time.Second // for one message
	wsPongWait         = 60 * time.Second // a connection silent this long is dead
	wsPingEvery        = 25 * time.Second
)

// Hub fans committed session changes out to WebSocket subscribers, and
// counts the open sockets against their caps. It follows the domain's
// change feed (Follow), which delivers changes in commit order, so each
// subscriber sees a session's changes in version order; Publish never
// blocks.
type Hub struct {
	mu     sync.Mutex
	subs   map[string]map[*subscription]struct{} // by session id
	conns  map[*wsConn]struct{}
	closed bool

	merchants int            // sockets that act for a merchant
	anonymous int            // the others
	anonBy    map[string]int // the others, by client address
}

// NewHub returns an empty Hub.
func NewHub() *Hub {
	return &Hub{subs: map[string]map[*subscription]struct{}{}, conns: map[*wsConn]struct{}{}, anonBy: map[string]int{}}
}

// Connections returns the number of open WebSocket connections.
func (h *Hub) Connections() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

// Close closes every WebSocket connection, and any opened later.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for c := range h.conns {
		c.kill("server shutting down")
	}
}

// wsCaps are the socket caps of one server.
type wsCaps struct{ merchants, anonymous, anonymousAddr int }

// admit takes a slot for a socket about to open: from the merchants' pool
// when it acts for a merchant, else from the smaller anonymous one, which
// also caps each client address; false if the hub is closed or the pool
// full. A socket that leaves gives its slot back.
func (h *Hub) admit(c *wsConn, caps wsCaps) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.closed:
		return false
	case !c.anonymous:
		if h.merchants >= caps.merchants {
			return false
		}
		h.merchants++
	default:
		if h.anonymous >= caps.anonymous || h.anonBy[c.addr] >= caps.anonymousAddr {
			return false
		}
		h.anonymous++
		h.anonBy[c.addr]++
	}
	return true
}

// release gives back a socket's slot.
func (h *Hub) release(c *wsConn) {
	if !c.anonymous {
		h.merchants--
		return
	}
	h.anonymous--
	if h.anonBy[c.addr]--; h.anonBy[c.addr] <= 0 {
		delete(h.anonBy, c.addr)
	}
}

// promote moves an anonymous socket that authenticated to the merchants'
// pool, when it has room, so that it frees its anonymous slot.
func (h *Hub) promote(c *wsConn, caps wsCaps) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c.anonymous && h.merchants < caps.merchants {
		h.release(c)
		c.anonymous = false
		h.merchants++
	}
}

// join registers an admitted, open connection; false if the hub closed
// meanwhile.
func (h *Hub) join(c *wsConn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.conns[c] = struct{}{}
	return true
}

// leave forgets a connection and its subscriptions, and gives back its slot.
func (h *Hub) leave(c *wsConn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.conns, c)
	h.release(c)
	for _, sub := range c.subs {
		if m := h.subs[sub.sessionID]; m != nil {
			delete(m, sub)
			if len(m) == 0 {
				delete(h.subs, sub.sessionID)
			}
		}
	}
}

// changed is the params of a session.changed notification.
type changed struct {
	Subscription string        `json:"subscription"`
	SessionID    string        `json:"session_id"`
	State        session.State `json:"state"`
	StateName    string        `json:"state_name"`
	Version      int           `json:"version"`
	ErrorCode    *string       `json:"error_code"`
}

// Follow publishes every change taken from sub until ctx is done or sub is
// closed. If the feed dropped changes because the hub fell behind, every
// socket is disconnected: its subscriber would otherwise miss a change.
func (h *Hub) Follow(ctx context.Context, sub *session.Subscription) {
	sub.Follow(ctx, h.Publish, func(int) {
		h.mu.Lock()
		defer h.mu.Unlock()
		for c := range h.conns {
			c.kill("missed changes")
		}
	})
}

// Publish queues a session.changed notification for every subscriber of
// the change's session. A subscriber whose queue is full is disconnected.
func (h *Hub) Publish(c *session.Change) {
	s := c.Session
	if s == nil {
		return // a transaction alone changed
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub := range h.subs[s.ID] {
		n := changed{sub.id, s.ID, s.State, s.State.String(), s.Version, optString(s.ErrorCode)}
		select {
		case sub.conn.out <- n:
		default:
			sub.conn.kill("subscriber too slow")
		}
	}
}

func (h *Hub) add(sub *subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.subs[sub.sessionID]
	if m == nil {
		m = map[*subscription]struct{}{}
		h.subs[sub.sessionID] = m
	}
	m[sub] = struct{}{}
}

func (h *Hub) remove(sub *subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if m := h.subs[sub.sessionID]; m != nil {
		delete(m, sub)
		if len(m) == 0 {
			delete(h.subs, sub.sessionID)
		}
	}
}

type subscription struct {
	id        string
	sessionID string
	conn      *wsConn
}

// wsConn is one WebSocket client. Its messages run one at a time, in
// order, through the same caller as POST /rpc.
type wsConn struct {
	s    *Server
	r    *http.Request // the upgrade request: address, user agent, logger
	ws   *websocket.Conn
	out  chan changed
	done chan struct{} // closed when the reader stops
	log  *zerolog.Logger
	once sync.Once
	addr string // the client's address, for the anonymous cap

	anonymous bool // which pool the socket counts in; guarded by the hub's mu

	writeMu sync.Mutex // one writer at a time: responses and notifications

	mu     sync.Mutex
	bearer string // from the upgrade's Authorization header or merchant.authenticate
	subs   map[string]*subscription
	nextID int
}

var upgrader = websocket.Upgrader{ReadBufferSize: 4096, WriteBufferSize: 4096}

func (s *Server) wsCaps() wsCaps {
	return wsCaps{s.cfg.WSMaxSockets, s.cfg.WSMaxAnonymous, s.cfg.WSMaxAnonymousPerAddr}
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	// A bearer, if given, must be good now; the methods check it again on
	// every call, since tokens expire while sockets stay open.
	first := s.newCaller(r)
	if first.bearer != "" {
		if _, err := first.authenticate(r.Context()); err != nil {
			e := toRPCError(err)
			writeJSON(w, e.status, e.data)
			return
		}
	}
	c := &wsConn{
		s: s, r: r, out: make(chan changed, wsQueue), done: make(chan struct{}),
		subs: map[string]*subscription{}, log: hlog.FromRequest(r),
		addr: first.client.IP, bearer: first.bearer, anonymous: first.bearer == "",
	}
	if !s.hub.admit(c, s.wsCaps()) {
		writeJSON(w, http.StatusTooManyRequests, errorBody(session.NameRateLimited, "too many WebSocket connections"))
		return
	}
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.hub.mu.Lock()
		s.hub.release(c)
		s.hub.mu.Unlock()
		return // the upgrader has answered
	}
	c.ws = ws
	ws.SetReadLimit(s.cfg.MaxBody)
	ws.SetReadDeadline(time.Now().Add(wsPongWait))
	ws.SetPongHandler(func(string) error { return ws.SetReadDeadline(time.Now().Add(wsPongWait)) })
	if !s.hub.join(c) {
		c.kill("server shutting down")
		s.hub.leave(c)
		return
	}
	// The HTTP request's context ends when this handler returns; the
	// connection lives until the socket closes.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	go c.writeLoop()
	c.readLoop(ctx)
	cancel()
	close(c.done)
	c.kill("closed")
	c.mu.Lock()
	s.hub.leave(c)
	c.mu.Unlock()
}

// readLoop answers the socket's messages until it closes: each text or
// binary frame is one JSON-RPC message (a request or a batch), handled
// exactly as a POST /rpc body. A frame that is not JSON gets its -32700
// answer and the socket stays open.
func (c *wsConn) readLoop(ctx context.Context) {
	for {
		_, msg, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		c.ws.SetReadDeadline(time.Now().Add(wsPongWait))
		b := c.handle(ctx, msg)
		if b == nil {
			continue
		}
		if err := c.write(b); err != nil {
			return
		}
	}
}

// handle runs one message and returns the encoded answer, or nil when
// there is none (notifications only).
func (c *wsConn) handle(ctx context.Context, msg []byte) []byte {
	cl := c.s.newCaller(c.r)
	cl.ws = c
	c.mu.Lock()
	cl.bearer = c.bearer
	c.mu.Unlock()
	v := cl.exchange(ctx, msg)
	if v == nil {
		return nil
	}
	b, err := encodeJSON(v)
	if err != nil {
		c.log.Error().Err(err).Msg("encode response")
		b, _ = encodeJSON(&response{err: toRPCError(err).rpc})
	}
	return b
}

func (c *wsConn) write(b []byte) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	c.ws.SetWriteDeadline(time.Now().Add(wsWriteTimeout))
	return c.ws.WriteMessage(websocket.TextMessage, b)
}

// notification is a session.changed message.
type notification struct {
	JSONRPC string  `json:"jsonrpc"`
	Method  string  `json:"method"`
	Params  changed `json:"params"`
}

func (c *wsConn) writeLoop() {
	ping := time.NewTicker(wsPingEvery)
	defer ping.Stop()
	for {
		select {
		case n := <-c.out:
			b, err := json.Marshal(notification{"2.0", "session.changed", n})
			if err == nil {
				err = c.write(b)
			}
			if err != nil {
				c.kill("write failed")
				return
			}
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(wsWriteTimeout)); err != nil {
				c.kill("ping failed")
				return
			}
		case <-c.done:
			return
		}
	}
}

// kill closes the connection once; safe from any goroutine, and it never
// blocks: Publish calls it on the store's committer. The close frame may
// wait for a writer stuck on this very (slow) client, so it is sent from a
// goroutine of its own, which closes the socket within a second.
func (c *wsConn) kill(reason string) {
	c.once.Do(func() {
		c.log.Debug().Str("reason", reason).Msg("websocket closed")
		go func() {
			c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, reason), time.Now().Add(time.Second))
			c.ws.Close()
		}()
	})
}

// The methods served on sockets only, in the one method table.
func (s *Server) wsMethodTable() map[string]method {
	return map[string]method{
		"merchant.authenticate": {false, s.wsAuthenticate},
		"session.subscribe":     {true, s.sessionSubscribe},
		"client.subscribe":      {false, s.clientSubscribe},
		"session.unsubscribe":   {false, s.unsubscribe},
	}
}

// wsOnly reports whether a method is served on sockets only.
func wsOnly(name string) bool {
	switch name {
	case "merchant.authenticate", "session.subscribe", "client.subscribe", "session.unsubscribe":
		return true
	}
	return false
}

// anonymousOK reports whether a socket that acts for no merchant may call
// a method: API.md allows the end user's methods, discovery and the
// socket's own; merchant methods would fail on the missing bearer anyway.
func anonymousOK(name string) bool {
	return strings.HasPrefix(name, "client.") || name == "rpc.discover" || wsOnly(name)
}

var errSocketAnonymous = session.Errorf(session.CodeUnauthorized, session.NameUnauthorized,
	"this socket acts for no merchant: send a bearer on the upgrade or call merchant.authenticate")

type wsConnKey struct{}

// connOf returns the socket a call came on (the caller puts it in ctx).
func connOf(ctx context.Context) *wsConn {
	c, _ := ctx.Value(wsConnKey{}).(*wsConn)
	return c
}

// wsAuthenticate makes the socket act for the merchant of an access token.
func (s *Server) wsAuthenticate(ctx context.Context, r *request) (any, error) {
	var p struct {
		AccessToken string `json:"access_token"`
	}
	if err := r.decode(&p); err != nil {
		return nil, err
	}
	if err := required("access_token", p.AccessToken); err != nil {
		return nil, err
	}
	if _, err := s.svc.Authenticate(ctx, p.AccessToken); err != nil {
		return nil, err
	}
	c := connOf(ctx)
	c.mu.Lock()
	c.bearer = p.AccessToken
	c.mu.Unlock()
	s.hub.promote(c, s.wsCaps())
	return true, nil
}

func (s *Server) sessionSubscribe(ctx context.Context, r *request) (any, error) {
	id, err := r.id()
	if err != nil {
		return nil, err
	}
	v, err := s.svc.Get(ctx, r.merchant, id)
	if err != nil {
		return nil, err
	}
	return connOf(ctx).subscribe(v.ID)
}

func (s *Server) clientSubscribe(ctx context.Context, r *request) (any, error) {
	token, err := r.token()
	if err != nil {
		return nil, err
	}
	v, err := s.svc.SessionOfToken(ctx, token)
	if err != nil {
		return nil, err
	}
	return connOf(ctx).subscribe(v.ID)
}

func (s *Server) unsubscribe(ctx context.Context, r *request) (any, error) {
	var p struct {
		Subscription string `json:"subscription"`
	}
	if err := r.decode(&p); err != nil {
		return nil, err
	}
	if err := required("subscription", p.Subscription); err != nil {
		return nil, err
	}
	c := connOf(ctx)
	c.mu.Lock()
	sub, ok := c.subs[p.Subscription]
	delete(c.subs, p.Subscription)
	c.mu.Unlock()
	if !ok {
		return nil, session.ErrNotFound
	}
	s.hub.remove(sub)
	return true, nil
}

func (c *wsConn) subscribe(sessionID string) (any, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.subs) >= wsMaxSubscriptions {
		return nil, session.Errorf(session.CodeRateLimited, session.NameRateLimited, "at most %d subscriptions per connection", wsMaxSubscriptions)
	}
	c.nextID++
	sub := &subscription{id: "sub_" + strconv.Itoa(c.nextID), sessionID: sessionID, conn: c}
	c.subs[sub.id] = sub
	c.s.hub.add(sub)
	return map[string]string{"subscription": sub.id}, nil
}
