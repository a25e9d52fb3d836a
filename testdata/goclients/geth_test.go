package goclients

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/ethereum/go-ethereum/rpc"
)

// gethError checks that err is a JSON-RPC error with code and Brite's
// error_name in its data, as go-ethereum's client exposes them.
func gethError(t *testing.T, what string, err error, code int, name string) {
	t.Helper()
	var re rpc.Error
	var de rpc.DataError
	if !errors.As(err, &re) || re.ErrorCode() != code || !errors.As(err, &de) {
		t.Errorf("%s: %v, want a JSON-RPC error %d with data", what, err, code)
		return
	}
	b, _ := json.Marshal(de.ErrorData())
	var d errorData
	if json.Unmarshal(b, &d) != nil || d.ErrorName != name || d.State != "APPLICATION_ERROR" {
		t.Errorf("%s: data %s, want error_name %s", what, b, name)
	}
}

// TestGethHTTP: go-ethereum's client sends params as [{…}] and
// rpc.discover's as []; both are the named params.
func TestGethHTTP(t *testing.T) {
	c, err := rpc.DialOptions(ctx(t), rpcURL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var tok tokens
	if err := c.CallContext(ctx(t), &tok, "merchant.authorize", map[string]string{"public_key": publicKey, "secret": secret}); err != nil {
		t.Fatalf("merchant.authorize: %v", err)
	}
	c.SetHeader("Authorization", "Bearer "+tok.AccessToken)

	var cr created
	if err := c.CallContext(ctx(t), &cr, "session.create_deposit", deposit("geth-http")); err != nil {
		t.Fatalf("session.create_deposit: %v", err)
	}
	var s sessionView
	if err := c.CallContext(ctx(t), &s, "session.get", map[string]string{"id": cr.ID}); err != nil {
		t.Fatalf("session.get: %v", err)
	}
	checkSession(t, s, cr, "geth-http")

	var st stateView
	if err := c.CallContext(ctx(t), &st, "client.transition", map[string]any{"token": cr.Token, "state": 1}); err != nil || st.State != 1 || st.Version != 2 {
		t.Errorf("client.transition: %+v, %v", st, err)
	}
	var doc struct {
		OpenRPC string `json:"openrpc"`
		Methods []struct{ Name string }
	}
	if err := c.CallContext(ctx(t), &doc, "rpc.discover"); err != nil || doc.OpenRPC != "1.3.2" || len(doc.Methods) == 0 {
		t.Errorf("rpc.discover: %s with %d methods, %v", doc.OpenRPC, len(doc.Methods), err)
	}
	gethError(t, "session.get of an unknown id", c.CallContext(ctx(t), &s, "session.get", map[string]string{"id": "00000000-0000-7000-8000-000000000000"}), -32004, "NotFound")
	gethError(t, "session.create_deposit without amount", c.CallContext(ctx(t), &cr, "session.create_deposit", map[string]string{"country_id": "se"}), -32602, "MissingParameter")
	gethError(t, "an unknown method", c.CallContext(ctx(t), nil, "session.nope"), -32601, "MethodNotFound")
}

// TestGethBatch sends one HTTP batch; each element gets its own answer.
func TestGethBatch(t *testing.T) {
	c, err := rpc.DialOptions(ctx(t), rpcURL(), rpc.WithHeader("Authorization", "Bearer "+accessToken(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var cr created
	if err := c.CallContext(ctx(t), &cr, "session.create_deposit", deposit("geth-batch")); err != nil {
		t.Fatal(err)
	}
	var s sessionView
	var st stateView
	batch := []rpc.BatchElem{
		{Method: "session.get", Args: []any{map[string]string{"id": cr.ID}}, Result: &s},
		{Method: "session.state", Args: []any{map[string]string{"id": cr.ID}}, Result: &st},
		{Method: "session.state", Args: []any{map[string]string{"id": "nope"}}, Result: &st},
		{Method: "session.nope", Result: &st},
	}
	if err := c.BatchCallContext(ctx(t), batch); err != nil {
		t.Fatalf("batch: %v", err)
	}
	if batch[0].Error != nil || batch[1].Error != nil {
		t.Fatalf("batch errors: %v, %v", batch[0].Error, batch[1].Error)
	}
	checkSession(t, s, cr, "geth-batch")
	gethError(t, "batch entry of an unknown id", batch[2].Error, -32004, "NotFound")
	gethError(t, "batch entry of an unknown method", batch[3].Error, -32601, "MethodNotFound")
}

// TestGethWebSocket: the same calls and a batch over /rpc/ws, with the
// bearer on the upgrade, and on a socket that authenticates itself.
func TestGethWebSocket(t *testing.T) {
	bearer := accessToken(t)
	c, err := rpc.DialOptions(ctx(t), wsURL(), rpc.WithHeader("Authorization", "Bearer "+bearer))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var cr created
	if err := c.CallContext(ctx(t), &cr, "session.create_deposit", deposit("geth-ws")); err != nil {
		t.Fatalf("session.create_deposit over WebSocket: %v", err)
	}
	var s sessionView
	var st stateView
	batch := []rpc.BatchElem{
		{Method: "session.get", Args: []any{map[string]string{"id": cr.ID}}, Result: &s},
		{Method: "client.transition", Args: []any{map[string]any{"token": cr.Token, "state": 1}}, Result: &st},
	}
	if err := c.BatchCallContext(ctx(t), batch); err != nil || batch[0].Error != nil || batch[1].Error != nil {
		t.Fatalf("batch over WebSocket: %v, %v, %v", err, batch[0].Error, batch[1].Error)
	}
	checkSession(t, s, cr, "geth-ws")
	if st.State != 1 {
		t.Errorf("client.transition in the batch: %+v", st)
	}
	gethError(t, "session.get of an unknown id", c.CallContext(ctx(t), &s, "session.get", map[string]string{"id": "nope"}), -32004, "NotFound")

	anon, err := rpc.DialOptions(ctx(t), wsURL())
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	gethError(t, "session.get on an anonymous socket", anon.CallContext(ctx(t), &s, "session.get", map[string]string{"id": cr.ID}), -32001, "Unauthorized")
	var ok bool
	if err := anon.CallContext(ctx(t), &ok, "merchant.authenticate", map[string]string{"access_token": bearer}); err != nil || !ok {
		t.Fatalf("merchant.authenticate: %v, %v", ok, err)
	}
	if err := anon.CallContext(ctx(t), &s, "session.get", map[string]string{"id": cr.ID}); err != nil || s.ID != cr.ID {
		t.Errorf("session.get after merchant.authenticate: %+v, %v", s, err)
	}
}
