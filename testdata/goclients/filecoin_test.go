package goclients

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/filecoin-project/go-jsonrpc"
)

// filecoinAPI is sessiond as go-jsonrpc sees it: one func field per
// method, named by its rpc_method tag; each call sends [{…}].
type filecoinAPI struct {
	Authorize     func(ctx context.Context, p map[string]string) (tokens, error)      `rpc_method:"merchant.authorize"`
	Authenticate  func(ctx context.Context, p map[string]string) (bool, error)        `rpc_method:"merchant.authenticate"`
	CreateDeposit func(ctx context.Context, p map[string]any) (created, error)        `rpc_method:"session.create_deposit"`
	Get           func(ctx context.Context, p map[string]string) (sessionView, error) `rpc_method:"session.get"`
	Transition    func(ctx context.Context, p map[string]any) (stateView, error)      `rpc_method:"client.transition"`
	Discover      func(ctx context.Context) (json.RawMessage, error)                  `rpc_method:"rpc.discover"`
}

func filecoinClient(t *testing.T, addr string, header http.Header) *filecoinAPI {
	t.Helper()
	var api filecoinAPI
	closer, err := jsonrpc.NewMergeClient(ctx(t), addr, "", []any{&api}, header)
	if err != nil {
		t.Fatalf("go-jsonrpc client for %s: %v", addr, err)
	}
	t.Cleanup(closer)
	return &api
}

func filecoinError(t *testing.T, what string, err error, code int, name string) {
	t.Helper()
	var e *jsonrpc.JSONRPCError
	if !errors.As(err, &e) || int(e.Code) != code {
		t.Errorf("%s: %v, want a JSON-RPC error %d", what, err, code)
		return
	}
	b, _ := json.Marshal(e.Data)
	var d errorData
	if json.Unmarshal(b, &d) != nil || d.ErrorName != name {
		t.Errorf("%s: data %s, want error_name %s", what, b, name)
	}
}

func testFilecoin(t *testing.T, addr string) {
	anon := filecoinClient(t, addr, nil)
	tok, err := anon.Authorize(ctx(t), map[string]string{"public_key": publicKey, "secret": secret})
	if addr == wsURL() {
		// An anonymous socket serves only client.*, rpc.discover and its
		// own methods: authorize over HTTP.
		filecoinError(t, "merchant.authorize on an anonymous socket", err, -32001, "Unauthorized")
		tok.AccessToken = accessToken(t)
	} else if err != nil {
		t.Fatalf("merchant.authorize: %v", err)
	}
	api := filecoinClient(t, addr, http.Header{"Authorization": {"Bearer " + tok.AccessToken}})
	cr, err := api.CreateDeposit(ctx(t), deposit("filecoin"))
	if err != nil {
		t.Fatalf("session.create_deposit: %v", err)
	}
	s, err := api.Get(ctx(t), map[string]string{"id": cr.ID})
	if err != nil {
		t.Fatalf("session.get: %v", err)
	}
	checkSession(t, s, cr, "filecoin")
	if st, err := anon.Transition(ctx(t), map[string]any{"token": cr.Token, "state": 1}); err != nil || st.State != 1 {
		t.Errorf("client.transition: %+v, %v", st, err)
	}
	if doc, err := anon.Discover(ctx(t)); err != nil || !json.Valid(doc) {
		t.Errorf("rpc.discover: %.80s, %v", doc, err)
	}
	_, err = api.Get(ctx(t), map[string]string{"id": "nope"})
	filecoinError(t, "session.get of an unknown id", err, -32004, "NotFound")
	_, err = anon.Get(ctx(t), map[string]string{"id": cr.ID})
	filecoinError(t, "session.get without a bearer", err, -32001, "Unauthorized")
	if addr == wsURL() {
		if ok, err := anon.Authenticate(ctx(t), map[string]string{"access_token": tok.AccessToken}); err != nil || !ok {
			t.Fatalf("merchant.authenticate: %v, %v", ok, err)
		}
		if s, err := anon.Get(ctx(t), map[string]string{"id": cr.ID}); err != nil || s.ID != cr.ID {
			t.Errorf("session.get after merchant.authenticate: %+v, %v", s, err)
		}
	}
}

// TestFilecoinHTTP and TestFilecoinWebSocket: filecoin's go-jsonrpc,
// whose clients always send positional params ([{…}]).
func TestFilecoinHTTP(t *testing.T)      { testFilecoin(t, rpcURL()) }
func TestFilecoinWebSocket(t *testing.T) { testFilecoin(t, wsURL()) }
