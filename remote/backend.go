package remote

import (
	"context"
	"errors"
	"io"
	"time"
)

// Sentinel errors every Backend translates its failures into.
var (
	// ErrNotFound: the object does not exist.
	ErrNotFound = errors.New("object not found")
	// ErrExists: a put with IfNoneMatch found the key already present.
	ErrExists = errors.New("object already exists")
	// ErrPrecondition: a put with IfMatch found a different version.
	ErrPrecondition = errors.New("precondition failed")
	// ErrInvalidKey: the key is empty, absolute, ends in "/", has empty,
	// "." or ".." elements, or contains a NUL byte or a backslash.
	ErrInvalidKey = errors.New("invalid key")
)

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key  string
	Size int64
	// ETag identifies this version of the object; it changes whenever the
	// contents change. Pass it as PutOptions.IfMatch to update conditionally.
	ETag string
	// ModTime is when the object was written (the server's clock for S3,
	// the file's mtime for a local store). GC spares what is younger than
	// its grace period.
	ModTime time.Time
}

// PutOptions make a Put conditional. At most one of them is set; a Put
// with both fails.
type PutOptions struct {
	// IfNoneMatch: write only if the key does not exist, else ErrExists.
	IfNoneMatch bool
	// IfMatch: write only if the current object has this ETag, else
	// ErrPrecondition (ErrNotFound if there is no object at all).
	IfMatch string
}

// Backend stores immutable objects under slash-separated keys such as
// "packs/ab/ab12…". Keys are relative, never contain "." or ".." elements
// or empty elements, and never end in "/".
//
// Contracts every implementation keeps (the conformance suite in
// remote/remotetest checks them):
//   - Put is atomic: a reader sees the old object, or the whole new one,
//     never a prefix. A failed or cancelled Put leaves no object behind.
//   - Put of an existing key without options replaces it.
//   - Get and Stat of a missing key return an error wrapping ErrNotFound.
//   - Delete of a missing key returns ErrNotFound.
//   - List calls fn for every key under prefix in lexical order; an fn
//     error stops the listing and is returned.
//   - All methods are safe for concurrent use, also by several processes.
type Backend interface {
	// Put stores size bytes read from r under key. size is -1 when unknown.
	// When size >= 0 and r yields fewer or more bytes, Put fails and stores
	// nothing.
	Put(ctx context.Context, key string, r io.Reader, size int64, opts PutOptions) error
	// Get returns length bytes of key starting at offset; length < 0 means
	// to the end. Reading past the end returns what exists (nothing when
	// offset >= size); a negative offset is an error. The reader returns
	// the version current when Get was called. The caller closes it.
	Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
	// Stat returns the object's size and ETag.
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// List calls fn for each object whose key starts with prefix. The
	// prefix may end mid-element ("packs/a" matches "packs/ab/…"); its
	// complete elements must be valid, else ErrInvalidKey. A prefix that
	// matches nothing is not an error.
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error
	// Delete removes key.
	Delete(ctx context.Context, key string) error
	// Location names the backend for humans ("/path/.cas/store", "s3://b/p").
	Location() string
}

// ReadAll reads a whole object.
func ReadAll(ctx context.Context, b Backend, key string) ([]byte, error) {
	rc, err := b.Get(ctx, key, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// Syncer is what a backend on local disk offers: making objects durable.
// Backends whose Put is durable when it returns (S3) lack it.
type Syncer interface {
	SyncKeys(keys ...string) error
	StartSync(key string)
}

// SyncKeys makes the objects at keys durable where b needs telling.
func SyncKeys(b Backend, keys ...string) error {
	if s, ok := b.(Syncer); ok && len(keys) > 0 {
		return s.SyncKeys(keys...)
	}
	return nil
}

// StartSync begins writing an object to disk where b needs that.
func StartSync(b Backend, key string) {
	if s, ok := b.(Syncer); ok {
		s.StartSync(key)
	}
}
