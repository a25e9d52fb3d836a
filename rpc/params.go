package rpc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/sessiond/sessiond/session"
)

// decodeParams decodes a params object into v, strictly: an unknown field
// is UnknownParameter, a value of the wrong type InvalidParams, each naming
// the field. Absent params decode as {}.
func decodeParams(raw json.RawMessage, v any) error {
	if len(raw) == 0 {
		raw = json.RawMessage("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		return nil
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if field == "" {
			field = "params"
		}
		return session.FieldError(session.NameInvalidParams, field, "%s must be %s", field, jsonKind(te.Type.Kind().String()))
	}
	if name, ok := strings.CutPrefix(err.Error(), `json: unknown field "`); ok {
		name = strings.TrimSuffix(name, `"`)
		return session.FieldError(session.NameUnknownParameter, name, "unknown parameter %q", name)
	}
	return session.FieldError(session.NameInvalidParams, "params", "params: %v", strings.TrimPrefix(err.Error(), "json: "))
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "struct", "map":
		return "an object"
	case "slice", "array":
		return "an array"
	case "int", "int64", "int32", "uint", "uint64", "float64":
		return "a number"
	}
	return fmt.Sprintf("of type %s", goKind)
}

// required returns a MissingParameter error for the first empty field of
// the name/value pairs.
func required(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			return session.FieldError(session.NameMissingParameter, pairs[i], "%s is required", pairs[i])
		}
	}
	return nil
}
