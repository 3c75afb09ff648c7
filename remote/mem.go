package remote

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cas-ml/cas/clock"
)

// Mem is a Backend keeping objects in memory, for tests. It keeps the same
// contracts as the persistent backends; unlike Local it can hold both "a"
// and "a/b", as S3 can. ETags are decimal numbers from a counter that
// increases with every Put, so no two versions share one.
type Mem struct {
	clock   clock.Clock // stamps ModTime
	mu      sync.Mutex
	objects map[string]memObject
	version uint64 // last ETag handed out
}

// memObject is one stored version. data is never modified after the Put
// that stored it, so readers can share it without copying.
type memObject struct {
	data []byte
	etag string
	mod  time.Time
}

var _ Backend = (*Mem)(nil)

// NewMem returns an empty in-memory backend whose objects are stamped
// with the wall clock.
func NewMem() *Mem { return NewMemClock(clock.Real()) }

// NewMemClock returns an empty in-memory backend whose objects' ModTime is
// the time on c when they were put: a test moves c to age them.
func NewMemClock(c clock.Clock) *Mem {
	return &Mem{clock: clock.OrReal(c), objects: make(map[string]memObject)}
}

// Location returns "mem://".
func (m *Mem) Location() string { return "mem://" }

// Put reads r completely before storing it, so a failed read leaves the
// key unchanged.
func (m *Mem) Put(ctx context.Context, key string, r io.Reader, size int64, opts PutOptions) error {
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("put %q: %w", key, err)
	}
	if opts.IfNoneMatch && opts.IfMatch != "" {
		return fmt.Errorf("put %s: both IfNoneMatch and IfMatch set", key)
	}
	src := io.Reader(ctxReader{ctx, r})
	if size >= 0 {
		src = io.LimitReader(src, size+1) // one extra byte detects a long reader
	}
	data, err := io.ReadAll(src)
	if err == nil && size >= 0 && int64(len(data)) != size {
		err = fmt.Errorf("got %d bytes from reader, want %d", len(data), size)
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.objects[key]
	switch {
	case opts.IfNoneMatch && ok:
		return fmt.Errorf("put %s: %w", key, ErrExists)
	case opts.IfMatch != "" && !ok:
		return fmt.Errorf("put %s: %w", key, ErrNotFound)
	case opts.IfMatch != "" && cur.etag != opts.IfMatch:
		return fmt.Errorf("put %s: %w", key, ErrPrecondition)
	}
	m.version++
	m.objects[key] = memObject{data: data, etag: strconv.FormatUint(m.version, 10), mod: m.clock.Now()}
	return nil
}

// Get returns a reader over the requested range of the current version.
func (m *Mem) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := ValidateKey(key); err != nil {
		return nil, fmt.Errorf("get %q: %w", key, err)
	}
	if offset < 0 {
		return nil, fmt.Errorf("get %s: negative offset %d", key, offset)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	obj, ok := m.lookup(key)
	if !ok {
		return nil, fmt.Errorf("get %s: %w", key, ErrNotFound)
	}
	size := int64(len(obj.data))
	lo := min(offset, size)
	hi := size
	if length >= 0 && length < hi-lo {
		hi = lo + length
	}
	return io.NopCloser(bytes.NewReader(obj.data[lo:hi])), nil
}

// Stat returns the object's size and ETag.
func (m *Mem) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return ObjectInfo{}, fmt.Errorf("stat %q: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return ObjectInfo{}, fmt.Errorf("stat %s: %w", key, err)
	}
	obj, ok := m.lookup(key)
	if !ok {
		return ObjectInfo{}, fmt.Errorf("stat %s: %w", key, ErrNotFound)
	}
	return ObjectInfo{Key: key, Size: int64(len(obj.data)), ETag: obj.etag, ModTime: obj.mod}, nil
}

func (m *Mem) lookup(key string) (memObject, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	obj, ok := m.objects[key]
	return obj, ok
}

// List reports the objects that existed when it was called. fn runs without
// locks held, so it may call back into m.
func (m *Mem) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	if err := ValidatePrefix(prefix); err != nil {
		return fmt.Errorf("list %q: %w", prefix, err)
	}
	m.mu.Lock()
	var infos []ObjectInfo
	for key, obj := range m.objects {
		if strings.HasPrefix(key, prefix) {
			infos = append(infos, ObjectInfo{Key: key, Size: int64(len(obj.data)), ETag: obj.etag, ModTime: obj.mod})
		}
	}
	m.mu.Unlock()
	slices.SortFunc(infos, func(a, b ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
	for _, info := range infos {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("list %s: %w", prefix, err)
		}
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

// Delete removes key.
func (m *Mem) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("delete %q: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objects[key]; !ok {
		return fmt.Errorf("delete %s: %w", key, ErrNotFound)
	}
	delete(m.objects, key)
	return nil
}
