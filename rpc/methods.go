package rpc

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"net/http"
	"unicode/utf8"

	"github.com/sessiond/sessiond/session"
)

// request is what a method gets: its params, the merchant when the method
// needs one (authenticated already), and the end user's request details.
type request struct {
	merchant *session.Merchant
	client   session.Client
	params   json.RawMessage
	strict   bool // refuse unknown params (serve --strict-params)
}

// decode decodes the params into v (see decodeParamsMode).
func (r *request) decode(v any) error { return decodeParamsMode(r.params, v, r.strict) }

// method is one entry of the method table.
type method struct {
	merchant bool // needs a merchant's bearer token (see bearerOptional)
	fn       func(ctx context.Context, r *request) (any, error)
}

// bearerOptional names the merchant methods a call may also make without
// a bearer: session.get_by_token, whose token is the credential (Brite
// integrations call it without one). With a bearer, the bearer must be
// good and the method acts for its merchant.
var bearerOptional = map[string]bool{"session.get_by_token": true}

// needsMerchant reports whether a call of the named method, with or
// without a bearer, must authenticate it before the method runs.
func (m method) needsMerchant(name string, hasBearer bool) bool {
	return m.merchant && (hasBearer || !bearerOptional[name])
}

func (s *Server) methodTable() map[string]method {
	t := map[string]method{
		"merchant.authorize":                   {false, s.authorize},
		"merchant.token":                       {false, s.refresh},
		"session.create":                       {true, s.create},
		"session.get":                          {true, s.get},
		"session.state":                        {true, s.state},
		"session.get_by_token":                 {true, s.getByToken},
		"session.get_by_merchant_reference":    {true, s.getByReference},
		"session.approve":                      {true, s.approve},
		"session.reject":                       {true, s.reject},
		"session.callbacks":                    {true, s.callbacks},
		"transaction.get":                      {true, s.transactionGet},
		"transaction.state":                    {true, s.transactionState},
		"transaction.get_by_merchantreference": {true, s.transactionsByReference},
		"transaction.list":                     {true, s.transactionList},
		"transaction.create_withdrawal":        {true, s.createPayout},
		"transaction.create_refund":            {true, s.createRefund},
		"transaction.approve":                  {true, s.transactionApprove},
		"transaction.reject":                   {true, s.transactionReject},
		"bank.list":                            {true, s.bankList},
		"bank_account.create":                  {true, s.accountCreate},
		"bank_account.get":                     {true, s.accountGet},
		"bank_account.list":                    {true, s.accountList},
		"client.get":                           {false, s.clientGet},
		"client.transition":                    {false, s.clientTransition},
		"rpc.discover":                         {false, s.discover},
	}
	for _, typ := range session.Types {
		t["session.create_"+string(typ)] = method{true, s.createOf(typ)}
	}
	if s.cfg.Sandbox {
		t["sandbox.transaction_transition"] = method{true, s.transactionTransition}
		s.sandboxMethods(t)
	}
	return t
}

// openRPC is the OpenRPC document of every method, served by rpc.discover.
//
//go:embed openrpc.json
var openRPC json.RawMessage

func (s *Server) discover(ctx context.Context, r *request) (any, error) {
	if err := r.decode(&struct{}{}); err != nil {
		return nil, err
	}
	return discoverResult, nil
}

// tokensResult is the answer of merchant.authorize and merchant.token.
type tokensResult struct {
	AccessToken  string   `json:"access_token"`
	RefreshToken string   `json:"refresh_token"`
	Expires      unixTime `json:"expires"`
}

func tokensOf(t *session.Tokens) *tokensResult {
	return &tokensResult{AccessToken: t.AccessToken, RefreshToken: t.RefreshToken, Expires: unixTime(t.Expires)}
}

func (s *Server) authorize(ctx context.Context, r *request) (any, error) {
	var p struct {
		PublicKey string `json:"public_key"`
		Secret    string `json:"secret"`
	}
	if err := r.decode(&p); err != nil {
		return nil, err
	}
	if err := required("public_key", p.PublicKey, "secret", p.Secret); err != nil {
		return nil, err
	}
	t, err := s.svc.AuthorizeFrom(ctx, r.client, p.PublicKey, p.Secret)
	if err != nil {
		return nil, err
	}
	return tokensOf(t), nil
}

func (s *Server) refresh(ctx context.Context, r *request) (any, error) {
	var p struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	if err := r.decode(&p); err != nil {
		return nil, err
	}
	if err := required("access_token", p.AccessToken, "refresh_token", p.RefreshToken); err != nil {
		return nil, err
	}
	t, err := s.svc.Refresh(ctx, p.AccessToken, p.RefreshToken)
	if err != nil {
		return nil, err
	}
	return tokensOf(t), nil
}

// createResult is the answer of the create methods.
type createResult struct {
	ID    string `json:"id"`
	Token string `json:"token"`
	URL   string `json:"url"`
}

func (s *Server) createOf(typ session.Type) func(context.Context, *request) (any, error) {
	return func(ctx context.Context, r *request) (any, error) {
		var p session.Params
		if err := r.decode(&p); err != nil {
			return nil, err
		}
		return s.createSession(ctx, r.merchant, typ, &p)
	}
}

// typeParam is session.create's type: the wire number or the name.
type typeParam struct {
	raw json.RawMessage
}

func (t *typeParam) UnmarshalJSON(b []byte) error {
	t.raw = append(json.RawMessage(nil), b...)
	return nil
}

// parse returns the session type; InvalidParams for anything but a known
// number or name.
func (t *typeParam) parse() (session.Type, error) {
	var name string
	if json.Unmarshal(t.raw, &name) != nil {
		var n json.Number
		if json.Unmarshal(t.raw, &n) != nil {
			name = "?"
		} else {
			name = n.String()
		}
	}
	typ, ok := session.TypeOf(name)
	if !ok {
		return "", session.FieldError(session.NameInvalidParams, "type",
			"type must be a number 0 to %d or one of deposit recurring_payment withdrawal bank_account_selection authentication swish_payment ideal_payment", len(session.Types)-1)
	}
	return typ, nil
}

func (s *Server) create(ctx context.Context, r *request) (any, error) {
	var p struct {
		Type *typeParam `json:"type"`
		session.Params
	}
	if err := r.decode(&p); err != nil {
		return nil, err
	}
	if p.Type == nil || string(p.Type.raw) == "null" || string(p.Type.raw) == `""` {
		return nil, session.FieldError(session.NameMissingParameter, "type", "type is required")
	}
	typ, err := p.Type.parse()
	if err != nil {
		return nil, err
	}
	return s.createSession(ctx, r.merchant, typ, &p.Params)
}

func (s *Server) createSession(ctx context.Context, m *session.Merchant, typ session.Type, p *session.Params) (any, error) {
	v, token, err := s.svc.Create(ctx, m, typ, p)
	if err != nil {
		return nil, err
	}
	return &createResult{ID: v.ID, Token: token, URL: s.cfg.PublicURL + "/client/" + token}, nil
}

// only returns the value of params that are exactly {name: "a string
// without escapes"}, as nearly every call of an id or token method sends
// them, without the decoder; ok false for any other params.
func only(params json.RawMessage, name string) (value string, ok bool) {
	n := 0
	members(params, func(k string, v []byte) error {
		if n++; n == 1 && k == name && isString(v) && bytes.IndexByte(v, '\\') < 0 && utf8.Valid(v) {
			value, ok = string(v[1:len(v)-1]), true
		}
		return nil
	})
	return value, ok && n == 1 && value != ""
}

// id returns the one param, id, of methods that take only an id.
func (r *request) id() (string, error) {
	if id, ok := only(r.params, "id"); ok {
		return id, nil
	}
	var p struct {
		ID string `json:"id"`
	}
	if err := r.decode(&p); err != nil {
		return "", err
	}
	return p.ID, required("id", p.ID)
}

// token returns the one param, token, of methods that take only an
// end-user token.
func (r *request) token() (string, error) {
	if token, ok := only(r.params, "token"); ok {
		return token, nil
	}
	var p struct {
		Token string `json:"token"`
	}
	if err := r.decode(&p); err != nil {
		return "", err
	}
	return p.Token, required("token", p.Token)
}

func (s *Server) sessionByID(ctx context.Context, r *request) (*session.Session, error) {
	id, err := r.id()
	if err != nil {
		return nil, err
	}
	return s.svc.Get(ctx, r.merchant, id)
}

func (s *Server) get(ctx context.Context, r *request) (any, error) {
	v, err := s.sessionByID(ctx, r)
	if err != nil {
		return nil, err
	}
	return s.sessionWire(v, s.svc.Now())
}

func (s *Server) state(ctx context.Context, r *request) (any, error) {
	v, err := s.sessionByID(ctx, r)
	if err != nil {
		return nil, err
	}
	return stateOf(v), nil
}

func (s *Server) getByToken(ctx context.Context, r *request) (any, error) {
	token, err := r.token()
	if err != nil {
		return nil, err
	}
	var v *session.Session
	if r.merchant == nil { // no bearer: the token is the credential
		v, err = s.svc.SessionOfToken(ctx, token)
	} else {
		v, err = s.svc.ByToken(ctx, r.merchant, token)
	}
	if err != nil {
		return nil, err
	}
	return s.sessionWire(v, s.svc.Now())
}

func (s *Server) getByReference(ctx context.Context, r *request) (any, error) {
	var p struct {
		MerchantReference string `json:"merchant_reference"`
	}
	if err := r.decode(&p); err != nil {
		return nil, err
	}
	vs, err := s.svc.ByReference(ctx, r.merchant, p.MerchantReference)
	if err != nil {
		return nil, err
	}
	now := s.svc.Now()
	b := []byte(`{"sessions":[`)
	for i, v := range vs {
		o, err := s.sessionWire(v, now)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, o...)
	}
	return preEncoded(append(b, "]}"...)), nil
}

// decisionParams are the params of session.approve and session.reject:
// the session's id, or its end-user token (Brite's session_token).
type decisionParams struct {
	ID           string `json:"id"`
	SessionToken string `json:"session_token"`
	Reason       string `json:"reason"`
}

// sessionOf returns the id of the session the params name.
func (s *Server) sessionOf(ctx context.Context, m *session.Merchant, p *decisionParams) (string, error) {
	switch {
	case p.ID != "" && p.SessionToken != "":
		return "", session.FieldError(session.NameInvalidParams, "session_token", "give id or session_token, not both")
	case p.ID != "":
		return p.ID, nil
	case p.SessionToken != "":
		v, err := s.svc.ByToken(ctx, m, p.SessionToken)
		if err != nil {
			return "", err
		}
		return v.ID, nil
	}
	return "", session.FieldError(session.NameMissingParameter, "id", "id or session_token is required")
}

func (s *Server) approve(ctx context.Context, r *request) (any, error) {
	var p decisionParams
	if err := r.decode(&p); err != nil {
		return nil, err
	}
	id, err := s.sessionOf(ctx, r.merchant, &p)
	if err != nil {
		return nil, err
	}
	v, err := s.svc.Approve(ctx, r.merchant, id)
	if err != nil {
		return nil, err
	}
	return stateOf(v), nil
}

func (s *Server) reject(ctx context.Context, r *request) (any, error) {
	var p decisionParams
	if err := r.decode(&p); err != nil {
		return nil, err
	}
	if utf8.RuneCountInString(p.Reason) > 255 {
		return nil, session.FieldError(session.NameInvalidParams, "reason", "reason must be at most 255 characters")
	}
	id, err := s.sessionOf(ctx, r.merchant, &p)
	if err != nil {
		return nil, err
	}
	v, err := s.svc.Reject(ctx, r.merchant, id)
	if err != nil {
		return nil, err
	}
	return stateOf(v), nil
}

func (s *Server) callbacks(ctx context.Context, r *request) (any, error) {
	id, err := r.id()
	if err != nil {
		return nil, err
	}
	ds, err := s.svc.Deliveries(ctx, r.merchant, id)
	if err != nil {
		return nil, err
	}
	out := struct {
		Deliveries []*deliveryObject `json:"deliveries"`
	}{Deliveries: make([]*deliveryObject, len(ds))}
	for i, d := range ds {
		out.Deliveries[i] = deliveryOf(d)
	}
	return out, nil
}

func (s *Server) transactionByID(ctx context.Context, r *request) (*session.Transaction, error) {
	id, err := r.id()
	if err != nil {
		return nil, err
	}
	return s.svc.Transaction(ctx, r.merchant, id)
}

func (s *Server) transactionGet(ctx context.Context, r *request) (any, error) {
	t, err := s.transactionByID(ctx, r)
	if err != nil {
		return nil, err
	}
	return transactionOf(t), nil
}

func (s *Server) transactionState(ctx context.Context, r *request) (any, error) {
	t, err := s.transactionByID(ctx, r)
	if err != nil {
		return nil, err
	}
	return txStateOf(t), nil
}

func (s *Server) transactionTransition(ctx context.Context, r *request) (any, error) {
	var p struct {
		ID        string                    `json:"id"`
		State     *session.TransactionState `json:"state"`
		ErrorCode string                    `json:"error_code"`
	}
	if err := r.decode(&p); err != nil {
		return nil, err
	}
	if err := required("id", p.ID); err != nil {
		return nil, err
	}
	if p.State == nil {
		return nil, session.FieldError(session.NameMissingParameter, "state", "state is required")
	}
	t, err := s.svc.TransactionTransition(ctx, r.merchant, p.ID, *p.State, p.ErrorCode)
	if err != nil {
		return nil, err
	}
	return txStateOf(t), nil
}

func txStateOf(t *session.Transaction) any {
	return struct {
		ID        string                   `json:"id"`
		State     session.TransactionState `json:"state"`
		StateName string                   `json:"state_name"`
	}{t.ID, t.State, t.State.String()}
}

func (s *Server) clientGet(ctx context.Context, r *request) (any, error) {
	token, err := r.token()
	if err != nil {
		return nil, err
	}
	v, err := s.svc.ClientGet(ctx, token, r.client)
	if err != nil {
		return nil, err
	}
	name, err := s.svc.MerchantName(ctx, v.MerchantID)
	if err != nil {
		return nil, err
	}
	msg, err := s.svc.TransactionMessage(ctx, v)
	if err != nil {
		return nil, err
	}
	return s.clientWire(v, s.svc.Now(), name, msg)
}

// moveParams are client.transition's params.
type moveParams struct {
	Token       string         `json:"token"`
	State       *session.State `json:"state"`
	Version     *int           `json:"version"`
	ErrorCode   string         `json:"error_code"`
	CustomerID  string         `json:"customer_id"`
	Bank        *session.Bank  `json:"bank"`
	BankAccount *struct {
		Holder string `json:"holder"`
		IBAN   string `json:"iban"`
		BBAN   string `json:"bban"`
	} `json:"bank_account"`
}

func (s *Server) clientTransition(ctx context.Context, r *request) (any, error) {
	var p moveParams
	if err := r.decode(&p); err != nil {
		return nil, err
	}
	if err := required("token", p.Token); err != nil {
		return nil, err
	}
	if p.State == nil {
		return nil, session.FieldError(session.NameMissingParameter, "state", "state is required")
	}
	mv := session.Move{State: *p.State, Version: p.Version, ErrorCode: p.ErrorCode, CustomerID: p.CustomerID, Bank: p.Bank}
	if a := p.BankAccount; a != nil {
		mv.BankAccount = &session.BankAccount{Holder: a.Holder, IBAN: a.IBAN, BBAN: a.BBAN}
	}
	v, err := s.svc.ClientTransition(ctx, p.Token, mv, r.client)
	if err != nil {
		return nil, err
	}
	return stateOf(v), nil
}

// serveAPI serves a method Brite-style: the body is the params object, the
// answer the bare result, or Brite's error body with an HTTP status.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, e *rpcError) { writeJSON(w, apiStatus(status), e.data) }
	body, ok := s.readBody(w, r, fail)
	if !ok {
		return
	}
	if body = bytes.TrimSpace(body); len(body) == 0 {
		body = []byte("{}")
	}
	if !json.Valid(body) {
		fail(http.StatusBadRequest, errParse("the body is not valid JSON"))
		return
	}
	if body[0] != '{' {
		fail(http.StatusBadRequest, errInvalidParams("the body must be a params object", "params"))
		return
	}
	result, e := s.newCaller(r).call(r.Context(), r.PathValue("method"), body)
	if e != nil {
		fail(e.status, e)
		return
	}
	setJSON(w.Header())
	w.WriteHeader(http.StatusOK)
	bp := getBuffer()
	*bp = append(append(*bp, result...), '\n')
	w.Write(*bp)
	putBuffer(bp)
}
