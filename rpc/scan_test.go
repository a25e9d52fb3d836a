package rpc

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestMembers checks the scanner against encoding/json on objects with
// every kind of value, escapes and white space.
func TestMembers(t *testing.T) {
	for _, in := range []string{
		`{}`,
		` { } `,
		`{"a":1}`,
		`{"jsonrpc":"2.0","method":"x","params":{"a":[1,{"b":"}]\""}],"c":null},"id":-1.5e3}`,
		"{\n\t\"a\" : \"x\\\\\" ,\r\n \"b\":[ ] , \"c\" : { \"d\" : [ \"]\" ] } }",
		`{"\u0041":true,"b\"c":false,"e":"\u00e9"}`,
		`{"a":1,"a":2}`,
	} {
		var want []string
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(in), &m); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		var got []string
		err := members([]byte(in), func(name string, value []byte) error {
			var v any
			if err := json.Unmarshal(value, &v); err != nil {
				t.Errorf("%s: member %q: value %q is not JSON: %v", in, name, value, err)
			}
			if wantV, ok := m[name]; !ok {
				t.Errorf("%s: member %q not in encoding/json's result", in, name)
			} else {
				var w any
				json.Unmarshal(wantV, &w)
				if name != "a" || in != `{"a":1,"a":2}` {
					if diff := cmp.Diff(w, v); diff != "" {
						t.Errorf("%s: member %q (-want +got):\n%s", in, name, diff)
					}
				}
			}
			got = append(got, name)
			return nil
		})
		if err != nil {
			t.Errorf("%s: %v", in, err)
		}
		for name := range m {
			want = append(want, name)
		}
		if len(uniq(got)) != len(want) {
			t.Errorf("%s: members %q, want the names %q", in, got, want)
		}
	}
	for _, in := range []string{`[]`, `"x"`, `1`, ``} {
		if err := members([]byte(in), func(string, []byte) error { return nil }); err == nil {
			t.Errorf("members(%q) = nil, want an error", in)
		}
	}
}

func uniq(s []string) map[string]bool {
	m := map[string]bool{}
	for _, v := range s {
		m[v] = true
	}
	return m
}

// FuzzMembers compares the scanner with encoding/json on any valid object.
func FuzzMembers(f *testing.F) {
	f.Add(`{"jsonrpc":"2.0","method":"x","params":{"a":[1,{"b":"}"}]},"id":1}`)
	f.Add(`{"a\"b":"c\\","d":[{},[]]}`)
	f.Fuzz(func(t *testing.T, in string) {
		var m map[string]json.RawMessage
		if json.Unmarshal([]byte(in), &m) != nil || m == nil {
			return
		}
		seen := map[string]bool{}
		err := members([]byte(in), func(name string, value []byte) error {
			if !json.Valid(value) {
				t.Fatalf("%q: member %q value %q not JSON", in, name, value)
			}
			if _, ok := m[name]; !ok {
				t.Fatalf("%q: member %q unknown to encoding/json", in, name)
			}
			seen[name] = true
			return nil
		})
		if err != nil || len(seen) != len(m) {
			t.Fatalf("%q: %v, saw %d members, want %d", in, err, len(seen), len(m))
		}
	})
}
