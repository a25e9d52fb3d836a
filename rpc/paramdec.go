package rpc

import (
	"encoding"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"sync"
)

// decodeDirect decodes the params object raw into v, a pointer to a
// struct, as knownNames and encoding/json would together, but from the
// body's bytes directly: the body is valid JSON already (the transports
// check it whole), and a params struct's plan of fields is made once per
// type, so neither encoding/json's second scan of the bytes nor its
// reflection on every call is paid.
//
// It reports false, leaving v to be decoded the slow way, for anything
// whose answer is not plainly a value: any error (a value of the wrong
// kind, an unknown member under strict, a number out of range, an
// Unmarshaler that refuses), a field kind it does not know, an object or
// array given twice. The slow way then decodes the whole object again
// over what was set, which comes to the same as decoding it afresh: each
// member it meets sets its field again, the pointers set here are decoded
// into as they stand, and nothing was set here that it does not meet.
// FuzzDecodeDirect holds it to that.
func decodeDirect(raw []byte, v any, strict bool) bool {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		return false
	}
	dec := decoderOf(rv.Type().Elem())
	return dec != nil && dec(rv.Elem(), raw, strict)
}

// fieldDecoder decodes one JSON value into v; false: not decoded here.
type fieldDecoder func(v reflect.Value, raw []byte, strict bool) bool

type structField struct {
	index []int
	dec   fieldDecoder
}

var decoders sync.Map // reflect.Type → fieldDecoder, or nil for a type decoded the slow way

var (
	unmarshalerType     = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	rawMessageType      = reflect.TypeFor[json.RawMessage]()
)

// decoderOf returns the decoder of values of type t, nil if t is one for
// the slow way.
func decoderOf(t reflect.Type) fieldDecoder {
	if d, ok := decoders.Load(t); ok {
		return d.(fieldDecoder)
	}
	// A recursive type would come back here while its plan is made: it
	// finds nil, and is decoded the slow way.
	decoders.Store(t, fieldDecoder(nil))
	d := makeDecoder(t)
	decoders.Store(t, d)
	return d
}

func makeDecoder(t reflect.Type) fieldDecoder {
	switch {
	case t.Kind() == reflect.Pointer:
		return pointerDecoder(t) // as encoding/json, which looks for an Unmarshaler past the pointer
	case t == rawMessageType:
		return decodeRaw
	case reflect.PointerTo(t).Implements(unmarshalerType):
		return decodeUnmarshaler
	case reflect.PointerTo(t).Implements(textUnmarshalerType):
		return nil // encoding/json would decode a string through it
	}
	switch t.Kind() {
	case reflect.String:
		return decodeString
	case reflect.Bool:
		return decodeBool
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return decodeInteger
	case reflect.Float32, reflect.Float64:
		return decodeFloat
	case reflect.Slice:
		return sliceDecoder(t)
	case reflect.Struct:
		return structDecoder(t)
	}
	return nil
}

func isNull(raw []byte) bool { return len(raw) == 4 && string(raw) == "null" }

func decodeRaw(v reflect.Value, raw []byte, _ bool) bool {
	v.SetBytes(append([]byte(nil), raw...))
	return true
}

func decodeUnmarshaler(v reflect.Value, raw []byte, _ bool) bool {
	if isNull(raw) || raw[0] == '{' || raw[0] == '[' {
		// encoding/json hands null to the Unmarshaler, and knownNames may
		// cut members out of an object or array first: the slow way.
		return false
	}
	return v.Addr().Interface().(json.Unmarshaler).UnmarshalJSON(raw) == nil
}

func decodeString(v reflect.Value, raw []byte, _ bool) bool {
	if isNull(raw) {
		return true
	}
	if len(raw) < 2 || raw[0] != '"' {
		return false
	}
	body := raw[1 : len(raw)-1]
	if plain(body) {
		v.SetString(string(body))
		return true
	}
	s, err := unquote(raw)
	if err != nil {
		return false
	}
	v.SetString(s)
	return true
}

func decodeBool(v reflect.Value, raw []byte, _ bool) bool {
	switch string(raw) {
	case "null":
	case "true":
		v.SetBool(true)
	case "false":
		v.SetBool(false)
	default:
		return false
	}
	return true
}

// integer reports whether raw is a JSON number without a fraction or
// exponent: the only ones encoding/json puts in an integer.
func integer(raw []byte) bool {
	if len(raw) > 0 && raw[0] == '-' {
		raw = raw[1:]
	}
	if len(raw) == 0 {
		return false
	}
	for _, c := range raw {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// decodeInteger decodes a signed or unsigned integer of any size.
func decodeInteger(v reflect.Value, raw []byte, _ bool) bool {
	if isNull(raw) {
		return true
	}
	if !integer(raw) {
		return false
	}
	if v.CanInt() {
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil || v.OverflowInt(n) {
			return false
		}
		v.SetInt(n)
		return true
	}
	n, err := strconv.ParseUint(string(raw), 10, 64) // refuses a sign
	if err != nil || v.OverflowUint(n) {
		return false
	}
	v.SetUint(n)
	return true
}

func decodeFloat(v reflect.Value, raw []byte, _ bool) bool {
	if isNull(raw) {
		return true
	}
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return false
	}
	f, err := strconv.ParseFloat(string(raw), v.Type().Bits())
	if err != nil || v.OverflowFloat(f) {
		return false
	}
	v.SetFloat(f)
	return true
}

func pointerDecoder(t reflect.Type) fieldDecoder {
	elem := decoderOf(t.Elem())
	if elem == nil {
		return nil
	}
	return func(v reflect.Value, raw []byte, strict bool) bool {
		if isNull(raw) {
			v.SetZero()
			return true
		}
		if !v.IsNil() {
			return false // a member given twice, or a value set before: the slow way merges
		}
		p := reflect.New(t.Elem())
		v.Set(p)
		return elem(p.Elem(), raw, strict)
	}
}

func sliceDecoder(t reflect.Type) fieldDecoder {
	if t.Elem().Kind() == reflect.Uint8 {
		return nil // base64, the slow way
	}
	elem := decoderOf(t.Elem())
	if elem == nil {
		return nil
	}
	return func(v reflect.Value, raw []byte, strict bool) bool {
		if isNull(raw) {
			v.SetZero()
			return true
		}
		if !v.IsNil() || len(raw) == 0 || raw[0] != '[' {
			return false
		}
		s := reflect.MakeSlice(t, 0, 0)
		ok := elements(raw, func(item []byte) bool {
			s = reflect.Append(s, reflect.Zero(t.Elem()))
			return elem(s.Index(s.Len()-1), item, strict)
		})
		if ok {
			v.Set(s)
		}
		return ok
	}
}

// structDecoder plans a struct's fields by their exact JSON names, as
// fieldsOf names them; a struct whose names encoding/json would resolve
// otherwise (an embedded pointer, a name given twice, a ",string" field)
// is left to the slow way.
func structDecoder(t reflect.Type) fieldDecoder {
	fields := map[string]structField{}
	if !planFields(t, nil, fields) {
		return nil
	}
	return func(v reflect.Value, raw []byte, strict bool) bool {
		if isNull(raw) {
			return true
		}
		ok := true
		err := members(raw, func(name string, value []byte) error {
			f, known := fields[name]
			if !known {
				if strict {
					ok = false
					return errNotObject
				}
				return nil // knownNames drops it
			}
			if !f.dec(v.FieldByIndex(f.index), value, strict) {
				ok = false
				return errNotObject
			}
			return nil
		})
		return ok && err == nil
	}
}

func planFields(t reflect.Type, index []int, fields map[string]structField) bool {
	for i := range t.NumField() {
		f := t.Field(i)
		at := append(append([]int(nil), index...), i)
		tag := f.Tag.Get("json")
		if f.Anonymous && f.Type.Kind() == reflect.Struct && tag == "" && f.IsExported() {
			if !planFields(f.Type, at, fields) {
				return false
			}
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous || strings.Contains(","+opts+",", ",string,") || strings.HasPrefix(tag, "-,") {
			return false
		}
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if _, twice := fields[name]; twice {
			return false
		}
		dec := decoderOf(f.Type)
		if dec == nil {
			return false
		}
		fields[name] = structField{index: at, dec: dec}
	}
	return true
}

// elements calls fn with each element of the JSON array raw, until fn
// returns false; it reports whether every element was taken.
func elements(raw []byte, fn func(item []byte) bool) bool {
	i := skipSpace(raw, 1)
	if i < len(raw) && raw[i] == ']' {
		return true
	}
	for i < len(raw) {
		end := valueEnd(raw, i)
		if end <= i || !fn(raw[i:end]) {
			return false
		}
		i = skipSpace(raw, end)
		if i >= len(raw) || raw[i] == ']' {
			return true
		}
		i = skipSpace(raw, i+1) // past ','
	}
	return false
}
