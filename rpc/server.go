// Package rpc serves sessiond over HTTP: JSON-RPC 2.0 on /rpc (single
// requests and batches), the same methods Brite-style on /api/<method>, and
// the health endpoints. It adapts session.Service to the wire, and holds the
// one table that maps session error codes to JSON-RPC codes and HTTP
// statuses. It is the only package that imports jsonrpc2.
package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"mime"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/rs/xid"
	"github.com/rs/zerolog"
	"github.com/rs/zerolog/hlog"
	"github.com/sessiond/sessiond/session"
	"github.com/sourcegraph/jsonrpc2"
)

// Config holds the transport's settings.
type Config struct {
	// PublicURL is the base of the hosted page's URL in create results,
	// without a trailing slash.
	PublicURL string
	// MaxBody caps a request body; 0 means 1 MiB.
	MaxBody int64
	// MaxBatch caps the entries of a batch; 0 means 100.
	MaxBatch int
	// SessionWarning is how long before expiry the hosted page warns.
	SessionWarning time.Duration
	// Hub carries committed changes to WebSocket subscribers; nil for a
	// server without subscriptions.
	Hub *Hub
	// Sandbox serves the sandbox's own methods.
	Sandbox bool
	// Controls are the sandbox's test controls behind sandbox.reset and
	// the rest; a Sandbox server without them answers those -32603.
	Controls SandboxControls
	// Observer, if set, is told of every call.
	Observer Observer
	// MaxResponse caps the bytes of results one answer may carry (a batch's
	// together); entries past it are refused, not run. 0 means 2 MiB.
	MaxResponse int64
	// BodyTimeout bounds the time to receive a request body, which is read
	// before the request may take one of MaxInflight's slots. 0 means 10s.
	BodyTimeout time.Duration
	// MaxInflight caps the HTTP requests served at once on /rpc and /api;
	// past it a request waits up to InflightWait, then gets -32029.
	// 0 means no cap.
	MaxInflight  int
	InflightWait time.Duration
	// RateLimit caps each merchant's calls per second (-32029 past it);
	// 0 means no limit.
	RateLimit float64
	// WSMaxSockets caps the WebSocket connections that act for a merchant
	// (0 means 4096); WSMaxAnonymous, the smaller pool of those that do
	// not (0 means 1024), so that anonymous sockets cannot shut merchants
	// out; WSMaxAnonymousPerAddr, those of one client address (0 means 32).
	// Past a cap the upgrade is answered HTTP 429.
	WSMaxSockets          int
	WSMaxAnonymous        int
	WSMaxAnonymousPerAddr int
	// StrictParams refuses params the API does not list (-32602
	// UnknownParameter) instead of ignoring them.
	StrictParams bool
	// WireCache caps the bytes of encoded sessions kept to answer reads
	// of unchanged sessions; 0 means 32 MiB, negative none.
	WireCache int
}

// Observer is told of every JSON-RPC call, whatever the transport: its
// method, its result code (0 for success) and how long it took.
type Observer interface {
	ObserveCall(method string, code int64, d time.Duration)
}

// Server is the HTTP face of a session.Service. Create it with New.
type Server struct {
	svc     *session.Service
	cfg     Config
	log     zerolog.Logger
	methods map[string]method
	names   map[string]string // each method's name, to look up without allocating one
	ready   atomic.Bool
	mounts  map[string]http.Handler
	hub     *Hub
	limits  *merchantLimits
	wire    *wireCache
}

// New returns a Server for svc that logs to log. It reports not ready
// until SetReady(true).
func New(svc *session.Service, cfg Config, log zerolog.Logger) *Server {
	if cfg.MaxBody == 0 {
		cfg.MaxBody = 1 << 20
	}
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = 100
	}
	if cfg.MaxResponse == 0 {
		cfg.MaxResponse = 2 << 20
	}
	if cfg.BodyTimeout == 0 {
		cfg.BodyTimeout = 10 * time.Second
	}
	if cfg.SessionWarning == 0 {
		cfg.SessionWarning = 2 * time.Minute
	}
	cfg.PublicURL = strings.TrimSuffix(cfg.PublicURL, "/")
	if cfg.Hub == nil {
		cfg.Hub = NewHub()
	}
	if cfg.InflightWait == 0 {
		cfg.InflightWait = 100 * time.Millisecond
	}
	if cfg.WSMaxSockets == 0 {
		cfg.WSMaxSockets = wsMaxSockets
	}
	if cfg.WSMaxAnonymous == 0 {
		cfg.WSMaxAnonymous = wsMaxAnonymous
	}
	if cfg.WSMaxAnonymousPerAddr == 0 {
		cfg.WSMaxAnonymousPerAddr = wsMaxAnonymousAddr
	}
	s := &Server{svc: svc, cfg: cfg, log: log, hub: cfg.Hub, limits: newMerchantLimits(cfg.RateLimit), wire: newWireCache(cfg.WireCache)}
	s.methods = s.methodTable()
	for name, m := range s.wsMethodTable() {
		s.methods[name] = m
	}
	s.names = make(map[string]string, len(s.methods))
	for name := range s.methods {
		s.names[name] = name
	}
	return s
}

// Mount serves pattern (a net/http ServeMux pattern) with h, behind the
// same request ids, access logs and panic recovery as the RPC endpoints.
// Call it before Handler.
func (s *Server) Mount(pattern string, h http.Handler) {
	if s.mounts == nil {
		s.mounts = map[string]http.Handler{}
	}
	s.mounts[pattern] = h
}

// SetReady sets what /readyz answers.
func (s *Server) SetReady(ready bool) { s.ready.Store(ready) }

// Handler returns the HTTP handler of every endpoint, with request ids and
// access logs.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /rpc", s.readFirst(admit(s.cfg.MaxInflight, s.cfg.InflightWait, http.HandlerFunc(s.serveRPC))))
	mux.HandleFunc("GET /rpc/ws", s.serveWS)
	mux.HandleFunc("/rpc", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, errorBody("MethodNotAllowed", "use POST"))
	})
	mux.Handle("POST /api/{method}", s.readFirst(admit(s.cfg.MaxInflight, s.cfg.InflightWait, http.HandlerFunc(s.serveAPI))))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !s.ready.Load() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})

	for pattern, h := range s.mounts {
		mux.Handle(pattern, h)
	}

	var h http.Handler = mux
	h = s.recoverHandler(h)
	h = hlog.AccessHandler(accessLog)(h)
	return s.withRequest(h)
}

// callInfo collects, for the access log, the methods one HTTP request
// called.
type callInfo struct {
	methods []string
	first   [1]string // methods' room for the one method of most requests
}

type callInfoKey struct{}

// withRequest gives each request what the access log and every later log
// line of the request need, in one copy of the request: a logger with the
// client's address and a request id (hlog's, an xid, also sent as
// X-Request-Id), the id itself for hlog.IDFromRequest, and the callInfo.
// hlog's NewHandler, RemoteIPHandler and RequestIDHandler do the same in
// three copies of the request and two of the logger's fields.
func (s *Server) withRequest(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := xid.New()
		ids := id.String()
		lc := s.log.With()
		if ip := remoteIP(r.RemoteAddr); ip != "" {
			lc = lc.Str("client_ip", ip) // the client's, once a trusted proxy's X-Forwarded-For is applied
		}
		l := lc.Str("req_id", ids).Logger()
		ci := &callInfo{}
		ci.methods = ci.first[:0]
		ctx := context.WithValue(hlog.CtxWithID(l.WithContext(r.Context()), id), callInfoKey{}, ci)
		w.Header()["X-Request-Id"] = []string{ids}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// remoteIP is the host of a request's RemoteAddr, as hlog.RemoteIPHandler
// logs it.
func remoteIP(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}

// maxMethodName is how much of a method name errors and logs show: the
// names come from the client.
const maxMethodName = 64

// truncate cuts s to at most n bytes, on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// noteMethod records a called method for the access log: at most 10 per
// request, each truncated.
func noteMethod(ctx context.Context, m string) {
	m = truncate(m, maxMethodName)
	if ci, ok := ctx.Value(callInfoKey{}).(*callInfo); ok && len(ci.methods) < 10 {
		ci.methods = append(ci.methods, m)
	}
}

func accessLog(r *http.Request, status, size int, d time.Duration) {
	e := hlog.FromRequest(r).Info().
		Str("http_method", r.Method).
		Str("path", accessPath(r)).
		Int("status", status).
		Int("size", size).
		Dur("duration", d)
	if ci, ok := r.Context().Value(callInfoKey{}).(*callInfo); ok && len(ci.methods) > 0 {
		e = e.Strs("methods", ci.methods)
	}
	e.Msg("request")
}

// accessPath keeps end-user tokens, which are credentials, out of the log.
func accessPath(r *http.Request) string {
	if strings.HasPrefix(r.URL.Path, "/client/") {
		return "/client/…"
	}
	return r.URL.Path
}

func (s *Server) recoverHandler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				hlog.FromRequest(r).Error().Interface("panic", v).Bytes("stack", debug.Stack()).Msg("panic")
				writeJSON(w, http.StatusInternalServerError, errorBody(session.NameInternalError, "Internal error."))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// readBody checks the Content-Type and the size of a request body and
// returns it; on failure it has written the answer.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, fail func(status int, e *rpcError)) ([]byte, bool) {
	if ct := r.Header.Get("Content-Type"); ct != "" && ct != "application/json" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			fail(http.StatusUnsupportedMediaType, errInvalidRequest("Content-Type must be application/json"))
			return nil, false
		}
	}
	if rb, ok := r.Body.(*bufferedBody); ok { // read already, within MaxBody
		return rb.b, true
	}
	body, err := readAll(w, r, s.cfg.MaxBody)
	if isTooBig(err) {
		fail(http.StatusRequestEntityTooLarge, errInvalidRequest("request body larger than the limit"))
		return nil, false
	}
	if err != nil {
		fail(http.StatusBadRequest, errInvalidRequest("could not read the request body"))
		return nil, false
	}
	return body, true
}

// response is a JSON-RPC response whose id is kept as the raw JSON the
// client sent (jsonrpc2.ID cannot hold null, negative or fractional ids).
type response struct {
	id     json.RawMessage
	result json.RawMessage
	err    *jsonrpc2.Error
}

var nullID = json.RawMessage("null")

func (r *response) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"jsonrpc":"2.0","id":`)
	if r.id == nil {
		b.Write(nullID)
	} else {
		b.Write(r.id)
	}
	if r.err != nil {
		e, err := json.Marshal(r.err)
		if err != nil {
			return nil, err
		}
		b.WriteString(`,"error":`)
		b.Write(e)
	} else {
		b.WriteString(`,"result":`)
		if r.result == nil {
			b.Write(nullID)
		} else {
			b.Write(r.result)
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func (s *Server) serveRPC(w http.ResponseWriter, r *http.Request) {
	body, ok := s.readBody(w, r, func(status int, e *rpcError) {
		writeJSON(w, status, &response{err: e.rpc})
	})
	if !ok {
		return
	}
	if v := s.newCaller(r).exchange(r.Context(), body); v != nil {
		writeJSON(w, http.StatusOK, v)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// exchange runs one JSON-RPC message, a request or a batch, from a POST
// /rpc body or a WebSocket frame, and returns what answers it: a
// *response, a []*response, or nil when there is nothing to answer
// (notifications only).
func (c *caller) exchange(ctx context.Context, body []byte) any {
	body = bytes.TrimSpace(body)
	if !json.Valid(body) {
		return &response{err: errParse("the body is not valid JSON").rpc}
	}
	if len(body) == 0 || body[0] != '[' {
		if resp := c.handle(ctx, body); resp != nil {
			return resp
		}
		return nil
	}
	var batch []json.RawMessage
	if err := json.Unmarshal(body, &batch); err != nil {
		return &response{err: errParse("the body is not valid JSON").rpc}
	}
	switch {
	case len(batch) == 0:
		return &response{err: errInvalidRequest("empty batch").rpc}
	case len(batch) > c.s.cfg.MaxBatch:
		return &response{err: errInvalidRequest("batch larger than the limit").rpc}
	}
	resps := make([]*response, 0, len(batch))
	for _, raw := range batch {
		if resp := c.handle(ctx, raw); resp != nil {
			resps = append(resps, resp)
		}
	}
	if len(resps) == 0 {
		return nil
	}
	return resps
}

// handle runs one request object and returns its response, or nil for a
// notification. Members are looked up by their exact names: JSON-RPC
// member names are case-sensitive, and encoding/json's are not. raw is
// valid JSON (serveRPC checked the whole body).
func (c *caller) handle(ctx context.Context, raw json.RawMessage) *response {
	var id, version, method, params json.RawMessage
	hasID := false
	err := members(raw, func(name string, v []byte) error {
		switch name {
		case "id":
			id, hasID = v, true
		case "jsonrpc":
			version = v
		case "method":
			method = v
		case "params":
			params = v
		}
		return nil
	})
	if err != nil {
		return &response{err: errInvalidRequest("a request must be an object").rpc}
	}
	if hasID && !validID(id) {
		return &response{err: errInvalidRequest("id must be a string, a number or null").rpc}
	}
	if hasID {
		id = wellFormedID(id)
	}
	if string(version) != `"2.0"` { // else as nearly every client sends it
		if v, err := unquote(version); err != nil || v != "2.0" {
			return &response{id: id, err: errInvalidRequest(`jsonrpc must be exactly "2.0"`).rpc}
		}
	}
	if !isString(method) {
		return &response{id: id, err: errInvalidRequest("method must be a string").rpc}
	}
	name, ok := c.s.names[string(method[1:len(method)-1])] // a known name, without escapes
	if !ok {
		if name, err = unquote(method); err != nil {
			return &response{id: id, err: errInvalidRequest("method must be a string").rpc}
		}
	}
	resp := &response{id: id}
	var e *rpcError
	if resp.result, e = c.call(ctx, name, params); e != nil {
		resp.err = e.rpc
	}
	if !hasID {
		return nil // a notification: executed, not answered
	}
	return resp
}

func isString(v json.RawMessage) bool { return len(v) > 0 && v[0] == '"' }

// wellFormedID returns an id as sent, unless it is a string holding bytes
// that are not UTF-8: JSON text must be UTF-8, so such an id is answered
// with each bad byte replaced by U+FFFD, the way encoding/json reads it.
func wellFormedID(id json.RawMessage) json.RawMessage {
	if !isString(id) || utf8.Valid(id) {
		return id
	}
	var s string
	if json.Unmarshal(id, &s) != nil {
		return nullID
	}
	b, err := json.Marshal(s)
	if err != nil {
		return nullID
	}
	return b
}

func validID(id json.RawMessage) bool {
	switch id[0] {
	case '"', 'n':
		return true
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return true
	}
	return false
}

// caller runs the calls of one HTTP request or WebSocket message: it knows
// the client's address and authenticates the bearer once for all entries
// of a batch.
type caller struct {
	s      *Server
	r      *http.Request
	client session.Client
	bearer string
	ws     *wsConn // the socket the message came on; nil for HTTP

	authed   bool
	merchant *session.Merchant
	authErr  error
	spent    int64 // bytes of results so far, against MaxResponse
}

func (s *Server) newCaller(r *http.Request) *caller {
	c := &caller{s: s, r: r, client: session.Client{UserAgent: r.UserAgent()}}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		c.client.IP = host
	}
	if scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		c.bearer = strings.TrimSpace(token)
	}
	return c
}

// authenticate returns the merchant of the bearer, authenticated once per
// caller, and counts each call against the merchant's rate limit.
func (c *caller) authenticate(ctx context.Context) (*session.Merchant, error) {
	if !c.authed {
		c.merchant, c.authErr = c.s.svc.Authenticate(ctx, c.bearer)
		c.authed = true
	}
	if c.authErr == nil && !c.s.limits.allow(c.merchant.ID) {
		return nil, errRateLimited
	}
	return c.merchant, c.authErr
}

// call runs one method and returns its result as JSON, or its error as
// the wire shows it. Internal errors and panics are logged here, once.
func (c *caller) call(ctx context.Context, name string, params json.RawMessage) (result json.RawMessage, rerr *rpcError) {
	noteMethod(c.r.Context(), name)
	if o := c.s.cfg.Observer; o != nil {
		start := time.Now()
		defer func() {
			var code int64
			if rerr != nil {
				code = rerr.rpc.Code
			}
			if _, known := c.s.methods[name]; !known {
				name = "unknown" // keep label values bounded
			}
			o.ObserveCall(name, code, time.Since(start))
		}()
	}
	defer func() {
		if v := recover(); v != nil {
			hlog.FromRequest(c.r).Error().Str("method", name).Interface("panic", v).Bytes("stack", debug.Stack()).Msg("panic in method")
			result, rerr = nil, toRPCError(errors.New("panic"))
		}
	}()
	m, ok := c.s.methods[name]
	if !ok || (wsOnly(name) && c.ws == nil) {
		return nil, errMethodNotFound(name)
	}
	if c.ws != nil {
		if c.bearer == "" && !anonymousOK(name) {
			return nil, c.fail(name, errSocketAnonymous)
		}
		ctx = context.WithValue(ctx, wsConnKey{}, c.ws)
	}
	params, ok = namedParams(params)
	if !ok {
		return nil, errInvalidParams("params must be an object, [] or [{…}]", "params")
	}
	var merchant *session.Merchant
	if m.needsMerchant(name, c.bearer != "") {
		var err error
		if merchant, err = c.authenticate(ctx); err != nil {
			return nil, c.fail(name, err)
		}
	}
	if c.spent > c.s.cfg.MaxResponse {
		return nil, errResponseTooLarge() // the answer is full: run nothing more
	}
	v, err := m.fn(ctx, &request{merchant: merchant, client: c.client, params: params, strict: c.s.cfg.StrictParams})
	if err != nil {
		return nil, c.fail(name, err)
	}
	b, err := encodeResult(v)
	if err != nil {
		return nil, c.fail(name, err)
	}
	if !c.spend(len(b)) {
		return nil, errResponseTooLarge()
	}
	return b, nil
}

// namedParams returns the named params of a request: an object as given,
// nothing for [] and the one object of [{…}], the shape go-ethereum,
// filecoin's go-jsonrpc and OpenRPC's client-js send. Anything else is not
// ok. p is valid JSON.
func namedParams(p json.RawMessage) (json.RawMessage, bool) {
	if p == nil {
		return nil, true
	}
	switch p[0] {
	case '{':
		return p, true
	case '[':
		i := skipSpace(p, 1)
		if i < len(p) && p[i] == ']' {
			return nil, true
		}
		if i < len(p) && p[i] == '{' {
			end := valueEnd(p, i)
			if j := skipSpace(p, end); j == len(p)-1 && p[j] == ']' {
				return p[i:end], true
			}
		}
	}
	return nil, false
}

func (c *caller) fail(method string, err error) *rpcError {
	e := toRPCError(err)
	if e.rpc.Code != jsonrpc2.CodeInternalError {
		return e
	}
	if done := c.r.Context().Err(); done != nil && errors.Is(err, done) {
		// The request's connection closed before the call was done (the
		// client went away): nothing went wrong here, and nobody reads
		// the answer.
		hlog.FromRequest(c.r).Info().Str("method", method).Msg("request abandoned: its connection closed")
		return e
	}
	hlog.FromRequest(c.r).Error().Err(err).Str("method", method).Msg("internal error")
	return e
}

// encodeJSON encodes a response, a batch of them, or any other value.
func encodeJSON(v any) ([]byte, error) {
	switch v := v.(type) {
	case *response: // already compact JSON: skip json.Marshal's second pass over it
		return v.MarshalJSON()
	case []*response:
		return marshalBatch(v)
	}
	return json.Marshal(v)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	switch v := v.(type) { // written as they are, never built whole
	case []*response:
		writeBatch(w, status, v)
		return
	case *response:
		setJSON(w.Header())
		w.WriteHeader(status)
		bp := getBuffer()
		*bp = append(v.appendTo(*bp), '\n')
		w.Write(*bp)
		putBuffer(bp)
		return
	}
	b, err := encodeJSON(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error_name":"InternalError","error_message":"Internal error.","state":"APPLICATION_ERROR"}`)
	}
	setJSON(w.Header())
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func marshalBatch(rs []*response) ([]byte, error) {
	b := []byte{'['}
	for i, r := range rs {
		if i > 0 {
			b = append(b, ',')
		}
		rb, err := r.MarshalJSON()
		if err != nil {
			return nil, err
		}
		b = append(b, rb...)
	}
	return append(b, ']'), nil
}

func errorBody(name, message string) errorData {
	return errorData{ErrorName: name, ErrorMessage: message, State: "APPLICATION_ERROR"}
}
