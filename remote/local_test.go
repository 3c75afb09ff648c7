package remote_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cas-ml/cas/remote"
	"github.com/cas-ml/cas/remote/remotetest"
)

func newLocal(t *testing.T) *remote.Local {
	t.Helper()
	l, err := remote.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLocal(t *testing.T) {
	t.Parallel()
	remotetest.Run(t, func(t *testing.T) remote.Backend { return newLocal(t) })
}

func TestLocalSync(t *testing.T) {
	t.Parallel()
	remotetest.Run(t, func(t *testing.T) remote.Backend {
		l := newLocal(t)
		l.Sync = true
		return l
	})
}

// TestLocalShared runs the suite with every call going to one of two Local
// instances on the same directory in turn, as two processes would share it.
func TestLocalShared(t *testing.T) {
	t.Parallel()
	remotetest.Run(t, func(t *testing.T) remote.Backend {
		dir := t.TempDir()
		a, err := remote.NewLocal(dir)
		if err != nil {
			t.Fatal(err)
		}
		b, err := remote.NewLocal(dir)
		if err != nil {
			t.Fatal(err)
		}
		return &alternating{backends: []remote.Backend{a, b}}
	})
}

// alternating sends each call to the next of its backends in turn.
type alternating struct {
	backends []remote.Backend
	calls    atomic.Uint64
}

func (a *alternating) next() remote.Backend {
	return a.backends[a.calls.Add(1)%uint64(len(a.backends))]
}

func (a *alternating) Put(ctx context.Context, key string, r io.Reader, size int64, opts remote.PutOptions) error {
	return a.next().Put(ctx, key, r, size, opts)
}

func (a *alternating) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	return a.next().Get(ctx, key, offset, length)
}

func (a *alternating) Stat(ctx context.Context, key string) (remote.ObjectInfo, error) {
	return a.next().Stat(ctx, key)
}

func (a *alternating) List(ctx context.Context, prefix string, fn func(remote.ObjectInfo) error) error {
	return a.next().List(ctx, prefix, fn)
}

func (a *alternating) Delete(ctx context.Context, key string) error {
	return a.next().Delete(ctx, key)
}

func (a *alternating) Location() string { return a.backends[0].Location() }

func TestLocalIfNoneMatchTwoInstances(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var locals [2]*remote.Local
	for i := range locals {
		l, err := remote.NewLocal(dir)
		if err != nil {
			t.Fatal(err)
		}
		locals[i] = l
	}
	const writers = 8
	for round := range 20 {
		key := "refs/round" + string(rune('a'+round))
		var wins atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range writers {
			wg.Go(func() {
				<-start
				content := []byte{byte(i)}
				err := locals[i%2].Put(t.Context(), key, bytes.NewReader(content), 1, remote.PutOptions{IfNoneMatch: true})
				switch {
				case err == nil:
					wins.Add(1)
				case !errors.Is(err, remote.ErrExists):
					t.Errorf("writer %d: got error %v, want nil or ErrExists", i, err)
				}
			})
		}
		close(start)
		wg.Wait()
		if got := wins.Load(); got != 1 {
			t.Errorf("round %d: got %d winners, want 1", round, got)
		}
	}
	checkEmpty(t, filepath.Join(dir, "tmp"))
	checkEmpty(t, filepath.Join(dir, "locks"))
}

// checkEmpty fails unless dir exists and holds nothing.
func checkEmpty(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("ReadDir(%s): %v", dir, err)
	}
	for _, e := range entries {
		t.Errorf("%s: got leftover %s, want nothing", dir, e.Name())
	}
}

// brokenReader yields n zero bytes, then fails.
type brokenReader struct{ n int }

var errReaderBroke = errors.New("reader broke")

func (r *brokenReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, errReaderBroke
	}
	n := min(len(p), r.n)
	clear(p[:n])
	r.n -= n
	return n, nil
}

// TestLocalFailedPutsLeaveNothing checks that failed and refused Puts leave
// no object, temp file or lock file behind.
func TestLocalFailedPutsLeaveNothing(t *testing.T) {
	t.Parallel()
	l := newLocal(t)
	ctx := t.Context()
	if err := l.Put(ctx, "refs/main", bytes.NewReader([]byte("v1")), 2, remote.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		key  string
		r    io.Reader
		size int64
		opts remote.PutOptions
		want error // nil: any error
	}{
		{"reader fails midway", "packs/new", &brokenReader{n: 3 << 20}, 4 << 20, remote.PutOptions{}, errReaderBroke},
		{"reader fails, unknown size", "packs/new", &brokenReader{n: 100}, -1, remote.PutOptions{}, errReaderBroke},
		{"reader fails over existing", "refs/main", &brokenReader{n: 1}, 2, remote.PutOptions{}, errReaderBroke},
		{"short reader", "packs/new", bytes.NewReader(make([]byte, 10)), 11, remote.PutOptions{}, nil},
		{"long reader", "packs/new", bytes.NewReader(make([]byte, 12)), 11, remote.PutOptions{}, nil},
		{"if none match refused", "refs/main", bytes.NewReader([]byte("v2")), 2, remote.PutOptions{IfNoneMatch: true}, remote.ErrExists},
		{"if match refused", "refs/main", bytes.NewReader([]byte("v2")), 2, remote.PutOptions{IfMatch: "stale"}, remote.ErrPrecondition},
		{"if match missing", "refs/other", bytes.NewReader([]byte("v2")), 2, remote.PutOptions{IfMatch: "stale"}, remote.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := l.Put(ctx, tt.key, tt.r, tt.size, tt.opts)
			if err == nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Put: got error %v, want %v", err, tt.want)
			}
			var keys []string
			err = l.List(ctx, "", func(info remote.ObjectInfo) error {
				keys = append(keys, info.Key)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) != 1 || keys[0] != "refs/main" {
				t.Errorf("List after failed Put: got %q, want [refs/main]", keys)
			}
			got, err := remote.ReadAll(ctx, l, "refs/main")
			if err != nil || string(got) != "v1" {
				t.Errorf("ReadAll(refs/main): got %q, %v, want \"v1\"", got, err)
			}
			checkEmpty(t, filepath.Join(l.Location(), "tmp"))
			checkEmpty(t, filepath.Join(l.Location(), "locks"))
		})
	}
}

func TestLocalPath(t *testing.T) {
	t.Parallel()
	l := newLocal(t)
	content := []byte("pack bytes")
	if err := l.Put(t.Context(), "packs/ab/ab12", bytes.NewReader(content), int64(len(content)), remote.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	p, err := l.Path("packs/ab/ab12")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(l.Location(), "packs", "ab", "ab12"); p != want {
		t.Errorf("Path: got %s, want %s", p, want)
	}
	got, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(got, content) {
		t.Errorf("ReadFile(Path): got %q, %v, want %q", got, err, content)
	}
	for _, key := range []string{"", "../x", "a//b", "tmp/x"} {
		if _, err := l.Path(key); !errors.Is(err, remote.ErrInvalidKey) {
			t.Errorf("Path(%q): got error %v, want ErrInvalidKey", key, err)
		}
	}
}

func TestLocalReservedKeys(t *testing.T) {
	t.Parallel()
	l := newLocal(t)
	ctx := t.Context()
	tests := []struct {
		key  string
		want error
	}{
		{"tmp", remote.ErrInvalidKey},
		{"tmp/x", remote.ErrInvalidKey},
		{"locks/x", remote.ErrInvalidKey},
		{"tmpx", nil},
		{"a/tmp", nil},
		{"a/locks/b", nil},
	}
	for _, tt := range tests {
		err := l.Put(ctx, tt.key, bytes.NewReader([]byte("x")), 1, remote.PutOptions{})
		if !errors.Is(err, tt.want) {
			t.Errorf("Put(%q): got error %v, want %v", tt.key, err, tt.want)
		}
	}
	var keys []string
	if err := l.List(ctx, "", func(info remote.ObjectInfo) error {
		keys = append(keys, info.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"a/locks/b", "a/tmp", "tmpx"}; len(keys) != len(want) || keys[0] != want[0] || keys[1] != want[1] || keys[2] != want[2] {
		t.Errorf("List: got %q, want %q", keys, want)
	}
}

// TestLocalKeyIsDirectory checks the one limit of keys as file paths: a
// key cannot also be a directory of other keys.
func TestLocalKeyIsDirectory(t *testing.T) {
	t.Parallel()
	l := newLocal(t)
	ctx := t.Context()
	if err := l.Put(ctx, "a", bytes.NewReader([]byte("x")), 1, remote.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := l.Put(ctx, "a/b", bytes.NewReader([]byte("y")), 1, remote.PutOptions{}); err == nil {
		t.Error("Put(a/b) with a file at a: got nil error, want failure")
	}
	if err := l.Put(ctx, "c/d", bytes.NewReader([]byte("y")), 1, remote.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := l.Put(ctx, "c", bytes.NewReader([]byte("x")), 1, remote.PutOptions{}); err == nil {
		t.Error("Put(c) with a directory at c: got nil error, want failure")
	}
	if err := l.Put(ctx, "c", bytes.NewReader([]byte("x")), 1, remote.PutOptions{IfNoneMatch: true}); err == nil {
		t.Error("Put(c, IfNoneMatch) with a directory at c: got nil error, want failure")
	}
	if _, err := l.Stat(ctx, "a/b"); !errors.Is(err, remote.ErrNotFound) {
		t.Errorf("Stat(a/b): got error %v, want ErrNotFound", err)
	}
	checkEmpty(t, filepath.Join(l.Location(), "tmp"))
}

func TestLocalETagChangesOnReplace(t *testing.T) {
	t.Parallel()
	l := newLocal(t)
	ctx := t.Context()
	seen := map[string]bool{}
	for i := range 10 {
		if err := l.Put(ctx, "refs/x", bytes.NewReader([]byte("same")), 4, remote.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		info, err := l.Stat(ctx, "refs/x")
		if err != nil {
			t.Fatal(err)
		}
		if seen[info.ETag] {
			t.Fatalf("Put %d of identical contents: got ETag %q again, want a new one", i, info.ETag)
		}
		seen[info.ETag] = true
	}
}

func TestNewLocalCreatesDir(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "a", "b", "store")
	l, err := remote.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if l.Location() != dir {
		t.Errorf("Location: got %s, want %s", l.Location(), dir)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("Stat(%s): got %v, %v, want a directory", dir, fi, err)
	}
	// A second instance on an existing store works as well.
	if _, err := remote.NewLocal(dir); err != nil {
		t.Errorf("NewLocal on an existing store: %v", err)
	}
}

// listKeys returns every key of b.
func listKeys(t *testing.T, b remote.Backend) []string {
	t.Helper()
	var keys []string
	if err := b.List(t.Context(), "", func(info remote.ObjectInfo) error {
		keys = append(keys, info.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

// dirsBelow returns the directories below root (root excluded), slash-
// separated and relative, in walk order.
func dirsBelow(t *testing.T, root string) []string {
	t.Helper()
	var dirs []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != root {
			dirs = append(dirs, filepath.ToSlash(mustRel(t, root, p)))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dirs
}

func mustRel(t *testing.T, base, p string) string {
	t.Helper()
	rel, err := filepath.Rel(base, p)
	if err != nil {
		t.Fatal(err)
	}
	return rel
}

// TestLocalDeleteRemovesEmptiedDirs checks that a Delete leaves no empty
// directory behind, so that a deleted "refs/grp/one" does not keep the
// name "refs/grp" from being a key, and that it keeps directories still
// in use, the store's directory and its reserved ones.
func TestLocalDeleteRemovesEmptiedDirs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		put      []string
		del      []string
		wantDirs []string // below the store, beside tmp and locks
	}{
		{"last key of nested dirs", []string{"refs/grp/one"}, []string{"refs/grp/one"}, nil},
		{"sibling stays", []string{"refs/grp/one", "refs/grp/two"}, []string{"refs/grp/one"}, []string{"refs", "refs/grp"}},
		{"cousin stays", []string{"refs/grp/one", "refs/x"}, []string{"refs/grp/one"}, []string{"refs"}},
		{"pack fan-out dir", []string{"packs/ab/ab01", "packs/cd/cd01"}, []string{"packs/ab/ab01"}, []string{"packs", "packs/cd"}},
		{"top-level key", []string{"config-like"}, []string{"config-like"}, nil},
		{"all of gc", []string{"gc/plans/p1", "gc/sweeps/p1", "gc/done/d1"}, []string{"gc/plans/p1", "gc/sweeps/p1"}, []string{"gc", "gc/done"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLocal(t)
			ctx := t.Context()
			for _, k := range tt.put {
				if err := l.Put(ctx, k, bytes.NewReader([]byte(k)), int64(len(k)), remote.PutOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			for _, k := range tt.del {
				if err := l.Delete(ctx, k); err != nil {
					t.Fatalf("Delete(%s): %v", k, err)
				}
			}
			want := append([]string{"locks"}, tt.wantDirs...)
			want = append(want, "tmp")
			slices.Sort(want)
			got := dirsBelow(t, l.Location())
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("directories after Delete: got %q, want %q", got, want)
			}
		})
	}
}

// TestLocalKeyWhereDeletedDirWas is the user-visible case: after the only
// key below "refs/grp/" is deleted, "refs/grp" can be created, also with
// IfNoneMatch (push --name grp).
func TestLocalKeyWhereDeletedDirWas(t *testing.T) {
	t.Parallel()
	l := newLocal(t)
	ctx := t.Context()
	if err := l.Put(ctx, "refs/grp/one", bytes.NewReader([]byte("1")), 1, remote.PutOptions{IfNoneMatch: true}); err != nil {
		t.Fatal(err)
	}
	if err := l.Delete(ctx, "refs/grp/one"); err != nil {
		t.Fatal(err)
	}
	if err := l.Put(ctx, "refs/grp", bytes.NewReader([]byte("g")), 1, remote.PutOptions{IfNoneMatch: true}); err != nil {
		t.Fatalf("Put(refs/grp) after deleting refs/grp/one: got %v, want nil", err)
	}
	if got := listKeys(t, l); !slices.Equal(got, []string{"refs/grp"}) {
		t.Errorf("List: got %q, want [refs/grp]", got)
	}
}

// TestLocalPutRacingDirRemoval removes a Put's freshly made directory just
// before the Put moves its file in, as a Delete emptying that directory
// at that moment would: the Put makes the directory again and succeeds.
func TestLocalPutRacingDirRemoval(t *testing.T) {
	t.Parallel()
	for _, opts := range []remote.PutOptions{{IfNoneMatch: true}, {}} {
		t.Run(fmt.Sprintf("IfNoneMatch=%v", opts.IfNoneMatch), func(t *testing.T) {
			l := newLocal(t)
			removed := 0
			l.Fault = func(op remote.LocalOp, key string) error {
				if (op == remote.OpLink || op == remote.OpRename) && removed < 3 {
					removed++
					// What a racing Delete's rmdir does: the directories
					// are empty, the file is not linked yet.
					if err := os.Remove(filepath.Join(l.Location(), "refs", "grp")); err != nil {
						t.Errorf("remove refs/grp: %v", err)
					}
					if err := os.Remove(filepath.Join(l.Location(), "refs")); err != nil {
						t.Errorf("remove refs: %v", err)
					}
				}
				return nil
			}
			if err := l.Put(t.Context(), "refs/grp/one", bytes.NewReader([]byte("1")), 1, opts); err != nil {
				t.Fatalf("Put with its directory removed %d times: got %v, want nil", removed, err)
			}
			if removed != 3 {
				t.Errorf("got %d removals, want 3", removed)
			}
			got, err := remote.ReadAll(t.Context(), l, "refs/grp/one")
			if err != nil || string(got) != "1" {
				t.Errorf("ReadAll: got %q, %v, want \"1\"", got, err)
			}
			checkEmpty(t, filepath.Join(l.Location(), "tmp"))
		})
	}
}

// TestLocalPutDeleteSameDir runs Puts and Deletes of keys sharing one
// directory at once: each Delete may remove the directory another Put
// has just made, and no call may fail for it.
func TestLocalPutDeleteSameDir(t *testing.T) {
	t.Parallel()
	l := newLocal(t)
	ctx := t.Context()
	const workers, rounds = 4, 200
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			key := fmt.Sprintf("gc/keeps/k%d", w)
			for i := range rounds {
				opts := remote.PutOptions{IfNoneMatch: i%2 == 0}
				if err := l.Put(ctx, key, bytes.NewReader([]byte("x")), 1, opts); err != nil {
					t.Errorf("worker %d round %d: Put: %v", w, i, err)
					return
				}
				if err := l.Delete(ctx, key); err != nil {
					t.Errorf("worker %d round %d: Delete: %v", w, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got := listKeys(t, l); len(got) != 0 {
		t.Errorf("List: got %q, want nothing", got)
	}
	if got := dirsBelow(t, l.Location()); !slices.Equal(got, []string{"locks", "tmp"}) {
		t.Errorf("directories: got %q, want [locks tmp]", got)
	}
}

// step is one call of a Local's Fault hook.
type step struct {
	op  remote.LocalOp
	key string
}

func (s step) String() string { return s.op.String() + " " + s.key }

// recordSteps runs fn with a Fault hook that records every step.
func recordSteps(l *remote.Local, fn func() error) ([]step, error) {
	var steps []step
	l.Fault = func(op remote.LocalOp, key string) error {
		steps = append(steps, step{op, key})
		return nil
	}
	defer func() { l.Fault = nil }()
	err := fn()
	return steps, err
}

// TestLocalFaultSteps pins the steps each call reports to the Fault hook.
func TestLocalFaultSteps(t *testing.T) {
	t.Parallel()
	put := func(key string, data string, opts remote.PutOptions) func(*remote.Local) error {
		return func(l *remote.Local) error {
			return l.Put(t.Context(), key, bytes.NewReader([]byte(data)), int64(len(data)), opts)
		}
	}
	big := string(make([]byte, 3*256<<10)) // three writes of 256 KiB
	tests := []struct {
		name  string
		sync  bool
		setup []string // keys stored first
		call  func(*remote.Local) error
		want  []step
	}{
		{"put new dir, IfNoneMatch", false, nil, put("refs/a/b", "x", remote.PutOptions{IfNoneMatch: true}),
			[]step{{remote.OpCreate, "refs/a/b"}, {remote.OpWrite, "refs/a/b"}, {remote.OpMkdir, "refs/a/b"}, {remote.OpLink, "refs/a/b"}, {remote.OpRemoveTemp, "refs/a/b"}}},
		{"put existing dir, replace", false, []string{"refs/a/c"}, put("refs/a/b", "x", remote.PutOptions{}),
			[]step{{remote.OpCreate, "refs/a/b"}, {remote.OpWrite, "refs/a/b"}, {remote.OpRename, "refs/a/b"}}},
		{"put with Sync", true, []string{"refs/a/c"}, put("refs/a/b", "x", remote.PutOptions{IfNoneMatch: true}),
			[]step{{remote.OpCreate, "refs/a/b"}, {remote.OpWrite, "refs/a/b"}, {remote.OpSync, "refs/a/b"}, {remote.OpLink, "refs/a/b"}, {remote.OpRemoveTemp, "refs/a/b"}, {remote.OpSyncDir, "refs/a"}}},
		{"put of 768 KiB", false, []string{"packs/ab/ab00"}, put("packs/ab/ab01", big, remote.PutOptions{IfNoneMatch: true}),
			[]step{{remote.OpCreate, "packs/ab/ab01"}, {remote.OpWrite, "packs/ab/ab01"}, {remote.OpWrite, "packs/ab/ab01"}, {remote.OpWrite, "packs/ab/ab01"}, {remote.OpLink, "packs/ab/ab01"}, {remote.OpRemoveTemp, "packs/ab/ab01"}}},
		{"put refused", false, []string{"refs/a/b"}, put("refs/a/b", "x", remote.PutOptions{IfNoneMatch: true}),
			[]step{{remote.OpCreate, "refs/a/b"}, {remote.OpWrite, "refs/a/b"}, {remote.OpLink, "refs/a/b"}, {remote.OpRemoveTemp, "refs/a/b"}}},
		{"delete last of two dirs", false, []string{"refs/a/b"}, func(l *remote.Local) error { return l.Delete(t.Context(), "refs/a/b") },
			[]step{{remote.OpUnlink, "refs/a/b"}, {remote.OpRmdir, "refs/a"}, {remote.OpRmdir, "refs"}}},
		{"delete with Sync, sibling stays", true, []string{"refs/a/b", "refs/a/c"}, func(l *remote.Local) error { return l.Delete(t.Context(), "refs/a/b") },
			[]step{{remote.OpUnlink, "refs/a/b"}, {remote.OpSyncDir, "refs/a"}}},
		{"sync keys", false, []string{"packs/cd/cd01", "packs/ab/ab01", "index/11"}, func(l *remote.Local) error { return l.SyncKeys("packs/cd/cd01", "packs/ab/ab01", "index/11") },
			[]step{{remote.OpSync, "packs/cd/cd01"}, {remote.OpSync, "packs/ab/ab01"}, {remote.OpSync, "index/11"}, {remote.OpSyncDir, "index"}, {remote.OpSyncDir, "packs/ab"}, {remote.OpSyncDir, "packs/cd"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLocal(t)
			for _, k := range tt.setup {
				if err := l.Put(t.Context(), k, bytes.NewReader([]byte("s")), 1, remote.PutOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			l.Sync = tt.sync
			got, err := recordSteps(l, func() error { return tt.call(l) })
			if err != nil && !errors.Is(err, remote.ErrExists) {
				t.Fatalf("call: %v", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("steps:\ngot  %v\nwant %v", got, tt.want)
			}
		})
	}
}

// TestLocalFaultFailEachStep fails each step of a Put and of a Delete in
// turn, alone: the call reports the injected error (but for the steps
// whose failure is harmless: removing a temp file, removing an emptied
// directory), the object is either absent or whole, and no temp file
// stays unless its removal was the step that failed.
func TestLocalFaultFailEachStep(t *testing.T) {
	t.Parallel()
	errCrash := errors.New("injected")
	data := []byte("the object's bytes")
	ops := []struct {
		name    string
		setup   []string
		call    func(l *remote.Local) error
		key     string
		present bool // after a successful call
	}{
		{"put", nil, func(l *remote.Local) error {
			return l.Put(t.Context(), "refs/g/one", bytes.NewReader(data), int64(len(data)), remote.PutOptions{IfNoneMatch: true})
		}, "refs/g/one", true},
		{"replace", []string{"refs/g/one"}, func(l *remote.Local) error {
			return l.Put(t.Context(), "refs/g/one", bytes.NewReader(data), int64(len(data)), remote.PutOptions{})
		}, "refs/g/one", true},
		{"delete", []string{"refs/g/one"}, func(l *remote.Local) error { return l.Delete(t.Context(), "refs/g/one") }, "refs/g/one", false},
	}
	for _, o := range ops {
		newStore := func(t *testing.T) *remote.Local {
			l := newLocal(t)
			l.Sync = true
			for _, k := range o.setup {
				if err := l.Put(t.Context(), k, bytes.NewReader([]byte("old")), 3, remote.PutOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			return l
		}
		l := newStore(t)
		steps, err := recordSteps(l, func() error { return o.call(l) })
		if err != nil {
			t.Fatalf("%s: %v", o.name, err)
		}
		for i, s := range steps {
			t.Run(fmt.Sprintf("%s/%d-%s", o.name, i+1, s.op), func(t *testing.T) {
				l := newStore(t)
				n := 0
				l.Fault = func(op remote.LocalOp, key string) error {
					n++
					if n == i+1 {
						return errCrash
					}
					return nil
				}
				err := o.call(l)
				l.Fault = nil
				// Removing emptied directories is tidying, and so is the
				// directory sync after it.
				harmless := s.op == remote.OpRemoveTemp || s.op == remote.OpRmdir ||
					s.op == remote.OpSyncDir && i > 0 && steps[i-1].op == remote.OpRmdir
				switch {
				case harmless && err != nil:
					t.Errorf("got error %v, want nil: a failed %s is harmless", err, s.op)
				case !harmless && !errors.Is(err, errCrash):
					t.Errorf("got error %v, want the injected one", err)
				}
				got, gerr := remote.ReadAll(t.Context(), l, o.key)
				switch {
				case errors.Is(gerr, remote.ErrNotFound):
				case gerr != nil:
					t.Errorf("ReadAll: %v", gerr)
				case !bytes.Equal(got, data) && !bytes.Equal(got, []byte("old")):
					t.Errorf("object holds %q: neither the old nor the new version", got)
				}
				entries, _ := os.ReadDir(filepath.Join(l.Location(), "tmp"))
				if want := map[bool]int{true: 1, false: 0}[s.op == remote.OpRemoveTemp]; len(entries) != want {
					t.Errorf("got %d temp files left, want %d", len(entries), want)
				}
			})
		}
	}
}
