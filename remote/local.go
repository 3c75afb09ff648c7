package remote

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ValidateKey returns an error wrapping ErrInvalidKey unless key is a valid
// object key: non-empty, slash-separated, relative, without empty, "." or
// ".." elements, and without NUL bytes or backslashes.
func ValidateKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	if strings.ContainsAny(key, "\x00\\") {
		return fmt.Errorf("%w: NUL or backslash", ErrInvalidKey)
	}
	for elem := range strings.SplitSeq(key, "/") {
		if err := validateElem(elem); err != nil {
			return err
		}
	}
	return nil
}

// ValidatePrefix returns an error wrapping ErrInvalidKey unless prefix is a
// valid List prefix: empty, or a valid key followed by "/", or such a
// directory part followed by the start of a name ("packs/a" matches
// "packs/ab/…").
func ValidatePrefix(prefix string) error {
	if strings.ContainsAny(prefix, "\x00\\") {
		return fmt.Errorf("%w: NUL or backslash", ErrInvalidKey)
	}
	i := strings.LastIndexByte(prefix, '/')
	if i < 0 {
		return nil // only a partial name
	}
	for elem := range strings.SplitSeq(prefix[:i], "/") {
		if err := validateElem(elem); err != nil {
			return err
		}
	}
	return nil
}

func validateElem(elem string) error {
	switch elem {
	case "":
		return fmt.Errorf("%w: empty element", ErrInvalidKey)
	case ".", "..":
		return fmt.Errorf("%w: %q element", ErrInvalidKey, elem)
	}
	return nil
}

// Reserved top-level directories of a Local store. Keys starting with them
// are invalid there, and List never reports what they hold.
const (
	localTmpDir  = "tmp"   // temp files of Puts in progress
	localLockDir = "locks" // per-key lock files of conditional writes
)

// Local is a Backend storing each object as a regular file at its key path
// under a directory ("packs/ab/ab12…" is DIR/packs/ab/ab12…). Files are
// written read-only and never modified in place: a Put writes a temp file
// in DIR/tmp and renames (or links) it into place, so readers that opened
// the old file keep reading the old version.
//
// Conditional writes are safe across goroutines and processes sharing the
// directory on one machine: IfNoneMatch links the temp file into place,
// which fails atomically when the key exists; IfMatch, unconditional Puts
// and Deletes serialize on an flock(2) lock file in DIR/locks, so an IfMatch
// compare-and-replace never loses an update. Network filesystems without
// working flock or hard links are not supported for concurrent writers.
//
// A Delete removes the directories it empties, up to but not including
// DIR, so that a deleted key leaves nothing that could stand in the way of
// a later key ("refs/a" after "refs/a/b" was deleted). A Put racing such a
// removal makes its directory again.
//
// Keys whose first element is "tmp" or "locks" are reserved and invalid.
// Because objects are files, a key cannot also be a prefix directory of
// another key ("a" and "a/b" cannot both exist); the second Put fails.
//
// ETags are cheap version stamps, not content hashes: hex of size, mtime in
// nanoseconds and inode number. Every Put creates a new file (a new inode
// while the old version still exists), so the ETag changes on every
// replacement even when the size and contents do not.
type Local struct {
	// Sync makes Put and Delete fsync the file and its directory before
	// returning, so a completed call survives a power loss. Off by default:
	// the write order packs → index → refs already keeps crashes harmless,
	// and per-object fsync costs more than the write itself for small refs.
	Sync bool

	// Fault, when set, is called before each step that changes the
	// filesystem, with the step and the key it serves (for OpRmdir and
	// OpSyncDir the directory, as a slash-separated path below DIR; ""
	// is DIR). An error it returns is taken as that system call's error:
	// the step is skipped and the call goes on as it would after such a
	// failure. Crash tests use it; set it before the first call. Nil
	// costs nothing.
	Fault func(op LocalOp, key string) error

	dir string
}

// step runs the Fault hook, if any, before op.
func (l *Local) step(op LocalOp, key string) error {
	if l.Fault == nil {
		return nil
	}
	return l.Fault(op, key)
}

// dirKey names a directory below the store for the Fault hook.
func (l *Local) dirKey(dir string) string {
	rel, err := filepath.Rel(l.dir, dir)
	if err != nil || rel == "." {
		return ""
	}
	return filepath.ToSlash(rel)
}

// removeTemp removes a temp file that is no longer needed.
func (l *Local) removeTemp(key, tmp string) {
	if l.step(OpRemoveTemp, key) == nil {
		os.Remove(tmp)
	}
}

var _ Backend = (*Local)(nil)

// NewLocal returns a Local backend storing objects under dir, creating dir
// and its reserved subdirectories when missing.
func NewLocal(dir string) (*Local, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open local store %s: %w", dir, err)
	}
	for _, d := range []string{abs, filepath.Join(abs, localTmpDir), filepath.Join(abs, localLockDir)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("open local store %s: %w", dir, err)
		}
	}
	return &Local{dir: abs}, nil
}

// Location returns the store's absolute directory.
func (l *Local) Location() string { return l.dir }

// Path returns the file path of key, whether or not the object exists.
// Callers may open and read it directly (the file is never modified in
// place), but must write only through Put.
func (l *Local) Path(key string) (string, error) {
	if err := l.checkKey(key); err != nil {
		return "", fmt.Errorf("path %q: %w", key, err)
	}
	return l.path(key), nil
}

func (l *Local) path(key string) string {
	return filepath.Join(l.dir, filepath.FromSlash(key))
}

func (l *Local) checkKey(key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	first, _, _ := strings.Cut(key, "/")
	if first == localTmpDir || first == localLockDir {
		return fmt.Errorf("%w: %q is reserved in a local store", ErrInvalidKey, first)
	}
	return nil
}

// Put writes r to a temp file and moves it into place atomically. A failed
// or cancelled Put removes its temp file and leaves the key unchanged.
func (l *Local) Put(ctx context.Context, key string, r io.Reader, size int64, opts PutOptions) error {
	if err := l.checkKey(key); err != nil {
		return fmt.Errorf("put %q: %w", key, err)
	}
	if opts.IfNoneMatch && opts.IfMatch != "" {
		return fmt.Errorf("put %s: both IfNoneMatch and IfMatch set", key)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	tmp, err := l.writeTemp(ctx, key, r, size)
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	final := l.path(key)
	if err := l.place(ctx, key, tmp, final, opts); err != nil {
		// The temp file is still there unless it was renamed into place,
		// and a successful rename returns no error.
		l.removeTemp(key, tmp)
		return fmt.Errorf("put %s: %w", key, err)
	}
	if l.Sync {
		if err := l.syncDir(filepath.Dir(final)); err != nil {
			return fmt.Errorf("put %s: %w", key, err)
		}
	}
	return nil
}

// place moves the temp file tmp to final as opts say, making final's
// directory first. A Delete removes the directories it empties, so the
// directory may vanish between its making and the move (which then fails
// with ENOENT): place makes it again and retries.
func (l *Local) place(ctx context.Context, key, tmp, final string, opts PutOptions) error {
	dir := filepath.Dir(final)
	for attempt := 0; ; attempt++ {
		err := l.mkdirAll(key, dir)
		if errors.Is(err, fs.ErrExist) && attempt < 100 {
			// MkdirAll found the directory there, then gone.
			continue
		}
		if err == nil {
			err = ctx.Err()
		}
		if err == nil {
			switch {
			case opts.IfNoneMatch:
				err = l.link(key, tmp, final)
			case opts.IfMatch != "":
				err = l.replace(key, tmp, final, opts.IfMatch)
			default:
				err = l.replace(key, tmp, final, "")
			}
		}
		// Each retry follows a Delete that emptied the directory: a
		// hundred in a row is a bug, not a race. Yield before trying
		// again, or writers and deleters of one directory can stay in
		// step (on a busy machine 100 lost races in a row were seen).
		if !errors.Is(err, fs.ErrNotExist) || attempt == 100 {
			return err
		}
		runtime.Gosched()
	}
}

// mkdirAll makes dir, the parent of key's file, and its missing parents.
func (l *Local) mkdirAll(key, dir string) error {
	if l.Fault != nil {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			if err := l.Fault(OpMkdir, key); err != nil {
				return err
			}
		}
	}
	if err := os.MkdirAll(dir, 0o755); !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	// A parent made by MkdirAll was pruned before the child's mkdir: make
	// them one by one, from the store's directory down (place retries if
	// a Delete prunes one again meanwhile).
	rel, err := filepath.Rel(l.dir, dir)
	if err != nil || strings.HasPrefix(rel, "..") {
		return os.MkdirAll(dir, 0o755)
	}
	p := l.dir
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		p = filepath.Join(p, part)
		if err := os.Mkdir(p, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	return nil
}

// writeTemp copies r into a new read-only file in the temp directory and
// returns its path. It fails, leaving nothing, when size >= 0 and r does
// not yield exactly size bytes.
func (l *Local) writeTemp(ctx context.Context, key string, r io.Reader, size int64) (string, error) {
	if err := l.step(OpCreate, key); err != nil {
		return "", err
	}
	f, err := l.createTemp()
	if err != nil {
		return "", err
	}
	var dst io.Writer = f
	if l.Fault != nil {
		dst = faultWriter{f, l, key}
	}
	var n int64
	if br, ok := r.(*bytes.Reader); ok && (size < 0 || int64(br.Len()) == size) {
		// The bytes are in memory already (a pack just built): written
		// from where they are, not copied through a buffer first.
		if err = ctx.Err(); err == nil {
			n, err = br.WriteTo(ctxWriter{ctx, dst})
		}
	} else {
		src := io.Reader(ctxReader{ctx, r})
		if size >= 0 {
			src = io.LimitReader(src, size+1) // one extra byte detects a long reader
		}
		// Large writes: a pack is 16 MiB, and 32 KiB writes cost a
		// syscall each.
		n, err = io.CopyBuffer(dst, src, make([]byte, writeBlock))
	}
	if err == nil && size >= 0 && n != size {
		err = fmt.Errorf("got %d bytes from reader, want %d", n, size)
	}
	if err == nil && l.Sync {
		if err = l.step(OpSync, key); err == nil {
			err = f.Sync()
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		l.removeTemp(key, f.Name())
		return "", err
	}
	return f.Name(), nil
}

// faultWriter runs the Fault hook before each write to a temp file.
type faultWriter struct {
	f   *os.File
	l   *Local
	key string
}

func (w faultWriter) Write(p []byte) (int, error) {
	if err := w.l.Fault(OpWrite, w.key); err != nil {
		return 0, err
	}
	return w.f.Write(p)
}

func (l *Local) createTemp() (*os.File, error) {
	dir := filepath.Join(l.dir, localTmpDir)
	for range 10 {
		name := filepath.Join(dir, fmt.Sprintf("put-%016x", rand.Uint64()))
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
		switch {
		case err == nil:
			return f, nil
		case errors.Is(err, fs.ErrNotExist):
			// Someone removed the temp directory; recreate it.
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, err
			}
		case !errors.Is(err, fs.ErrExist):
			return nil, err
		}
	}
	return nil, fmt.Errorf("create temp file in %s: too many attempts", dir)
}

// link moves tmp to final unless final exists (IfNoneMatch).
func (l *Local) link(key, tmp, final string) error {
	err := l.step(OpLink, key)
	if err == nil {
		err = os.Link(tmp, final)
	}
	switch {
	case err == nil:
		l.removeTemp(key, tmp)
		return nil
	case errors.Is(err, fs.ErrExist):
		return ErrExists
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.ENOTSUP),
		errors.Is(err, syscall.EOPNOTSUPP), errors.Is(err, syscall.EMLINK):
		// The filesystem has no hard links: check and rename under the
		// key's lock instead.
		return l.renameIfAbsent(key, tmp, final)
	}
	return err
}

func (l *Local) renameIfAbsent(key, tmp, final string) error {
	unlock, err := l.lock(key)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := os.Lstat(final); err == nil {
		return ErrExists
	} else if !isNotExist(err) {
		return err
	}
	if err := l.step(OpRename, key); err != nil {
		return err
	}
	return os.Rename(tmp, final)
}

// replace renames tmp over final under the key's lock. With a non-empty
// etag the current object must exist and have that ETag.
func (l *Local) replace(key, tmp, final, etag string) error {
	unlock, err := l.lock(key)
	if err != nil {
		return err
	}
	defer unlock()
	if etag != "" {
		fi, err := os.Stat(final)
		switch {
		case isNotExist(err) || err == nil && !fi.Mode().IsRegular():
			return ErrNotFound
		case err != nil:
			return err
		case localETag(fi) != etag:
			return ErrPrecondition
		}
	}
	if err := l.step(OpRename, key); err != nil {
		return err
	}
	return os.Rename(tmp, final)
}

// Get opens the object's file and returns a reader over the requested range
// of the version that existed at the time of the call.
func (l *Local) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := l.checkKey(key); err != nil {
		return nil, fmt.Errorf("get %q: %w", key, err)
	}
	if offset < 0 {
		return nil, fmt.Errorf("get %s: negative offset %d", key, offset)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	f, err := os.Open(l.path(key))
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, notFound(err))
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = ErrNotFound
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	n := max(fi.Size()-offset, 0)
	if length >= 0 && length < n {
		n = length
	}
	return &fileSection{io.NewSectionReader(f, offset, n), f}, nil
}

// fileSection reads a range of an open file and closes it.
type fileSection struct {
	*io.SectionReader
	f *os.File
}

func (s *fileSection) Close() error { return s.f.Close() }

// Stat returns the object's size and ETag.
func (l *Local) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := l.checkKey(key); err != nil {
		return ObjectInfo{}, fmt.Errorf("stat %q: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return ObjectInfo{}, fmt.Errorf("stat %s: %w", key, err)
	}
	fi, err := os.Stat(l.path(key))
	if err == nil && !fi.Mode().IsRegular() {
		err = ErrNotFound
	}
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("stat %s: %w", key, notFound(err))
	}
	return ObjectInfo{Key: key, Size: fi.Size(), ETag: localETag(fi), ModTime: fi.ModTime()}, nil
}

// List walks the directories under prefix in key order. Objects created or
// deleted during the walk may or may not be reported.
func (l *Local) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	if err := ValidatePrefix(prefix); err != nil {
		return fmt.Errorf("list %q: %w", prefix, err)
	}
	dir, name := "", prefix
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		dir, name = prefix[:i+1], prefix[i+1:]
	}
	err := l.walk(ctx, dir, name, fn)
	var fe fnError
	if errors.As(err, &fe) {
		return fe.err
	}
	if err != nil {
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	return nil
}

// fnError carries an error returned by a List callback out of the walk,
// so that List returns it unwrapped.
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }

// walk reports the objects in directory dir (a key prefix, "" or ending in
// "/") whose names start with name, descending into subdirectories.
func (l *Local) walk(ctx context.Context, dir, name string, fn func(ObjectInfo) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	entries, err := os.ReadDir(filepath.Join(l.dir, filepath.FromSlash(dir)))
	if isNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	type entry struct {
		fs.DirEntry
		sortKey string // the name, plus "/" for a directory
	}
	var todo []entry
	for _, e := range entries {
		n := e.Name()
		if !strings.HasPrefix(n, name) || strings.ContainsRune(n, '\\') {
			continue
		}
		if dir == "" && (n == localTmpDir || n == localLockDir) {
			continue
		}
		switch {
		case e.IsDir():
			todo = append(todo, entry{e, n + "/"})
		case e.Type().IsRegular():
			todo = append(todo, entry{e, n})
		}
	}
	// Keys sort by bytes, and every key below directory "a" starts with
	// "a/": sorting directories as "a/" puts "a-b" before "a/x" before "a0".
	slices.SortFunc(todo, func(a, b entry) int { return strings.Compare(a.sortKey, b.sortKey) })
	for _, e := range todo {
		if e.IsDir() {
			if err := l.walk(ctx, dir+e.sortKey, "", fn); err != nil {
				return err
			}
			continue
		}
		fi, err := e.Info()
		if isNotExist(err) {
			continue // deleted since ReadDir
		}
		if err != nil {
			return err
		}
		if err := fn(ObjectInfo{Key: dir + e.Name(), Size: fi.Size(), ETag: localETag(fi), ModTime: fi.ModTime()}); err != nil {
			return fnError{err}
		}
	}
	return nil
}

// Delete removes the object's file, then the directories that this left
// empty, up to but not including the store's directory.
func (l *Local) Delete(ctx context.Context, key string) error {
	if err := l.checkKey(key); err != nil {
		return fmt.Errorf("delete %q: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	if err := l.remove(key); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	l.pruneDirs(filepath.Dir(l.path(key)))
	return nil
}

// pruneDirs removes dir and its parents below the store's directory while
// they are empty. Failing to is harmless (a directory is not an object),
// and a Put that races a removal makes its directory again (place).
func (l *Local) pruneDirs(dir string) {
	removed := ""
	for dir != l.dir && strings.HasPrefix(dir, l.dir+string(filepath.Separator)) {
		if l.Fault != nil && !emptyDir(dir) {
			break // rmdir would fail: no step to report
		}
		if l.step(OpRmdir, l.dirKey(dir)) != nil || os.Remove(dir) != nil {
			break // not empty (ENOTEMPTY, EEXIST), or gone already
		}
		removed = dir
		dir = filepath.Dir(dir)
	}
	if removed != "" && l.Sync {
		_ = l.syncDir(filepath.Dir(removed))
	}
}

// emptyDir reports whether dir is a directory holding nothing.
func emptyDir(dir string) bool {
	d, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer d.Close()
	names, err := d.Readdirnames(1)
	return len(names) == 0 && errors.Is(err, io.EOF)
}

func (l *Local) remove(key string) error {
	unlock, err := l.lock(key)
	if err != nil {
		return err
	}
	defer unlock()
	p := l.path(key)
	fi, err := os.Lstat(p)
	if err == nil && fi.IsDir() {
		return ErrNotFound // os.Remove would delete an empty directory
	}
	if err == nil {
		if err = l.step(OpUnlink, key); err != nil {
			return err
		}
		err = os.Remove(p)
	}
	if err != nil {
		return notFound(err)
	}
	if l.Sync {
		return l.syncDir(filepath.Dir(p))
	}
	return nil
}

// lock takes an exclusive flock on the key's lock file and returns the
// function releasing it. The holder removes the lock file on release, so
// the lock directory stays empty at rest; a waiter that then wins the flock
// on the removed file notices that the path no longer names it and retries.
func (l *Local) lock(key string) (unlock func(), err error) {
	sum := sha256.Sum256([]byte(key))
	dir := filepath.Join(l.dir, localLockDir)
	p := filepath.Join(dir, hex.EncodeToString(sum[:]))
	for {
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o666)
		if errors.Is(err, fs.ErrNotExist) {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("lock: %w", err)
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("lock: %w", err)
		}
		if err := flock(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", p, err)
		}
		held, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock: %w", err)
		}
		now, err := os.Stat(p)
		if err == nil && os.SameFile(held, now) {
			return func() {
				os.Remove(p)
				f.Close() // releases the flock
			}, nil
		}
		f.Close()
		if err != nil && !isNotExist(err) {
			return nil, fmt.Errorf("lock: %w", err)
		}
	}
}

// flock blocks until it holds an exclusive lock on f.
func flock(f *os.File) error {
	conn, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	err = conn.Control(func(fd uintptr) {
		for {
			ferr = unix.Flock(int(fd), unix.LOCK_EX)
			if ferr != unix.EINTR {
				return
			}
		}
	})
	if err != nil {
		return err
	}
	return ferr
}

// localETag is the version stamp of a stored file: size, mtime and inode.
func localETag(fi fs.FileInfo) string {
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	return fmt.Sprintf("%x-%x-%x", fi.Size(), fi.ModTime().UnixNano(), ino)
}

// isNotExist reports whether err means that a path does not exist,
// including a file standing where a directory of the path should be.
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// notFound translates "no such file" errors into ErrNotFound.
func notFound(err error) error {
	if isNotExist(err) {
		return ErrNotFound
	}
	return err
}

// syncDir fsyncs a directory of the store.
func (l *Local) syncDir(dir string) error {
	if err := l.step(OpSyncDir, l.dirKey(dir)); err != nil {
		return err
	}
	return SyncDir(dir)
}

// SyncDir fsyncs directory dir, so that the names just created or
// renamed in it last.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// ctxReader fails reads once ctx is done, so that a cancelled Put stops.
// writeBlock is the most a temp file is written at once: large enough
// that a pack of 16 MiB takes few system calls, small enough that what
// the kernel copies from stays in the core's cache (writes of 1 MiB from a
// pack in memory cost twice the system time, measured on a push of 1 GiB).
const writeBlock = 256 << 10

// ctxWriter writes to w in pieces of writeBlock bytes, and stops between
// two once ctx ends.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if err := c.ctx.Err(); err != nil {
			return n, err
		}
		k, err := c.w.Write(p[n : n+min(len(p)-n, writeBlock)])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// RemoveStaleTemp deletes temp files of Puts that started before cutoff:
// what a killed process left behind. Live Puts of other
// processes are younger and stay.
func (l *Local) RemoveStaleTemp(cutoff time.Time) (int, error) {
	dir := filepath.Join(l.dir, localTmpDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		if isNotExist(err) {
			return 0, nil
		}
		return 0, err
	}
	removed := 0
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() || fi.ModTime().After(cutoff) {
			continue
		}
		if os.Remove(filepath.Join(dir, e.Name())) == nil {
			removed++
		}
	}
	return removed, nil
}

// SyncKeys makes the named objects durable: their data and the directory
// entries that name them reach the disk. cas calls it on a push's packs
// before it writes the index segment that names them, and on that
// segment before the ref, so that even a power failure cannot leave a
// reference to data that is not on disk.
func (l *Local) SyncKeys(keys ...string) error {
	dirs := map[string]bool{}
	for _, key := range keys {
		if err := l.checkKey(key); err != nil {
			return err
		}
		p := l.path(key)
		f, err := os.Open(p)
		if err != nil {
			if isNotExist(err) {
				return fmt.Errorf("sync %s: %w", key, ErrNotFound)
			}
			return err
		}
		err = l.step(OpSync, key)
		if err == nil {
			err = f.Sync()
		}
		f.Close()
		if err != nil {
			return fmt.Errorf("sync %s: %w", key, err)
		}
		dirs[filepath.Dir(p)] = true
	}
	for _, d := range slices.Sorted(maps.Keys(dirs)) { // one order: crash tests count steps
		if err := l.syncDir(d); err != nil {
			return fmt.Errorf("sync %s: %w", d, err)
		}
	}
	return nil
}

// StartSync asks the kernel to begin writing an object to disk without
// waiting for it, so that a later SyncKeys finds most of it there already.
func (l *Local) StartSync(key string) {
	if l.checkKey(key) != nil {
		return
	}
	f, err := os.Open(l.path(key))
	if err != nil {
		return
	}
	_ = unix.SyncFileRange(int(f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
	f.Close()
}
