package rpc

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"
	"github.com/rs/zerolog/hlog"
	"github.com/sessiond/sessiond/session"
	"github.com/sourcegraph/jsonrpc2"
	jsonrpc2ws "github.com/sourcegraph/jsonrpc2/websocket"
)

// WebSocket limits.
const (
	wsMaxConnections   = 4096             // per server
	wsMaxSubscriptions = 100              // per connection
	wsQueue            = 256              // notifications waiting per connection; past it the reader is too slow
	wsWriteTimeout     = 10 * time.Second // for one message
	wsPongWait         = 60 * time.Second // a connection silent this long is dead
	wsPingEvery        = 25 * time.Second
)

// Hub fans committed session changes out to WebSocket subscribers. Its
// Publish is meant for store.Options.OnSave: it never blocks, and since the
// store calls it in commit order, each subscriber sees a session's changes
// in version order.
type Hub struct {
	mu     sync.Mutex
	subs   map[string]map[*subscription]struct{} // by session id
	conns  map[*wsConn]struct{}
	closed bool
}

// NewHub returns an empty Hub.
func NewHub() *Hub {
	return &Hub{subs: map[string]map[*subscription]struct{}{}, conns: map[*wsConn]struct{}{}}
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

// join registers a connection; false if the hub is closed or full.
func (h *Hub) join(c *wsConn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || len(h.conns) >= wsMaxConnections {
		return false
	}
	h.conns[c] = struct{}{}
	return true
}

// leave forgets a connection and its subscriptions.
func (h *Hub) leave(c *wsConn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.conns, c)
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

// wsConn is one WebSocket client.
type wsConn struct {
	s    *Server
	r    *http.Request // the upgrade request: bearer, address, logger
	ws   *websocket.Conn
	rpc  *jsonrpc2.Conn
	out  chan changed
	log  *zerolog.Logger
	once sync.Once

	mu     sync.Mutex
	subs   map[string]*subscription
	nextID int
}

var upgrader = websocket.Upgrader{ReadBufferSize: 4096, WriteBufferSize: 4096}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	// A bearer, if given, must be good now; the methods check it again on
	// every call, since tokens expire while sockets stay open.
	if c := s.newCaller(r); c.bearer != "" {
		if _, err := c.authenticate(r.Context()); err != nil {
			e := toRPCError(err)
			writeJSON(w, e.status, e.data)
			return
		}
	}
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	ws.SetReadLimit(s.cfg.MaxBody)
	ws.SetReadDeadline(time.Now().Add(wsPongWait))
	ws.SetPongHandler(func(string) error { return ws.SetReadDeadline(time.Now().Add(wsPongWait)) })

	c := &wsConn{s: s, r: r, ws: ws, out: make(chan changed, wsQueue), subs: map[string]*subscription{}, log: hlog.FromRequest(r)}
	if !s.hub.join(c) {
		c.kill("server shutting down or full")
		return
	}
	// The HTTP request's context ends when this handler returns; the
	// connection lives until the socket closes.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	c.rpc = jsonrpc2.NewConn(ctx, deadlineStream{jsonrpc2ws.NewObjectStream(ws), ws}, c, jsonrpc2.SetLogger(wsLogger{c.log}))
	go c.writeLoop(ctx)
	<-c.rpc.DisconnectNotify()
	c.kill("closed")
	c.mu.Lock()
	s.hub.leave(c)
	c.mu.Unlock()
}

// wsLogger sends jsonrpc2's own messages (protocol errors of a client) to
// the request's logger at debug level, instead of the standard logger.
type wsLogger struct{ log *zerolog.Logger }

func (l wsLogger) Printf(format string, v ...any) { l.log.Debug().Msgf(format, v...) }

// deadlineStream bounds each write, so a client that stops reading is
// disconnected instead of holding a goroutine forever.
type deadlineStream struct {
	jsonrpc2ws.ObjectStream
	ws *websocket.Conn
}

func (d deadlineStream) WriteObject(obj any) error {
	d.ws.SetWriteDeadline(time.Now().Add(wsWriteTimeout))
	return d.ObjectStream.WriteObject(obj)
}

func (c *wsConn) writeLoop(ctx context.Context) {
	ping := time.NewTicker(wsPingEvery)
	defer ping.Stop()
	for {
		select {
		case n := <-c.out:
			if err := c.rpc.Notify(ctx, "session.changed", n); err != nil {
				c.kill("write failed")
				return
			}
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(wsWriteTimeout)); err != nil {
				c.kill("ping failed")
				return
			}
		case <-c.rpc.DisconnectNotify():
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

// Handle runs one JSON-RPC request from the socket (jsonrpc2.Handler).
func (c *wsConn) Handle(ctx context.Context, conn *jsonrpc2.Conn, req *jsonrpc2.Request) {
	var params json.RawMessage
	if req.Params != nil {
		params = *req.Params
	}
	var result json.RawMessage
	var e *rpcError
	caller := c.s.newCaller(c.r)
	switch req.Method {
	case "session.subscribe", "client.subscribe", "session.unsubscribe":
		noteMethod(c.r.Context(), req.Method)
		v, err := c.subscribeMethod(ctx, caller, req.Method, params)
		if err == nil {
			result, err = json.Marshal(v)
		}
		if err != nil {
			e = caller.fail(req.Method, err)
		}
	default:
		result, e = caller.call(ctx, req.Method, params)
	}
	if req.Notif {
		return
	}
	if e != nil {
		conn.ReplyWithError(ctx, req.ID, e.rpc)
		return
	}
	conn.Reply(ctx, req.ID, result)
}

func (c *wsConn) subscribeMethod(ctx context.Context, caller *caller, method string, params json.RawMessage) (any, error) {
	switch method {
	case "session.unsubscribe":
		var p struct {
			Subscription string `json:"subscription"`
		}
		if err := decodeParams(params, &p); err != nil {
			return nil, err
		}
		if err := required("subscription", p.Subscription); err != nil {
			return nil, err
		}
		c.mu.Lock()
		sub, ok := c.subs[p.Subscription]
		delete(c.subs, p.Subscription)
		c.mu.Unlock()
		if !ok {
			return nil, session.ErrNotFound
		}
		c.s.hub.remove(sub)
		return true, nil
	case "session.subscribe":
		m, err := caller.authenticate(ctx)
		if err != nil {
			return nil, err
		}
		id, err := paramID(params)
		if err != nil {
			return nil, err
		}
		v, err := c.s.svc.Get(ctx, m, id)
		if err != nil {
			return nil, err
		}
		return c.subscribe(v.ID)
	default: // client.subscribe
		token, err := paramToken(params)
		if err != nil {
			return nil, err
		}
		v, err := c.s.svc.SessionOfToken(ctx, token)
		if err != nil {
			return nil, err
		}
		return c.subscribe(v.ID)
	}
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

var _ jsonrpc2.Handler = (*wsConn)(nil)
