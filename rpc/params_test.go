package rpc

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/sessiond/sessiond/session"
)

type testItem struct {
	A string `json:"a"`
}

type testParams struct {
	ID    string          `json:"id"`
	N     int             `json:"n"`
	Inner *testItem       `json:"inner"`
	Items []testItem      `json:"items"`
	Free  json.RawMessage `json:"free"`
}

// TestDecodeParams shows that params the target does not name (exactly)
// are ignored, at any depth, free-form values kept whole, and that strict
// decoding refuses the first of them by its path.
func TestDecodeParams(t *testing.T) {
	tests := []struct {
		in         string
		want       testParams
		strictErr  string // field of the strict UnknownParameter error, "" if strict decodes too
		lenientErr string
	}{
		{in: `{"id":"x","n":2}`, want: testParams{ID: "x", N: 2}},
		{in: `{"id":"x","colour":"red"}`, want: testParams{ID: "x"}, strictErr: "colour"},
		{in: `{"ID":"x","Id":"y","id":"z"}`, want: testParams{ID: "z"}, strictErr: "ID"},
		{in: `{"Id":"y"}`, want: testParams{}, strictErr: "Id"},
		{in: `{"inner":{"a":"1","b":2}}`, want: testParams{Inner: &testItem{A: "1"}}, strictErr: "inner.b"},
		{in: `{"items":[{"a":"1"},{"a":"2","A":"3"}]}`, want: testParams{Items: []testItem{{A: "1"}, {A: "2"}}}, strictErr: "items.A"},
		{in: `{"free":{"anything":[1,{"x":2}]}}`, want: testParams{Free: json.RawMessage(`{"anything":[1,{"x":2}]}`)}},
		{in: `{"n":"two","other":1}`, lenientErr: "n", strictErr: "other"},
	}
	for _, tt := range tests {
		var got testParams
		err := decodeParamsMode(json.RawMessage(tt.in), &got, false)
		if tt.lenientErr != "" {
			if field := fieldOf(err); field != tt.lenientErr {
				t.Errorf("%s: error %v, want one about %s", tt.in, err, tt.lenientErr)
			}
		} else if err != nil {
			t.Errorf("%s: %v", tt.in, err)
		} else if b1, b2 := mustJSON(t, got), mustJSON(t, tt.want); b1 != b2 {
			t.Errorf("%s: decoded %s, want %s", tt.in, b1, b2)
		}
		err = decodeParamsMode(json.RawMessage(tt.in), &testParams{}, true)
		switch {
		case tt.strictErr == "" && err != nil && tt.lenientErr == "":
			t.Errorf("%s, strict: %v", tt.in, err)
		case tt.strictErr != "" && (session.ErrorName(err) != session.NameUnknownParameter || fieldOf(err) != tt.strictErr):
			t.Errorf("%s, strict: %v, want UnknownParameter %s", tt.in, err, tt.strictErr)
		}
	}
}

func fieldOf(err error) string {
	var e *session.Error
	if errors.As(err, &e) {
		return e.Field
	}
	return ""
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
