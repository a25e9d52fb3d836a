package rpc

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/rs/zerolog"
)

// TestOpenRPCCoversMethods checks that the document rpc.discover serves
// names every method the server dispatches, and nothing else.
func TestOpenRPCCoversMethods(t *testing.T) {
	var doc struct {
		OpenRPC string `json:"openrpc"`
		Methods []struct {
			Name   string            `json:"name"`
			Params []json.RawMessage `json:"params"`
			Result json.RawMessage   `json:"result"`
			Errors []json.RawMessage `json:"errors"`
		} `json:"methods"`
	}
	if err := json.Unmarshal(openRPC, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenRPC != "1.3.2" {
		t.Errorf("openrpc %q, want 1.3.2", doc.OpenRPC)
	}
	var documented []string
	for _, m := range doc.Methods {
		documented = append(documented, m.Name)
		if m.Result == nil || len(m.Errors) == 0 {
			t.Errorf("%s: no result schema or no errors", m.Name)
		}
	}
	s := New(nil, Config{Sandbox: true}, zerolog.Nop())
	var served []string
	for name := range s.methods {
		served = append(served, name)
	}
	slices.Sort(documented)
	slices.Sort(served)
	if !slices.Equal(documented, served) {
		t.Errorf("documented methods\n%q\nserved methods\n%q", documented, served)
	}
	if _, ok := New(nil, Config{}, zerolog.Nop()).methods["sandbox.transaction_transition"]; ok {
		t.Error("sandbox.transaction_transition served without Sandbox")
	}
}

// TestOpenRPCArraysHaveItems checks what @open-rpc/generator needs: every
// array schema says what its items are. (The Node suite runs the generator
// itself, and the meta-schema with format checking.)
func TestOpenRPCArraysHaveItems(t *testing.T) {
	var doc any
	if err := json.Unmarshal(openRPC, &doc); err != nil {
		t.Fatal(err)
	}
	var walk func(v any, at string)
	walk = func(v any, at string) {
		switch v := v.(type) {
		case []any:
			for i, item := range v {
				walk(item, fmt.Sprintf("%s/%d", at, i))
			}
		case map[string]any:
			isArray := v["type"] == "array"
			if types, ok := v["type"].([]any); ok {
				isArray = slices.Contains(types, any("array"))
			}
			if _, ok := v["items"]; isArray && !ok {
				t.Errorf("%s: an array schema without items", at)
			}
			for k, item := range v {
				walk(item, at+"/"+k)
			}
		}
	}
	walk(doc, "")
}
