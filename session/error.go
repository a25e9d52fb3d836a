package session

import (
	"errors"
	"fmt"
	"time"
)

// Code classifies an Error; the transports map each code to their own
// (JSON-RPC error code, HTTP status).
type Code int

// Error codes.
const (
	CodeInternal     Code = iota // a failure of the server, not of the request
	CodeInvalid                  // bad params
	CodeUnauthorized             // missing, unknown or expired credentials
	CodeNotFound                 // no such thing, or another merchant's
	CodeConflict                 // not allowed in the current state
	CodeRateLimited              // too many requests
)

// Error names, Brite-style, carried beside the code on the wire.
const (
	NameInvalidParams          = "InvalidParams"
	NameMissingParameter       = "MissingParameter"
	NameUnknownParameter       = "UnknownParameter"
	NameInvalidAmount          = "InvalidAmount"
	NameInvalidCurrency        = "InvalidCurrency"
	NameInvalidCallback        = "InvalidCallback"
	NameInvalidState           = "InvalidState"
	NameInvalidErrorCode       = "InvalidErrorCode"
	NameUnauthorized           = "Unauthorized"
	NameNotFound               = "NotFound"
	NameInvalidStateTransition = "InvalidStateTransition"
	NameVersionConflict        = "VersionConflict"
	NameSessionExpired         = "SessionExpired"
	NameApprovalRequired       = "ApprovalRequired"
	NameAlreadyDecided         = "AlreadyDecided"
	NameRateLimited            = "RateLimited"
	NameInternalError          = "InternalError"
)

// Error is a failure the client is told about: a code, a Brite error name,
// a message, and for bad params the name of the offending field.
type Error struct {
	Code    Code
	Name    string
	Message string
	Field   string
	// RetryAfter is, for CodeRateLimited, how long to wait before trying
	// again (0: unknown).
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("session: %s: %s (%s)", e.Name, e.Message, e.Field)
	}
	return fmt.Sprintf("session: %s: %s", e.Name, e.Message)
}

// Errorf returns an *Error with the given code and name.
func Errorf(code Code, name, format string, args ...any) error {
	return &Error{Code: code, Name: name, Message: fmt.Sprintf(format, args...)}
}

// FieldError returns a CodeInvalid *Error about the named param.
func FieldError(name, field, format string, args ...any) error {
	return &Error{Code: CodeInvalid, Name: name, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err's *Error, or CodeInternal if it has none.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// ErrorName returns the Brite error name of err's *Error, or
// "InternalError" if it has none.
func ErrorName(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Name
	}
	return NameInternalError
}

// Errors the store returns, shared so callers can compare with errors.Is.
var (
	ErrNotFound        = &Error{Code: CodeNotFound, Name: NameNotFound, Message: "not found"}
	ErrUnauthorized    = &Error{Code: CodeUnauthorized, Name: NameUnauthorized, Message: "missing, unknown or expired credentials"}
	ErrVersionConflict = &Error{Code: CodeConflict, Name: NameVersionConflict, Message: "the session changed; read it again"}
)
