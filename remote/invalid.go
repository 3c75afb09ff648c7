package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// ErrInvalidObject wraps every report of an object read from a store or a
// bucket that cas would never have written: a ref, pin, tree, segment or
// gc record with a field out of bounds. Such an object is reported as
// damage naming it; nothing is done on its word.
var ErrInvalidObject = errors.New("invalid stored object")

// InvalidError names an object that failed validation, and why.
type InvalidError struct {
	What   string // "ref", "pin", "gc record", …
	Name   string // its name or key
	Reason string
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("%s %s is invalid (%s): treat it as damaged", e.What, e.Name, e.Reason)
}

func (e *InvalidError) Unwrap() error { return ErrInvalidObject }

// MaxSmall bounds what ReadSmall reads: a ref, pin or gc record is a small
// JSON document, and a bucket may serve anything under its name.
const MaxSmall = 16 << 20

// ReadSmall reads a small named object (ref, pin, gc record) whole,
// refusing one larger than MaxSmall with an *InvalidError.
func ReadSmall(ctx context.Context, b Backend, key string) ([]byte, error) {
	rc, err := b.Get(ctx, key, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, MaxSmall+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxSmall {
		return nil, &InvalidError{What: "object", Name: key, Reason: fmt.Sprintf("more than %d bytes", MaxSmall)}
	}
	return data, nil
}
