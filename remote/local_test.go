package remote_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
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
	remotetest.Run(t, func(t *testing.T) remote.Backend { return newLocal(t) })
}

func TestLocalSync(t *testing.T) {
	remotetest.Run(t, func(t *testing.T) remote.Backend {
		l := newLocal(t)
		l.Sync = true
		return l
	})
}

// TestLocalShared runs the suite with every call going to one of two Local
// instances on the same directory in turn, as two processes would share it.
func TestLocalShared(t *testing.T) {
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
