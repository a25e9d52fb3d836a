package rpc

import (
	"encoding/json"
	"testing"
)

// FuzzMembersAnyInput feeds the params scanner arbitrary bytes, valid
// JSON or not: it must never panic or loop, every value it yields lies
// within the input, and on a valid object it agrees with encoding/json
// on the member names (FuzzMembers checks the values).
func FuzzMembersAnyInput(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"a":`, `{"a\`, `{"a":"\u00`, `{"a":[1,{"b":`, `{]`, `{"a" 1}`, `[{"a":1}]`, `{"a":1,}`, "{\"\xff\":1}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		names := map[string]bool{}
		err := members(in, func(name string, value []byte) error {
			if len(value) > len(in) {
				t.Fatalf("%q: value %q longer than the input", in, value)
			}
			names[name] = true
			return nil
		})
		var m map[string]json.RawMessage
		if json.Unmarshal(in, &m) != nil || m == nil {
			return
		}
		if err != nil {
			t.Fatalf("%q: a valid object refused: %v", in, err)
		}
		for name := range m {
			if !names[name] {
				t.Fatalf("%q: member %q not seen", in, name)
			}
		}
	})
}
