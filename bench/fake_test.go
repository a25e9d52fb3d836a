package bench

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// Credentials the fake server knows.
const (
	fakeMerchant = "pk_test:sk_test"
	fakeBearer   = "Bearer at_test"
)

// fake is a small JSON-RPC server with the parts of sessiond's contract that
// bench uses. It counts calls per method and checks every
// client.transition against the deposit path, so a skipped step or two
// moves of one session at once fail.
type fake struct {
	mu       sync.Mutex
	calls    map[string]int
	sessions map[string]*fakeSession // by id
	byToken  map[string]*fakeSession
	seq      int
	metrics  string                     // served at /metrics when not ""
	onCall   func(method string, n int) // called with each method's count, unlocked
}

type fakeSession struct {
	id, token string
	state     int
	moving    bool // a client.transition is in flight
}

// newFake starts a fake server; it is closed when the test ends.
func newFake(t *testing.T) (*fake, *httptest.Server) {
	t.Helper()
	f := &fake{calls: map[string]int{}, sessions: map[string]*fakeSession{}, byToken: map[string]*fakeSession{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

// count returns how many calls of method the server has had.
func (f *fake) count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

// completed returns how many sessions reached STATE_COMPLETED.
func (f *fake) completed() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, s := range f.sessions {
		if s.state == 12 {
			n++
		}
	}
	return n
}

type fakeError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    struct {
		ErrorName string `json:"error_name"`
	} `json:"data"`
}

func rpcErr(code int, name, msg string) *fakeError {
	e := &fakeError{Code: code, Message: msg}
	e.Data.ErrorName = name
	return e
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/metrics" && f.metrics != "":
		fmt.Fprint(w, f.metrics)
		return
	case r.URL.Path != "/rpc":
		http.NotFound(w, r)
		return
	case r.Method != http.MethodPost:
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	case r.Header.Get("Content-Type") != "application/json":
		w.WriteHeader(http.StatusUnsupportedMediaType)
		return
	}
	var req struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Method  string          `json:"method"`
		Params  json.RawMessage `json:"params"`
	}
	resp := struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Result  any             `json:"result,omitempty"`
		Error   *fakeError      `json:"error,omitempty"`
	}{JSONRPC: "2.0"}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		resp.Error = rpcErr(-32700, "ParseError", "Parse error.")
	} else {
		resp.ID = req.ID
		resp.Result, resp.Error = f.dispatch(r, req.Method, req.Params)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp)
}

func (f *fake) dispatch(r *http.Request, method string, params json.RawMessage) (any, *fakeError) {
	f.mu.Lock()
	f.calls[method]++
	n := f.calls[method]
	f.mu.Unlock()
	if f.onCall != nil {
		f.onCall(method, n)
	}

	auth := r.Header.Get("Authorization")
	client := strings.HasPrefix(method, "client.")
	switch {
	case method == "merchant.authorize":
	case client && auth != "":
		return nil, rpcErr(-32600, "InvalidRequest", "client methods take no bearer")
	case !client && auth != fakeBearer:
		return nil, rpcErr(-32001, "Unauthorized", "missing or unknown bearer token")
	}

	switch method {
	case "merchant.authorize":
		var p struct {
			PublicKey string `json:"public_key"`
			Secret    string `json:"secret"`
		}
		json.Unmarshal(params, &p)
		if p.PublicKey+":"+p.Secret != fakeMerchant {
			return nil, rpcErr(-32001, "Unauthorized", "invalid credentials")
		}
		return map[string]any{"access_token": strings.TrimPrefix(fakeBearer, "Bearer "), "refresh_token": "rt", "expires": 1e10}, nil

	case "session.create_deposit":
		var p map[string]any
		json.Unmarshal(params, &p)
		if p["amount"] != "10.00" || p["country_id"] != "se" {
			return nil, rpcErr(-32602, "InvalidParams", "bad deposit params")
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.seq++
		s := &fakeSession{id: fmt.Sprintf("id-%d", f.seq), token: fmt.Sprintf("token-%08d-abcdefghijklmnopqrstuvwxyz", f.seq)}
		f.sessions[s.id] = s
		f.byToken[s.token] = s
		return map[string]string{"id": s.id, "token": s.token, "url": "http://x/client/" + s.token}, nil

	case "session.get", "session.state":
		var p struct{ ID string }
		json.Unmarshal(params, &p)
		f.mu.Lock()
		defer f.mu.Unlock()
		s := f.sessions[p.ID]
		if s == nil {
			return nil, rpcErr(-32004, "NotFound", "no such session")
		}
		return map[string]any{"id": s.id, "state": s.state, "error_code": nil}, nil

	case "client.transition":
		var p struct {
			Token string
			State int
			Bank  *struct{ ID, Name string }
		}
		json.Unmarshal(params, &p)
		f.mu.Lock()
		s := f.byToken[p.Token]
		if s == nil {
			f.mu.Unlock()
			return nil, rpcErr(-32004, "NotFound", "no such session")
		}
		if s.moving {
			f.mu.Unlock()
			return nil, rpcErr(-32009, "VersionConflict", "two moves of one session at once")
		}
		s.moving = true
		f.mu.Unlock()
		runtime.Gosched() // widen the window for an overlapping move

		f.mu.Lock()
		defer f.mu.Unlock()
		s.moving = false
		want := -1
		for i, st := range depositPath[:len(depositPath)-1] {
			if st == s.state {
				want = depositPath[i+1]
			}
		}
		if p.State != want || (p.State == 1 && p.Bank == nil) {
			return nil, rpcErr(-32009, "InvalidStateTransition", fmt.Sprintf("%d to %d", s.state, p.State))
		}
		s.state = p.State
		return map[string]any{"id": s.id, "state": s.state}, nil

	case "echo":
		return params, nil
	}
	return nil, rpcErr(-32601, "MethodNotFound", "Method not found.")
}
