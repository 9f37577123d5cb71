package cronium

import (
	"errors"
	"fmt"
)

// Error kinds shared by every package. Check them with errors.Is.
var (
	// ErrInvalid marks input that was rejected; the message names the field and the fix.
	ErrInvalid = errors.New("invalid")
	// ErrNotFound marks something that does not exist (an image, a container, an event).
	ErrNotFound = errors.New("not found")
	// ErrConflict marks a request that clashes with the current state.
	ErrConflict = errors.New("conflict")
	// ErrForbidden marks a request the caller may not make.
	ErrForbidden = errors.New("forbidden")
	// ErrUnavailable marks a dependency that did not answer (the container engine, the store).
	ErrUnavailable = errors.New("unavailable")
	// ErrInternal marks a bug or an unexpected state.
	ErrInternal = errors.New("internal")
	// ErrNeverStarted says an execution's script never started (its sandbox
	// came up after its host died): it can be started now without running twice.
	ErrNeverStarted = errors.New("never started")
)

// FieldError is an ErrInvalid that names the offending field and says what is accepted.
type FieldError struct {
	// Field is the flag, YAML key or JSON field, e.g. "--memory"; empty
	// when the caller names it (a value's UnmarshalJSON does not know its field).
	Field   string
	Value   string // Value is what the user gave.
	Problem string // Problem says what is wrong and what is accepted.
}

// Error implements error: `field: "value" problem`.
func (e *FieldError) Error() string {
	msg := e.Problem
	if e.Value != "" {
		msg = fmt.Sprintf("%q %s", e.Value, e.Problem)
	}
	if e.Field == "" {
		return msg
	}
	return e.Field + ": " + msg
}

// Is reports that every FieldError is an ErrInvalid.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

// Invalid returns a FieldError for field.
func Invalid(field, value, problem string) error {
	return &FieldError{Field: field, Value: value, Problem: problem}
}

// Code names the kind of err for clients that cannot use errors.Is (the
// API's error bodies, the runtime API's replies): invalid, not_found,
// conflict, forbidden, unavailable, or internal for anything else.
func Code(err error) string {
	switch {
	case errors.Is(err, ErrInvalid):
		return "invalid"
	case errors.Is(err, ErrNotFound):
		return "not_found"
	case errors.Is(err, ErrConflict):
		return "conflict"
	case errors.Is(err, ErrForbidden):
		return "forbidden"
	case errors.Is(err, ErrUnavailable):
		return "unavailable"
	}
	return "internal"
}
