package remotetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cas-ml/cas/clock"
	"github.com/cas-ml/cas/remote"
)

// Run checks the contracts documented on remote.Backend. newBackend must
// return an empty backend for each call; every subtest uses its own, so a
// backend shared by parallel runs (one S3 bucket) needs a fresh prefix per
// call.
func Run(t *testing.T, newBackend func(t *testing.T) remote.Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b remote.Backend)
	}{
		{"PutGet", testPutGet},
		{"PutUnknownSize", testPutUnknownSize},
		{"PutSizeMismatch", testPutSizeMismatch},
		{"PutFailingReader", testPutFailingReader},
		{"PutCancelled", testPutCancelled},
		{"Overwrite", testOverwrite},
		{"RangedGet", testRangedGet},
		{"Stat", testStat},
		{"Missing", testMissing},
		{"Delete", testDelete},
		{"IfNoneMatch", testIfNoneMatch},
		{"IfMatch", testIfMatch},
		{"List", testList},
		{"ListInfo", testListInfo},
		{"ListCallbackError", testListCallbackError},
		{"InvalidKeys", testInvalidKeys},
		{"AtomicReplace", testAtomicReplace},
		{"ConcurrentIfNoneMatch", testConcurrentIfNoneMatch},
		{"ConcurrentIfMatch", testConcurrentIfMatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, newBackend(t))
		})
	}
}

// data returns n pseudo-random bytes determined by seed.
func data(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, dataSeed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

const dataSeed = 0x636173 // "cas"

func put(t *testing.T, b remote.Backend, key string, content []byte) {
	t.Helper()
	err := b.Put(t.Context(), key, bytes.NewReader(content), int64(len(content)), remote.PutOptions{})
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func get(t *testing.T, b remote.Backend, key string, offset, length int64) []byte {
	t.Helper()
	rc, err := b.Get(t.Context(), key, offset, length)
	if err != nil {
		t.Fatalf("Get(%q, %d, %d): %v", key, offset, length, err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%q, %d, %d): read: %v", key, offset, length, err)
	}
	return got
}

func stat(t *testing.T, b remote.Backend, key string) remote.ObjectInfo {
	t.Helper()
	info, err := b.Stat(t.Context(), key)
	if err != nil {
		t.Fatalf("Stat(%q): %v", key, err)
	}
	return info
}

// checkBytes fails unless got equals want, naming the first difference.
func checkBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	if len(got) != len(want) {
		t.Fatalf("%s: got %d bytes, want %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: byte %d: got %#02x, want %#02x", what, i, got[i], want[i])
		}
	}
}

// checkAbsent fails unless key does not exist.
func checkAbsent(t *testing.T, b remote.Backend, key string) {
	t.Helper()
	if info, err := b.Stat(t.Context(), key); !errors.Is(err, remote.ErrNotFound) {
		t.Fatalf("Stat(%q) = %+v, %v; want ErrNotFound", key, info, err)
	}
}

func testPutGet(t *testing.T, b remote.Backend) {
	for _, size := range []int{0, 1, 1000, 5 << 20} {
		key := fmt.Sprintf("objects/%d", size)
		want := data(uint64(size), size)
		put(t, b, key, want)
		checkBytes(t, "Get("+key+")", get(t, b, key, 0, -1), want)
		checkBytes(t, "ReadAll("+key+")", readAll(t, b, key), want)
	}
}

func readAll(t *testing.T, b remote.Backend, key string) []byte {
	t.Helper()
	got, err := remote.ReadAll(t.Context(), b, key)
	if err != nil {
		t.Fatalf("ReadAll(%q): %v", key, err)
	}
	return got
}

func testPutUnknownSize(t *testing.T, b remote.Backend) {
	for _, size := range []int{0, 100, 1 << 20} {
		key := fmt.Sprintf("unknown/%d", size)
		want := data(uint64(size), size)
		// A plain io.Reader hides the length a *bytes.Reader would reveal.
		r := struct{ io.Reader }{bytes.NewReader(want)}
		if err := b.Put(t.Context(), key, r, -1, remote.PutOptions{}); err != nil {
			t.Fatalf("Put(%q, size -1): %v", key, err)
		}
		checkBytes(t, "Get("+key+")", get(t, b, key, 0, -1), want)
		if got := stat(t, b, key).Size; got != int64(size) {
			t.Errorf("Stat(%q).Size = %d, want %d", key, got, size)
		}
	}
}

func testPutSizeMismatch(t *testing.T, b remote.Backend) {
	tests := []struct {
		name string
		n    int   // bytes the reader yields
		size int64 // size passed to Put
	}{
		{"short", 100, 200},
		{"long", 200, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := "mismatch/" + tt.name
			r := struct{ io.Reader }{bytes.NewReader(data(1, tt.n))}
			if err := b.Put(t.Context(), key, r, tt.size, remote.PutOptions{}); err == nil {
				t.Fatalf("Put of %d bytes with size %d: got nil error, want failure", tt.n, tt.size)
			}
			checkAbsent(t, b, key)
		})
	}
}

// failingReader yields n bytes and then fails with errBroken.
type failingReader struct {
	r io.Reader
	n int
}

var errBroken = errors.New("remotetest: reader broke")

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errBroken
	}
	p = p[:min(len(p), f.n)]
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

func testPutFailingReader(t *testing.T, b remote.Backend) {
	const size = 1 << 20
	content := data(2, size)
	old := []byte("old version")
	put(t, b, "broken/existing", old)
	for _, key := range []string{"broken/new", "broken/existing"} {
		r := &failingReader{r: bytes.NewReader(content), n: size / 2}
		if err := b.Put(t.Context(), key, r, size, remote.PutOptions{}); err == nil {
			t.Fatalf("Put(%q) with a reader failing midway: got nil error, want failure", key)
		}
	}
	checkAbsent(t, b, "broken/new")
	checkBytes(t, "Get(broken/existing)", get(t, b, "broken/existing", 0, -1), old)
}

func testPutCancelled(t *testing.T, b remote.Backend) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	content := data(3, 1000)
	err := b.Put(ctx, "cancelled", bytes.NewReader(content), int64(len(content)), remote.PutOptions{})
	if err == nil {
		t.Fatal("Put with a cancelled context: got nil error, want failure")
	}
	checkAbsent(t, b, "cancelled")
}

func testOverwrite(t *testing.T, b remote.Backend) {
	const key = "refs/main"
	long, short := data(4, 10000), []byte("short")
	put(t, b, key, long)
	before := stat(t, b, key)
	put(t, b, key, short)
	checkBytes(t, "Get after overwrite", get(t, b, key, 0, -1), short)
	after := stat(t, b, key)
	if after.Size != int64(len(short)) {
		t.Errorf("Stat after overwrite: got size %d, want %d", after.Size, len(short))
	}
	if after.ETag == before.ETag {
		t.Errorf("ETag after overwrite: got %q, want a change from %q", after.ETag, before.ETag)
	}
}

func testRangedGet(t *testing.T, b remote.Backend) {
	const key = "packs/ranged"
	content := data(5, 1000)
	put(t, b, key, content)
	n := int64(len(content))
	tests := []struct {
		name           string
		offset, length int64
		want           []byte
	}{
		{"whole", 0, -1, content},
		{"whole exact", 0, n, content},
		{"prefix", 0, 10, content[:10]},
		{"middle", 100, 50, content[100:150]},
		{"suffix", 990, -1, content[990:]},
		{"zero length", 500, 0, nil},
		{"length past end", 995, 100, content[995:]},
		{"offset at end", n, -1, nil},
		{"offset at end with length", n, 10, nil},
		{"offset past end", n + 100, 10, nil},
		{"offset past end to end", n + 100, -1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := get(t, b, key, tt.offset, tt.length)
			checkBytes(t, fmt.Sprintf("Get(%d, %d)", tt.offset, tt.length), got, tt.want)
		})
	}
}

func testStat(t *testing.T, b remote.Backend) {
	for _, size := range []int{0, 1, 12345} {
		key := fmt.Sprintf("stat/%d", size)
		put(t, b, key, data(6, size))
		info := stat(t, b, key)
		if info.Key != key {
			t.Errorf("Stat(%q).Key = %q, want %q", key, info.Key, key)
		}
		if info.Size != int64(size) {
			t.Errorf("Stat(%q).Size = %d, want %d", key, info.Size, size)
		}
		if info.ETag == "" {
			t.Errorf("Stat(%q).ETag is empty", key)
		}
		// GC compares ModTime with its grace period: it must be the write
		// time, on a clock close to ours (servers in tests run here).
		if d := clock.Real().Now().Sub(info.ModTime); d < -time.Minute || d > time.Minute {
			t.Errorf("Stat(%q).ModTime = %v, want about now", key, info.ModTime)
		}
		var listed remote.ObjectInfo
		if err := b.List(t.Context(), key, func(oi remote.ObjectInfo) error { listed = oi; return nil }); err != nil {
			t.Fatal(err)
		}
		if d := listed.ModTime.Sub(info.ModTime); d < -time.Second || d > time.Second {
			t.Errorf("List(%q).ModTime = %v, Stat says %v", key, listed.ModTime, info.ModTime)
		}
		if again := stat(t, b, key); again.ETag != info.ETag {
			t.Errorf("second Stat(%q).ETag = %q, want %q (unchanged object)", key, again.ETag, info.ETag)
		}
	}
}

func testMissing(t *testing.T, b remote.Backend) {
	put(t, b, "present/x", []byte("x"))
	ctx := t.Context()
	for _, key := range []string{"missing", "present/y", "present/x/y", "absent/dir/z"} {
		t.Run(key, func(t *testing.T) {
			if rc, err := b.Get(ctx, key, 0, -1); !errors.Is(err, remote.ErrNotFound) {
				if err == nil {
					rc.Close()
				}
				t.Errorf("Get(%q): got error %v, want ErrNotFound", key, err)
			}
			if rc, err := b.Get(ctx, key, 5, 10); !errors.Is(err, remote.ErrNotFound) {
				if err == nil {
					rc.Close()
				}
				t.Errorf("ranged Get(%q): got error %v, want ErrNotFound", key, err)
			}
			if _, err := b.Stat(ctx, key); !errors.Is(err, remote.ErrNotFound) {
				t.Errorf("Stat(%q): got error %v, want ErrNotFound", key, err)
			}
			if err := b.Delete(ctx, key); !errors.Is(err, remote.ErrNotFound) {
				t.Errorf("Delete(%q): got error %v, want ErrNotFound", key, err)
			}
		})
	}
	// A directory-like prefix of an existing key is not an object.
	if _, err := b.Stat(ctx, "present"); !errors.Is(err, remote.ErrNotFound) {
		t.Errorf("Stat(%q): got error %v, want ErrNotFound", "present", err)
	}
	if err := b.Delete(ctx, "present"); !errors.Is(err, remote.ErrNotFound) {
		t.Errorf("Delete(%q): got error %v, want ErrNotFound", "present", err)
	}
	checkBytes(t, "Get(present/x)", get(t, b, "present/x", 0, -1), []byte("x"))
}

func testDelete(t *testing.T, b remote.Backend) {
	ctx := t.Context()
	put(t, b, "del/a", []byte("a"))
	put(t, b, "del/b", []byte("b"))
	if err := b.Delete(ctx, "del/a"); err != nil {
		t.Fatalf("Delete(del/a): %v", err)
	}
	checkAbsent(t, b, "del/a")
	if err := b.Delete(ctx, "del/a"); !errors.Is(err, remote.ErrNotFound) {
		t.Errorf("second Delete(del/a): got error %v, want ErrNotFound", err)
	}
	checkBytes(t, "Get(del/b)", get(t, b, "del/b", 0, -1), []byte("b"))
	if got := listKeys(t, b, "del/"); !slices.Equal(got, []string{"del/b"}) {
		t.Errorf("List(del/) after delete: got %q, want [del/b]", got)
	}
	// A deleted key can be written again, also with IfNoneMatch.
	err := b.Put(ctx, "del/a", bytes.NewReader([]byte("again")), 5, remote.PutOptions{IfNoneMatch: true})
	if err != nil {
		t.Fatalf("Put(del/a, IfNoneMatch) after delete: %v", err)
	}
	checkBytes(t, "Get(del/a) after recreate", get(t, b, "del/a", 0, -1), []byte("again"))
}

func testIfNoneMatch(t *testing.T, b remote.Backend) {
	ctx := t.Context()
	const key = "refs/pin"
	first, second := []byte("first"), []byte("second version")
	opts := remote.PutOptions{IfNoneMatch: true}
	if err := b.Put(ctx, key, bytes.NewReader(first), int64(len(first)), opts); err != nil {
		t.Fatalf("first Put(IfNoneMatch): %v", err)
	}
	err := b.Put(ctx, key, bytes.NewReader(second), int64(len(second)), opts)
	if !errors.Is(err, remote.ErrExists) {
		t.Fatalf("second Put(IfNoneMatch): got error %v, want ErrExists", err)
	}
	checkBytes(t, "Get after refused Put", get(t, b, key, 0, -1), first)
	if info := stat(t, b, key); info.Size != int64(len(first)) {
		t.Errorf("Stat after refused Put: got size %d, want %d", info.Size, len(first))
	}
}

func testIfMatch(t *testing.T, b remote.Backend) {
	ctx := t.Context()
	const key = "refs/head"
	put(t, b, key, []byte("v1"))
	e1 := stat(t, b, key).ETag

	v2 := []byte("v2 longer")
	if err := b.Put(ctx, key, bytes.NewReader(v2), int64(len(v2)), remote.PutOptions{IfMatch: e1}); err != nil {
		t.Fatalf("Put(IfMatch current ETag): %v", err)
	}
	e2 := stat(t, b, key).ETag
	if e2 == e1 {
		t.Errorf("ETag after IfMatch Put: got %q, want a change from %q", e2, e1)
	}
	checkBytes(t, "Get after IfMatch Put", get(t, b, key, 0, -1), v2)

	v3 := []byte("v3")
	err := b.Put(ctx, key, bytes.NewReader(v3), int64(len(v3)), remote.PutOptions{IfMatch: e1})
	if !errors.Is(err, remote.ErrPrecondition) {
		t.Fatalf("Put(IfMatch stale ETag): got error %v, want ErrPrecondition", err)
	}
	checkBytes(t, "Get after stale IfMatch Put", get(t, b, key, 0, -1), v2)
	if got := stat(t, b, key).ETag; got != e2 {
		t.Errorf("ETag after stale IfMatch Put: got %q, want %q", got, e2)
	}

	err = b.Put(ctx, "refs/none", bytes.NewReader(v3), int64(len(v3)), remote.PutOptions{IfMatch: e2})
	if !errors.Is(err, remote.ErrNotFound) {
		t.Fatalf("Put(IfMatch) of a missing key: got error %v, want ErrNotFound", err)
	}
	checkAbsent(t, b, "refs/none")
}

func listKeys(t *testing.T, b remote.Backend, prefix string) []string {
	t.Helper()
	var keys []string
	err := b.List(t.Context(), prefix, func(info remote.ObjectInfo) error {
		keys = append(keys, info.Key)
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return keys
}

// listFixture holds keys whose byte order differs from a naive directory
// walk: '-' and '.' sort before '/', '0' after it. No key is a prefix
// directory of another, which a filesystem could not store.
var listFixture = []string{
	"a-b",
	"a.x",
	"a/b",
	"a/c/d",
	"a0",
	"ab",
	"b/x/y",
	"packs/ab/1",
	"packs/ab/2",
	"packs/ac/3",
	"packs/b",
}

func testList(t *testing.T, b remote.Backend) {
	// Write in reverse so that no backend passes by remembering insertion order.
	for _, key := range slices.Backward(listFixture) {
		put(t, b, key, []byte(key))
	}
	tests := []struct {
		prefix string
		want   []string
	}{
		{"", listFixture},
		{"a", []string{"a-b", "a.x", "a/b", "a/c/d", "a0", "ab"}},
		{"a/", []string{"a/b", "a/c/d"}},
		{"a/c", []string{"a/c/d"}},
		{"a/c/d", []string{"a/c/d"}},
		{"packs/", []string{"packs/ab/1", "packs/ab/2", "packs/ac/3", "packs/b"}},
		{"packs/a", []string{"packs/ab/1", "packs/ab/2", "packs/ac/3"}},
		{"packs/ab/", []string{"packs/ab/1", "packs/ab/2"}},
		{"packs/b", []string{"packs/b"}},
		{"b/x/", []string{"b/x/y"}},
		{"zzz", nil},
		{"packs/zz/", nil},
		{"no/such/dir/", nil},
		{"packs/b/", nil},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.prefix), func(t *testing.T) {
			if got := listKeys(t, b, tt.prefix); !slices.Equal(got, tt.want) {
				t.Errorf("List(%q): got %q, want %q", tt.prefix, got, tt.want)
			}
		})
	}
}

func testListInfo(t *testing.T, b remote.Backend) {
	for i, size := range []int{0, 7, 4096} {
		put(t, b, fmt.Sprintf("info/%d", i), data(7, size))
	}
	var n int
	err := b.List(t.Context(), "info/", func(info remote.ObjectInfo) error {
		n++
		if want := stat(t, b, info.Key); info != want {
			t.Errorf("List reported %+v, want %+v as Stat reports it", info, want)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("List(info/): %v", err)
	}
	if n != 3 {
		t.Errorf("List(info/): got %d objects, want 3", n)
	}
}

func testListCallbackError(t *testing.T, b remote.Backend) {
	for _, key := range listFixture {
		put(t, b, key, []byte(key))
	}
	stop := errors.New("remotetest: stop listing")
	var calls int
	err := b.List(t.Context(), "", func(remote.ObjectInfo) error {
		calls++
		if calls == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Errorf("List with failing callback: got error %v, want the callback's", err)
	}
	if calls != 3 {
		t.Errorf("List with failing callback: got %d calls, want 3 (stop at the error)", calls)
	}
}

func testInvalidKeys(t *testing.T, b remote.Backend) {
	ctx := t.Context()
	keys := []string{
		"", "/", "/a", "a/", "a//b", ".", "..", "./a", "a/.", "a/./b",
		"../a", "a/..", "a/../b", "a\\b", "a\x00b",
	}
	for _, key := range keys {
		t.Run(strconv.Quote(key), func(t *testing.T) {
			err := b.Put(ctx, key, bytes.NewReader([]byte("x")), 1, remote.PutOptions{})
			if !errors.Is(err, remote.ErrInvalidKey) {
				t.Errorf("Put(%q): got error %v, want ErrInvalidKey", key, err)
			}
			err = b.Put(ctx, key, bytes.NewReader([]byte("x")), 1, remote.PutOptions{IfNoneMatch: true})
			if !errors.Is(err, remote.ErrInvalidKey) {
				t.Errorf("Put(%q, IfNoneMatch): got error %v, want ErrInvalidKey", key, err)
			}
			if rc, err := b.Get(ctx, key, 0, -1); !errors.Is(err, remote.ErrInvalidKey) {
				if err == nil {
					rc.Close()
				}
				t.Errorf("Get(%q): got error %v, want ErrInvalidKey", key, err)
			}
			if _, err := b.Stat(ctx, key); !errors.Is(err, remote.ErrInvalidKey) {
				t.Errorf("Stat(%q): got error %v, want ErrInvalidKey", key, err)
			}
			if err := b.Delete(ctx, key); !errors.Is(err, remote.ErrInvalidKey) {
				t.Errorf("Delete(%q): got error %v, want ErrInvalidKey", key, err)
			}
		})
	}
	for _, prefix := range []string{"/", "/a", "../", "a/../", "a//", "./x", "a\\", "a\x00"} {
		t.Run("List "+strconv.Quote(prefix), func(t *testing.T) {
			err := b.List(ctx, prefix, func(remote.ObjectInfo) error { return nil })
			if !errors.Is(err, remote.ErrInvalidKey) {
				t.Errorf("List(%q): got error %v, want ErrInvalidKey", prefix, err)
			}
		})
	}
	if keys := listKeys(t, b, ""); len(keys) != 0 {
		t.Errorf("List after invalid Puts: got %q, want nothing", keys)
	}
}

// testAtomicReplace overwrites a key while readers check that every read
// sees one whole version, never a mix or a prefix.
func testAtomicReplace(t *testing.T, b remote.Backend) {
	const key, size, rounds = "atomic", 256 << 10, 20
	versions := [][]byte{bytes.Repeat([]byte{'a'}, size), bytes.Repeat([]byte{'b'}, size)}
	put(t, b, key, versions[0])
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				got, err := remote.ReadAll(ctx, b, key)
				if err != nil {
					if ctx.Err() == nil {
						errs <- fmt.Errorf("ReadAll during overwrites: %w", err)
					}
					return
				}
				if !bytes.Equal(got, versions[0]) && !bytes.Equal(got, versions[1]) {
					errs <- fmt.Errorf("ReadAll during overwrites: got %d bytes of neither version", len(got))
					return
				}
			}
		})
	}
	for i := range rounds {
		v := versions[(i+1)%2]
		if err := b.Put(t.Context(), key, bytes.NewReader(v), size, remote.PutOptions{}); err != nil {
			t.Errorf("Put round %d: %v", i, err)
			break
		}
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// runTogether runs fn(0) … fn(n-1) in goroutines released at the same time.
func runTogether(n int, fn func(i int)) {
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range n {
		done.Go(func() {
			start.Wait()
			fn(i)
		})
	}
	start.Done()
	done.Wait()
}

func testConcurrentIfNoneMatch(t *testing.T, b remote.Backend) {
	const writers = 8
	ctx := t.Context()
	for round := range 5 {
		key := fmt.Sprintf("race/%d", round)
		errs := make([]error, writers)
		contents := make([][]byte, writers)
		runTogether(writers, func(i int) {
			contents[i] = data(uint64(100*round+i), 4096)
			errs[i] = b.Put(ctx, key, bytes.NewReader(contents[i]), 4096, remote.PutOptions{IfNoneMatch: true})
		})
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Errorf("round %d: writers %d and %d both succeeded, want exactly one", round, winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, remote.ErrExists):
				t.Errorf("round %d: writer %d: got error %v, want nil or ErrExists", round, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no writer succeeded, want exactly one", round)
		}
		checkBytes(t, fmt.Sprintf("round %d: Get", round), get(t, b, key, 0, -1), contents[winner])
	}
}

func testConcurrentIfMatch(t *testing.T, b remote.Backend) {
	const key, writers, increments = "refs/counter", 8, 10
	ctx := t.Context()
	put(t, b, key, []byte("0"))
	errs := make([]error, writers)
	runTogether(writers, func(i int) {
		for range increments {
			if errs[i] = increment(ctx, b, key); errs[i] != nil {
				return
			}
		}
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("writer %d: %v", i, err)
		}
	}
	got := string(get(t, b, key, 0, -1))
	if want := strconv.Itoa(writers * increments); got != want {
		t.Errorf("counter after %d concurrent increments: got %s, want %s", writers*increments, got, want)
	}
}

// increment adds one to the decimal counter at key with a compare-and-swap
// loop. Stat, Get, Stat makes sure the value read belongs to the ETag.
func increment(ctx context.Context, b remote.Backend, key string) error {
	for attempt := 0; attempt < 10000; attempt++ {
		before, err := b.Stat(ctx, key)
		if err != nil {
			return err
		}
		value, err := remote.ReadAll(ctx, b, key)
		if err != nil {
			return err
		}
		after, err := b.Stat(ctx, key)
		if err != nil {
			return err
		}
		if after.ETag != before.ETag {
			continue
		}
		n, err := strconv.Atoi(string(value))
		if err != nil {
			return fmt.Errorf("counter %q: %w", value, err)
		}
		next := []byte(strconv.Itoa(n + 1))
		err = b.Put(ctx, key, bytes.NewReader(next), int64(len(next)), remote.PutOptions{IfMatch: before.ETag})
		if errors.Is(err, remote.ErrPrecondition) {
			continue
		}
		return err
	}
	return errors.New("increment: too many conflicts")
}
