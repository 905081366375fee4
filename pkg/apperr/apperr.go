// Package apperr defines the application's error codes. Domain code returns *Error values;
// the HTTP layer maps each code to one status, so the mapping lives in a single place.
package apperr

import (
	"errors"
	"fmt"
)

// Code identifies a class of failure. Codes are part of the public API: clients switch on them.
type Code string

// The stable error codes of the API that are not the business's own: the business declares
// those itself (NewOf), each answered as one of these.
const (
	Invalid Code = "invalid_request"
	// Unauthenticated is a request without a valid bearer token where one is required.
	Unauthenticated Code = "unauthenticated"
	// Forbidden is a caller acting on a user other than themselves, or a service credential
	// that is not one of the callers a route admits.
	Forbidden           Code = "forbidden"
	NotFound            Code = "not_found"
	MethodNotAllowed    Code = "method_not_allowed"
	PayloadTooLarge     Code = "payload_too_large"
	IdempotencyInUse    Code = "idempotency_key_in_use"
	IdempotencyMismatch Code = "idempotency_key_mismatch"
	// Unprocessable is a well-formed request that contradicts what was stored before.
	Unprocessable Code = "unprocessable"
	// FailedDependency is a request that failed for good because a service it needs could
	// not do its part; nothing was done, and repeating the request gets the same answer.
	FailedDependency     Code = "failed_dependency"
	Unavailable          Code = "unavailable"
	Internal             Code = "internal"
	internalErrorMessage      = "internal error"
)

// Error is an error with a code, a message meant for the client, and optional per-field
// reasons for validation failures.
type Error struct {
	Code Code
	// Kind is the code above that answers a code of the business's own (Code), e.g.
	// invalid_request for insufficient_funds; empty when Code is one of them.
	Kind    Code
	Message string
	Fields  map[string]string
	// Err is the underlying cause; it is logged, never shown to clients.
	Err error
}

// Class is the code that decides how e is answered: Kind, or Code when it has no Kind.
func (e *Error) Class() Code {
	if e.Kind != "" {
		return e.Kind
	}
	return e.Code
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// New returns an error with the given code and message.
func New(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// NewOf returns an error with a code of the business's own, answered as the code kind is.
func NewOf(kind, code Code, format string, args ...any) *Error {
	return &Error{Code: code, Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an error with the given code and message that keeps err as its cause.
func Wrap(err error, code Code, message string) *Error {
	return &Error{Code: code, Message: message, Err: err}
}

// Validation returns an invalid_request error listing the reason for each bad field.
func Validation(fields map[string]string) *Error {
	return &Error{Code: Invalid, Message: "request validation failed", Fields: fields}
}

// CodeOf returns the code of the first *Error in err's chain, or Internal.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Internal
}

// As returns the first *Error in err's chain. Errors without a code become Internal errors
// whose message hides the cause.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: Internal, Message: internalErrorMessage, Err: err}
}

// Is reports whether err carries the given code.
func Is(err error, code Code) bool { return CodeOf(err) == code }
