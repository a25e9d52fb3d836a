package rpc

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/sessiond/sessiond/session"
	"github.com/sourcegraph/jsonrpc2"
)

// JSON-RPC error codes of sessiond beyond the specification's own.
const (
	CodeUnauthorized = -32001
	CodeNotFound     = -32004
	CodeConflict     = -32009
	CodeRateLimited  = -32029
)

// wire is the one table from a session error code to the JSON-RPC code,
// its message, and the HTTP status of the Brite wire style (/api/<method>):
// Brite answers every application error, not-found and conflicts
// included, with 400, and its clients branch on error_name.
var wire = map[session.Code]struct {
	code    int64
	message string
	status  int
}{
	session.CodeInvalid:      {jsonrpc2.CodeInvalidParams, "Invalid params", http.StatusBadRequest},
	session.CodeUnauthorized: {CodeUnauthorized, "Unauthorized", http.StatusUnauthorized},
	session.CodeNotFound:     {CodeNotFound, "Not found", http.StatusBadRequest},
	session.CodeConflict:     {CodeConflict, "Conflict", http.StatusBadRequest},
	session.CodeRateLimited:  {CodeRateLimited, "Too many requests", http.StatusTooManyRequests},
	session.CodeInternal:     {jsonrpc2.CodeInternalError, "Internal error.", http.StatusInternalServerError},
}

// errorData is the error object's data: Brite's error body.
type errorData struct {
	ErrorName    string `json:"error_name"`
	ErrorMessage string `json:"error_message"`
	State        string `json:"state"`
	Field        string `json:"field,omitempty"`
	// RetryAfter is, for -32029, the seconds to wait before trying again.
	RetryAfter int `json:"retry_after,omitempty"`
}

// rpcError is a JSON-RPC error with Brite's data, and the HTTP status it
// gets in the Brite wire style.
type rpcError struct {
	rpc    *jsonrpc2.Error
	status int
	data   errorData
}

func (e *rpcError) Error() string { return e.rpc.Error() }

func newError(code int64, message, name, detail, field string, status int) *rpcError {
	e := &rpcError{
		rpc:    &jsonrpc2.Error{Code: code, Message: message},
		status: status,
		data:   errorData{ErrorName: name, ErrorMessage: detail, State: "APPLICATION_ERROR", Field: field},
	}
	e.rpc.SetError(e.data)
	return e
}

// Transport-level errors, which have no session code.
func errParse(detail string) *rpcError {
	return newError(jsonrpc2.CodeParseError, "Parse error", "ParseError", detail, "", http.StatusBadRequest)
}

func errInvalidRequest(detail string) *rpcError {
	return newError(jsonrpc2.CodeInvalidRequest, "Invalid Request", "InvalidRequest", detail, "", http.StatusBadRequest)
}

func errMethodNotFound(method string) *rpcError {
	return newError(jsonrpc2.CodeMethodNotFound, "Method not found", "MethodNotFound", "no method "+strconvQuote(truncate(method, maxMethodName)), "", http.StatusNotFound)
}

func errInvalidParams(detail, field string) *rpcError {
	return newError(jsonrpc2.CodeInvalidParams, "Invalid params", session.NameInvalidParams, detail, field, http.StatusBadRequest)
}

// toRPCError maps an error from the service to the wire. An internal
// error's text never reaches the client; the caller logs it.
func toRPCError(err error) *rpcError {
	var re *rpcError
	if errors.As(err, &re) {
		return re
	}
	var se *session.Error
	if !errors.As(err, &se) || se.Code == session.CodeInternal {
		w := wire[session.CodeInternal]
		return newError(w.code, w.message, session.NameInternalError, "Internal error.", "", w.status)
	}
	w := wire[se.Code]
	e := newError(w.code, w.message, se.Name, se.Message, se.Field, w.status)
	if se.RetryAfter > 0 {
		e.data.RetryAfter = int((se.RetryAfter + time.Second - 1) / time.Second)
		e.rpc.SetError(e.data)
	}
	return e
}

func strconvQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
