package remote

import (
	"context"
	"errors"
	"time"
)

// ErrNoObjectLock: the backend cannot retain objects (a local directory,
// or a bucket created without Object Lock).
var ErrNoObjectLock = errors.New("object lock not supported")

// Retainer is implemented by backends that can make objects undeletable
// until a time (S3 Object Lock, COMPLIANCE mode). Retention protects one
// stored version of an object: on a server that keeps versions (AWS S3
// requires versioning for Object Lock) a Delete without a version still
// succeeds and hides the object behind a delete marker, and a Put still
// writes a new version over it, while the retained version itself stays
// in the bucket until its date. On a server without versioning (versitygw
// over a plain directory) Delete and overwriting Puts of a retained object
// are refused.
type Retainer interface {
	// CheckRetention returns nil if objects can be retained here, else an
	// error wrapping ErrNoObjectLock saying why (one line).
	CheckRetention(ctx context.Context) error
	// Retain makes key undeletable and unmodifiable until until
	// (COMPLIANCE mode). Extending an existing retention is allowed;
	// shortening is not attempted: if the object is already retained past
	// until, Retain is a no-op. until must be in the future. A key that
	// does not exist returns ErrNotFound; a backend that cannot retain
	// returns an error wrapping ErrNoObjectLock.
	Retain(ctx context.Context, key string, until time.Time) error
	// RetainedUntil returns the time until which key is retained, or the
	// zero time if it is not retained. Missing key -> ErrNotFound. The
	// time is the one stored with the object, also once it has passed:
	// the caller compares it with its clock.
	RetainedUntil(ctx context.Context, key string) (time.Time, error)
}

// RetainedUntil returns the time until which key is retained on b, or the
// zero time, nil when b is not a Retainer (nothing on it is ever
// retained; the key's existence is not checked then).
func RetainedUntil(ctx context.Context, b Backend, key string) (time.Time, error) {
	r, ok := b.(Retainer)
	if !ok {
		return time.Time{}, nil
	}
	return r.RetainedUntil(ctx, key)
}

// noObjectLockError is a one-line explanation of why a backend cannot
// retain objects; it wraps ErrNoObjectLock without repeating its text.
type noObjectLockError struct{ msg string }

func (e *noObjectLockError) Error() string { return e.msg }
func (e *noObjectLockError) Unwrap() error { return ErrNoObjectLock }
