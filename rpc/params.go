package rpc

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/sessiond/sessiond/session"
)

// decodeParamsMode decodes a params object into v. Params that name no
// field of v are ignored, as Brite ignores them, unless strict (serve
// --strict-params), which refuses the first of them (UnknownParameter,
// naming the field); a value of the wrong type is InvalidParams naming the
// field. Absent params decode as {}.
func decodeParamsMode(raw json.RawMessage, v any, strict bool) error {
	if len(raw) == 0 {
		raw = json.RawMessage("{}")
	}
	if decodeDirect(raw, v, strict) {
		return nil
	}
	return decodeParamsSlow(raw, v, strict)
}

// decodeParamsSlow is decodeParamsMode by knownNames and encoding/json,
// which every error comes from.
func decodeParamsSlow(raw json.RawMessage, v any, strict bool) error {
	raw, err := knownNames(raw, reflect.TypeOf(v), "", strict)
	if err != nil {
		return err
	}
	// knownNames left only the names of fields, so encoding/json's own
	// check of unknown fields (a Decoder's DisallowUnknownFields) has
	// nothing to find.
	err = json.Unmarshal(raw, v)
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
	var fe *session.Error
	if errors.As(err, &fe) {
		return fe
	}
	return session.FieldError(session.NameInvalidParams, "params", "params: %v", strings.TrimPrefix(err.Error(), "json: "))
}

// knownNames returns raw without the object members that name no field of
// t exactly (encoding/json matches names case-insensitively, and params
// names are case-sensitive), or, if strict, refuses the first of them. It
// descends into nested objects and arrays of objects; values of the wrong
// kind are left for the decoder to report. raw comes back unchanged (not
// copied) when every member is known.
func knownNames(raw json.RawMessage, t reflect.Type, path string, strict bool) (json.RawMessage, error) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		if t.Kind() == reflect.Slice {
			var items []json.RawMessage
			if t.Elem().Kind() == reflect.Uint8 || json.Unmarshal(raw, &items) != nil {
				return raw, nil
			}
			changed := false
			for i, item := range items {
				kept, err := knownNames(item, t.Elem(), path, strict)
				if err != nil {
					return nil, err
				}
				changed = changed || len(kept) != len(item)
				items[i] = kept
			}
			if !changed {
				return raw, nil
			}
			return json.Marshal(items)
		}
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t == reflect.TypeFor[json.RawMessage]() {
		return raw, nil
	}
	fields := fieldsOf(t)
	// The first pass only looks: most params name known fields only, and
	// then raw is returned as it is, without a copy.
	changed := false
	err := members(raw, func(name string, v []byte) error {
		ft, ok := fields[name]
		if !ok {
			if strict {
				return session.FieldError(session.NameUnknownParameter, path+name, "unknown parameter %q", path+name)
			}
			changed = true
			return nil
		}
		value, err := knownNames(v, ft, path+name+".", strict)
		changed = changed || len(value) != len(v)
		return err
	})
	if errors.Is(err, errNotObject) {
		return raw, nil // not an object: the decoder reports the wrong kind
	}
	if err != nil || !changed {
		return raw, err
	}
	out := []byte{'{'}
	err = members(raw, func(name string, v []byte) error {
		ft, ok := fields[name]
		if !ok {
			return nil
		}
		value, err := knownNames(v, ft, path+name+".", strict)
		if err != nil {
			return err
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		key, _ := json.Marshal(name)
		out = append(append(append(out, key...), ':'), value...)
		return nil
	})
	return append(out, '}'), err
}

var fieldCache sync.Map // reflect.Type → map[string]reflect.Type

// fieldsOf returns the JSON names of t's fields, embedded structs' included.
func fieldsOf(t reflect.Type) map[string]reflect.Type {
	if f, ok := fieldCache.Load(t); ok {
		return f.(map[string]reflect.Type)
	}
	fields := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			for name, ft := range fieldsOf(f.Type) {
				fields[name] = ft
			}
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = f.Type
	}
	fieldCache.Store(t, fields)
	return fields
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
	case "int", "int64", "int32", "uint", "uint64":
		return "an integer"
	case "float64":
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
