package attest

import "errors"

// Error is an error of package attest as its functions return it: its text
// is "attest: " followed by Err's. Err is the same error without the
// package's name, for a message to a person; errors.Is and errors.As
// see through Error to the Err values below it.
type Error struct{ Err error }

func (e *Error) Error() string { return "attest: " + e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

// wrapError makes *err an *Error, unless it is nil or already holds one
// (a function of this package calling another).
func wrapError(err *error) {
	if *err != nil && !errors.As(*err, new(*Error)) {
		*err = &Error{Err: *err}
	}
}
