package rpc

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"

	"github.com/sessiond/sessiond/session"
)

var errNotObject = errors.New("rpc: not a JSON object")

// memberNames are the member names requests carry most, so that members
// finds them without allocating a copy of each: a request's own members,
// and the params of the methods called most.
var memberNames = func() map[string]string {
	m := map[string]string{}
	for _, n := range []string{"jsonrpc", "id", "method", "params", "token", "state", "version", "bank", "name",
		"error_code", "customer_id", "bank_account", "holder", "iban", "bban", "session_token", "reason", "type",
		"public_key", "secret", "access_token", "refresh_token"} {
		m[n] = n
	}
	t := reflect.TypeFor[session.Params]()
	for i := range t.NumField() {
		if n, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); n != "" && n != "-" {
			m[n] = n
		}
	}
	return m
}()

// members calls fn with the name and raw value of each member of the JSON
// object raw, in order, by exact name. raw must be valid JSON (the
// transports check whole bodies with json.Valid first): members only finds
// where values end, so it allocates little beyond the names.
func members(raw []byte, fn func(name string, value []byte) error) error {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return errNotObject
	}
	i = skipSpace(raw, i+1)
	if i < len(raw) && raw[i] == '}' {
		return nil
	}
	for i < len(raw) {
		// raw is valid JSON, but the scanner does not rely on it: input
		// that is not an object is refused, never indexed out of range.
		if raw[i] != '"' {
			return errNotObject
		}
		end := stringEnd(raw, i)
		if end-i < 2 || raw[end-1] != '"' {
			return errNotObject
		}
		name := raw[i+1 : end-1]
		var key string
		if !plain(name) {
			var err error
			if key, err = unquote(raw[i:end]); err != nil {
				return err
			}
		} else if k, ok := memberNames[string(name)]; ok {
			key = k
		} else {
			key = string(name)
		}
		i = skipSpace(raw, end)
		if i >= len(raw) || raw[i] != ':' {
			return errNotObject
		}
		i = skipSpace(raw, i+1)
		vend := valueEnd(raw, i)
		if vend <= i {
			return errNotObject
		}
		if err := fn(key, raw[i:vend]); err != nil {
			return err
		}
		i = skipSpace(raw, vend)
		if i >= len(raw) || raw[i] == '}' {
			return nil
		}
		i = skipSpace(raw, i+1) // past ','
	}
	return nil
}

// unquote decodes the JSON string q as encoding/json does. (A string
// decoded in place would be moved to the heap on every call.)
func unquote(q []byte) (string, error) {
	var s string
	err := json.Unmarshal(q, &s)
	return s, err
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the string that starts at b[i].
func stringEnd(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// valueEnd returns the index just past the value that starts at b[i].
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = stringEnd(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	}
	for ; i < len(b); i++ { // a number, true, false or null
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
	}
	return i
}

// plain reports whether a name is ASCII without escapes, so that its
// bytes are its value; other names are decoded as encoding/json does.
func plain(b []byte) bool {
	for _, c := range b {
		if c == '\\' || c >= 0x80 {
			return false
		}
	}
	return true
}
