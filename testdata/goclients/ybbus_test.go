package goclients

import (
	"encoding/json"
	"testing"

	"github.com/ybbus/jsonrpc/v3"
)

func ybbusError(t *testing.T, what string, e *jsonrpc.RPCError, code int, name string) {
	t.Helper()
	if e == nil || e.Code != code {
		t.Errorf("%s: %+v, want a JSON-RPC error %d", what, e, code)
		return
	}
	b, _ := json.Marshal(e.Data)
	var d errorData
	if json.Unmarshal(b, &d) != nil || d.ErrorName != name {
		t.Errorf("%s: data %s, want error_name %s", what, b, name)
	}
}

// TestYbbus: ybbus/jsonrpc sends a single object param as the params
// object; calls, errors and a batch over HTTP.
func TestYbbus(t *testing.T) {
	anon := jsonrpc.NewClient(rpcURL())
	var tok tokens
	if err := anon.CallFor(ctx(t), &tok, "merchant.authorize", map[string]string{"public_key": publicKey, "secret": secret}); err != nil || tok.AccessToken == "" {
		t.Fatalf("merchant.authorize: %+v, %v", tok, err)
	}
	c := jsonrpc.NewClientWithOpts(rpcURL(), &jsonrpc.RPCClientOpts{CustomHeaders: map[string]string{"Authorization": "Bearer " + tok.AccessToken}})
	var cr created
	if err := c.CallFor(ctx(t), &cr, "session.create_deposit", deposit("ybbus")); err != nil {
		t.Fatalf("session.create_deposit: %v", err)
	}
	var s sessionView
	if err := c.CallFor(ctx(t), &s, "session.get", map[string]string{"id": cr.ID}); err != nil {
		t.Fatalf("session.get: %v", err)
	}
	checkSession(t, s, cr, "ybbus")

	resp, err := c.Call(ctx(t), "session.get", map[string]string{"id": "nope"})
	if err != nil {
		t.Fatal(err)
	}
	ybbusError(t, "session.get of an unknown id", resp.Error, -32004, "NotFound")
	resp, err = anon.Call(ctx(t), "session.get", map[string]string{"id": cr.ID})
	if err != nil {
		t.Fatal(err)
	}
	ybbusError(t, "session.get without a bearer", resp.Error, -32001, "Unauthorized")
	resp, err = c.Call(ctx(t), "rpc.discover")
	if err != nil || resp.Error != nil {
		t.Errorf("rpc.discover: %+v, %v", resp, err)
	}

	resps, err := c.CallBatch(ctx(t), jsonrpc.RPCRequests{
		jsonrpc.NewRequest("session.state", map[string]string{"id": cr.ID}),
		jsonrpc.NewRequest("client.transition", map[string]any{"token": cr.Token, "state": 1}),
		jsonrpc.NewRequest("session.nope"),
	})
	if err != nil || len(resps) != 3 {
		t.Fatalf("batch: %d responses, %v", len(resps), err)
	}
	byID := resps.AsMap()
	var st stateView
	if err := byID[0].GetObject(&st); err != nil || st.ID != cr.ID || st.State != 0 {
		t.Errorf("batch session.state: %+v, %v", st, err)
	}
	if err := byID[1].GetObject(&st); err != nil || st.State != 1 {
		t.Errorf("batch client.transition: %+v, %v", st, err)
	}
	ybbusError(t, "batch entry of an unknown method", byID[2].Error, -32601, "MethodNotFound")
}
