package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/cas-ml/cas/clock"
)

// ErrInjected is the error a Fault injects where no hook supplies one.
var ErrInjected = errors.New("injected fault")

// Fault wraps a Backend and injects failures, so that tests can reach every
// error path of its callers. A hook left nil passes the call through; hooks
// run on every call and choose by key which calls to break, so a test can
// fail "the third pack" with a counter of its own.
//
// Set the fields before the first call and do not change them while calls
// are in flight; the call counters are safe to read at any time. A Fault
// must not be copied after first use.
type Fault struct {
	// Backend is the wrapped backend.
	Backend Backend

	// Latency delays every call, as a slow network would. A context done
	// during the delay ends the call with the context's error.
	Latency time.Duration
	// Clock times Latency (nil: the wall clock).
	Clock clock.Clock

	// FailPut, FailGet, FailStat and FailDelete, when they return an error
	// for a key, make the call return it (wrapped) without reaching the
	// wrapped backend: nothing is stored or deleted. FailList does the same
	// for a List prefix.
	FailPut    func(key string) error
	FailGet    func(key string) error
	FailStat   func(key string) error
	FailList   func(prefix string) error
	FailDelete func(key string) error

	// FailPutAfter, when ok, makes the reader handed to the wrapped Put fail
	// with ErrInjected after n bytes: a connection dropped mid-upload. The
	// wrapped backend must then store nothing.
	FailPutAfter func(key string) (n int64, ok bool)

	// FlipBitOnGet, when ok, flips the lowest bit of the byte at absolute
	// object offset offset in the data Get returns (if the requested range
	// covers it): silent corruption on the wire or on disk.
	FlipBitOnGet func(key string) (offset int64, ok bool)

	// TruncateGet, when ok, cuts the body Get returns after n bytes: reading
	// on fails with io.ErrUnexpectedEOF, as a dropped download would. n
	// counts bytes of the returned body, not object offsets.
	TruncateGet func(key string) (n int64, ok bool)

	// Calls made to each method, failed ones included.
	Puts, Gets, Stats, Lists, Deletes atomic.Int64
}

var _ Backend = (*Fault)(nil)

// NewFault returns a Fault wrapping b with no faults configured.
func NewFault(b Backend) *Fault { return &Fault{Backend: b} }

// Location returns the wrapped backend's location marked as faulty.
func (f *Fault) Location() string { return "fault+" + f.Backend.Location() }

// delay waits for Latency or until ctx is done.
func (f *Fault) delay(ctx context.Context) error {
	if f.Latency <= 0 {
		return nil
	}
	return clock.OrReal(f.Clock).Sleep(ctx, f.Latency)
}

// before counts a call, applies the latency and runs a failure hook.
func (f *Fault) before(ctx context.Context, counter *atomic.Int64, hook func(string) error, arg string) error {
	counter.Add(1)
	if err := f.delay(ctx); err != nil {
		return err
	}
	if hook != nil {
		return hook(arg)
	}
	return nil
}

// Put stores r through the wrapped backend unless FailPut or FailPutAfter
// break it.
func (f *Fault) Put(ctx context.Context, key string, r io.Reader, size int64, opts PutOptions) error {
	if err := f.before(ctx, &f.Puts, f.FailPut, key); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if f.FailPutAfter != nil {
		if n, ok := f.FailPutAfter(key); ok {
			r = io.MultiReader(io.LimitReader(r, n), errReader{ErrInjected})
		}
	}
	return f.Backend.Put(ctx, key, r, size, opts)
}

// Get reads through the wrapped backend, corrupting or cutting the body
// when FlipBitOnGet or TruncateGet say so.
func (f *Fault) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := f.before(ctx, &f.Gets, f.FailGet, key); err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	rc, err := f.Backend.Get(ctx, key, offset, length)
	if err != nil {
		return nil, err
	}
	if f.FlipBitOnGet != nil {
		if at, ok := f.FlipBitOnGet(key); ok {
			rc = &flipReader{ReadCloser: rc, pos: offset, at: at}
		}
	}
	if f.TruncateGet != nil {
		if n, ok := f.TruncateGet(key); ok {
			rc = &truncReader{ReadCloser: rc, left: n}
		}
	}
	return rc, nil
}

// Stat passes through unless FailStat breaks it.
func (f *Fault) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := f.before(ctx, &f.Stats, f.FailStat, key); err != nil {
		return ObjectInfo{}, fmt.Errorf("stat %s: %w", key, err)
	}
	return f.Backend.Stat(ctx, key)
}

// List passes through unless FailList breaks it.
func (f *Fault) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	if err := f.before(ctx, &f.Lists, f.FailList, prefix); err != nil {
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	return f.Backend.List(ctx, prefix, fn)
}

// Delete passes through unless FailDelete breaks it.
func (f *Fault) Delete(ctx context.Context, key string) error {
	if err := f.before(ctx, &f.Deletes, f.FailDelete, key); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return f.Backend.Delete(ctx, key)
}

// errReader fails every read with err.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// flipReader flips the lowest bit of the byte at object offset at; pos is
// the object offset of the next byte read.
type flipReader struct {
	io.ReadCloser
	pos, at int64
}

func (r *flipReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if r.at >= r.pos && r.at < r.pos+int64(n) {
		p[r.at-r.pos] ^= 0x01
	}
	r.pos += int64(n)
	return n, err
}

// truncReader passes left more bytes, then fails with io.ErrUnexpectedEOF.
type truncReader struct {
	io.ReadCloser
	left int64
}

func (r *truncReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.ErrUnexpectedEOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.ReadCloser.Read(p)
	r.left -= int64(n)
	return n, err
}

// LocalOp is a step of a Local backend that changes the filesystem, as
// its Fault hook sees it. A crash test fails the Nth step, and every one
// after it, to leave the store as a process killed there would.
type LocalOp int

// The steps, in the order a Put takes them: create and write the temp
// file (fsync it with Sync), make the key's directory, link or rename the
// temp file into place, remove the temp file (after a link, or when the
// Put fails), fsync the directory. A Delete unlinks the file, fsyncs its
// directory with Sync and removes the directories it emptied. SyncKeys
// fsyncs files and directories.
const (
	OpCreate     LocalOp = iota + 1 // create the temp file of a Put
	OpWrite                         // one write of a Put's data to its temp file
	OpSync                          // fsync of a file
	OpMkdir                         // make a key's missing parent directories
	OpLink                          // link the temp file into place (IfNoneMatch)
	OpRename                        // rename the temp file into place
	OpRemoveTemp                    // remove a temp file
	OpUnlink                        // remove an object's file (Delete)
	OpRmdir                         // remove a directory a Delete emptied
	OpSyncDir                       // fsync of a directory
)

var localOpNames = [...]string{"", "create", "write", "fsync", "mkdir", "link", "rename", "remove-temp", "unlink", "rmdir", "fsync-dir"}

func (op LocalOp) String() string {
	if op > 0 && int(op) < len(localOpNames) {
		return localOpNames[op]
	}
	return fmt.Sprintf("LocalOp(%d)", int(op))
}
