package cas

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cas-ml/cas/cas/format"
	lookupidx "github.com/cas-ml/cas/cas/lookup"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/remote"
	"github.com/cas-ml/cas/remote/remotetest"
)

// requestCounter counts requests by method and by the first element of
// the key (packs, index, lookup, refs…), and bytes read under each.
type requestCounter struct {
	remote.Backend
	mu    sync.Mutex
	reqs  map[string]int   // "get index", "list packs", …
	bytes map[string]int64 // bytes read, by first key element
	put   map[string]int64 // bytes written, by first key element
}

func newCounting(be remote.Backend) *requestCounter {
	return &requestCounter{Backend: be, reqs: map[string]int{}, bytes: map[string]int64{}, put: map[string]int64{}}
}

func top(key string) string { return strings.SplitN(key, "/", 2)[0] }

func (c *requestCounter) count(op, key string) {
	c.mu.Lock()
	c.reqs[op+" "+top(key)]++
	c.mu.Unlock()
}

func (c *requestCounter) total() (n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, v := range c.reqs {
		n += v
	}
	return n
}

func (c *requestCounter) reset() {
	c.mu.Lock()
	c.reqs, c.bytes, c.put = map[string]int{}, map[string]int64{}, map[string]int64{}
	c.mu.Unlock()
}

type countedBody struct {
	io.ReadCloser
	c   *requestCounter
	key string
}

func (r countedBody) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.c.mu.Lock()
	r.c.bytes[top(r.key)] += int64(n)
	r.c.mu.Unlock()
	return n, err
}

func (c *requestCounter) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	c.count("get", key)
	rc, err := c.Backend.Get(ctx, key, off, n)
	if err != nil {
		return nil, err
	}
	return countedBody{rc, c, key}, nil
}

func (c *requestCounter) Put(ctx context.Context, key string, r io.Reader, size int64, opts remote.PutOptions) error {
	c.count("put", key)
	err := c.Backend.Put(ctx, key, r, size, opts)
	if err == nil {
		c.mu.Lock()
		c.put[top(key)] += size
		c.mu.Unlock()
	}
	return err
}

func (c *requestCounter) Stat(ctx context.Context, key string) (remote.ObjectInfo, error) {
	c.count("stat", key)
	return c.Backend.Stat(ctx, key)
}

func (c *requestCounter) List(ctx context.Context, prefix string, fn func(remote.ObjectInfo) error) error {
	c.count("list", prefix)
	return c.Backend.List(ctx, prefix, fn)
}

func (c *requestCounter) Delete(ctx context.Context, key string) error {
	c.count("delete", key)
	return c.Backend.Delete(ctx, key)
}

// pushHistory pushes n small directories to be, each with a 16 KiB file,
// under refs push-<from> … push-<from+n-1>: each pushed locally, then all
// uploaded at once (as a machine that was offline for a while does), then
// each ref set on be.
func pushHistory(t *testing.T, r *Repo, be remote.Backend, from, n int) {
	t.Helper()
	ctx := t.Context()
	objs := make([]Object, n)
	for i := from; i < from+n; i++ {
		src := filepath.Join(t.TempDir(), fmt.Sprint("d", i))
		writeGenTree(t, src, []genEntry{
			{path: "weights.bin", kind: KindFile, data: pseudoRandom(16<<10, uint64(i))},
			{path: "notes.txt", kind: KindFile, data: []byte(fmt.Sprintf("push %d\n", i))},
			{path: "sub/big.bin", kind: KindFile, data: pseudoRandom(40<<10, uint64(1e6+i))},
		})
		res, err := r.Push(ctx, []string{src}, PushOptions{})
		if err != nil {
			t.Fatalf("push %d: %v", i, err)
		}
		objs[i-from] = res.Object(1)
		os.RemoveAll(src)
	}
	if _, err := r.Upload(ctx, be, nil); err != nil {
		t.Fatal(err)
	}
	for i, o := range objs {
		if _, err := r.SetRefOn(ctx, be, fmt.Sprint("push-", from+i), o); err != nil {
			t.Fatal(err)
		}
	}
}

// pushEach is pushHistory with each push published as it is made.
func pushEach(t *testing.T, r *Repo, be remote.Backend, from, n int) {
	t.Helper()
	ctx := t.Context()
	for i := from; i < from+n; i++ {
		src := filepath.Join(t.TempDir(), fmt.Sprint("d", i))
		writeGenTree(t, src, []genEntry{
			{path: "weights.bin", kind: KindFile, data: pseudoRandom(16<<10, uint64(i))},
			{path: "notes.txt", kind: KindFile, data: []byte(fmt.Sprintf("push %d\n", i))},
			{path: "sub/big.bin", kind: KindFile, data: pseudoRandom(200<<10, uint64(1e6+i))},
		})
		if _, err := r.Push(ctx, []string{src}, PushOptions{Ref: fmt.Sprint("push-", i), Remote: be}); err != nil {
			t.Fatalf("push %d: %v", i, err)
		}
		os.RemoveAll(src)
	}
}

// freshRestore restores spec from be as a machine that never saw it
// would, and returns the requests it made.
func freshRestore(t *testing.T, be remote.Backend, spec string, want []byte) *requestCounter {
	t.Helper()
	got, c := restoreDigest(t, be, spec)
	if got != digest.Of(want).Hex() {
		t.Fatalf("restore %s: digest %s, want that of the %d bytes pushed", spec, got, len(want))
	}
	return c
}

// A fresh machine restores one file of one push with the same requests
// whether the bucket holds 10 pushes or many more, and downloads no
// index segment to do it.
func TestFreshRestoreRequestsIndependentOfHistory(t *testing.T) {
	t.Parallel()
	n := 1000
	if testing.Short() {
		n = 100
	}
	be := remote.NewMem()
	w := newStoreForTest(t, 64<<10)
	pushHistory(t, w, be, 0, 10)
	want := pseudoRandom(16<<10, 3)
	c10 := freshRestore(t, be, "push-3:weights.bin", want)
	pushHistory(t, w, be, 10, n-10)
	cN := freshRestore(t, be, "push-3:weights.bin", want)
	t.Logf("10 pushes: %d requests %v; %d pushes: %d requests %v", c10.total(), c10.reqs, n, cN.total(), cN.reqs)
	if c10.total() != cN.total() {
		t.Errorf("requests grew with history: %d after 10 pushes, %d after %d", c10.total(), cN.total(), n)
	}
	if cN.total() > 10 {
		t.Errorf("%d requests to restore one file, want at most 10", cN.total())
	}
	// No listing of the segments; at most the small one of the push.
	if l, g := cN.reqs["list index"], cN.reqs["get index"]; l != 0 || g > 1 {
		t.Errorf("%d listings and %d reads of index segments", l, g)
	}
	if b := cN.bytes["lookup"] + cN.bytes["index"]; b > 1<<20 {
		t.Errorf("%d bytes of index read", b)
	}
}

// A restore of a whole push from a fresh machine loads the segment that
// answered its first lookups instead of looking every file up.
func TestFreshRestoreOfATreeLoadsItsSegment(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	be := remote.NewMem()
	w := newStoreForTest(t, 64<<10)
	src := filepath.Join(t.TempDir(), "many")
	var es []genEntry
	for i := range 200 {
		es = append(es, genEntry{path: fmt.Sprintf("d%d/f%03d.txt", i%4, i), kind: KindFile, data: []byte(fmt.Sprint("file ", i, "\n"))})
	}
	writeGenTree(t, src, es)
	if _, err := w.Push(ctx, []string{src}, PushOptions{Ref: "many", Remote: be}); err != nil {
		t.Fatal(err)
	}
	c := newCounting(be)
	r := newStoreForTest(t, 64<<10)
	if err := r.UseRemote(ctx, c); err != nil {
		t.Fatal(err)
	}
	obj, err := r.Resolve(ctx, "many")
	if err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "out")
	if _, err := r.Restore(ctx, obj, dest, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		got, err := os.ReadFile(filepath.Join(dest, filepath.FromSlash(e.path)))
		if err != nil || string(got) != string(e.data) {
			t.Fatalf("%s: %q, %v", e.path, got, err)
		}
	}
	if l := c.reqs["list lookup"]; l > 40 { // of 200 files; lookups in flight before the load add a few
		t.Errorf("%d shard listings for one push of 200 files: its segment was not loaded (%v)", l, c.reqs)
	}
}

// A bucket whose lookup index misses entries (a segment an older cas
// uploaded after the upgrade) still serves everything: a read that finds
// nothing loads the segments.
func TestLazyReadFallsBackToSegments(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	be := remote.NewMem()
	w := newStoreForTest(t, 64<<10)
	pushHistory(t, w, be, 0, 3)
	// Forget the lookup index, keeping its format key: as if an older
	// cas had written every segment.
	var runs []string
	_ = be.List(ctx, format.LookupPrefix, func(oi remote.ObjectInfo) error {
		if oi.Key != format.LookupFormatKey {
			runs = append(runs, oi.Key)
		}
		return nil
	})
	for _, k := range runs {
		if err := be.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	c := freshRestore(t, be, "push-1:weights.bin", pseudoRandom(16<<10, 1))
	if c.reqs["list index"] == 0 {
		t.Errorf("no segment listing: %v", c.reqs)
	}
}

// A push that publishes lists neither packs/ nor index/ on the remote,
// and a second publish of nothing new uploads nothing.
func TestPublishListsNoPrefix(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := newCounting(remote.NewMem())
	w := newStoreForTest(t, 64<<10)
	pushEach(t, w, c, 0, 5)
	for _, k := range []string{"list packs", "list packs/", "list index/"} {
		if c.reqs[k] > 0 {
			t.Errorf("%d requests %q", c.reqs[k], k)
		}
	}
	c.reset()
	st, err := w.Upload(ctx, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Objects != 0 || c.reqs["put packs"]+c.reqs["put index"]+c.reqs["stat packs"] != 0 {
		t.Errorf("an upload of nothing new: %+v, requests %v", st, c.reqs)
	}
}

// An older cas's bucket keeps working, and `cas remote upgrade` (twice,
// as after an interruption) gives it a lookup index that serves reads.
func TestUpgradeRemote(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	be := remote.NewMem()
	w := newStoreForTest(t, 64<<10)
	src := filepath.Join(t.TempDir(), "d")
	data := pseudoRandom(300<<10, 9)
	writeGenTree(t, src, []genEntry{{path: "x.bin", kind: KindFile, data: data}})
	res, err := w.Push(ctx, []string{src}, PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	obj := Object{Digest: res.Digest, Kind: res.Kind, Size: res.Bytes}
	// As an older cas wrote it: everything, no lookup index.
	if _, err := w.uploadAll(ctx, be, nil); err != nil {
		t.Fatal(err)
	}
	var lk []string
	_ = be.List(ctx, format.LookupPrefix, func(oi remote.ObjectInfo) error { lk = append(lk, oi.Key); return nil })
	for _, k := range lk {
		if err := be.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.SetRefOn(ctx, be, "old", obj); err != nil {
		t.Fatal(err)
	}
	c := freshRestore(t, be, "old:x.bin", data)
	if c.reqs["list index"] == 0 {
		t.Fatalf("an old bucket was not read through its segments: %v", c.reqs)
	}
	for range 2 {
		st, err := w.UpgradeRemote(ctx, be, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("upgrade: %+v", st)
	}
	c = freshRestore(t, be, "old:x.bin", data)
	if c.reqs["list index"] != 0 {
		t.Fatalf("an upgraded bucket was read through its segments: %v", c.reqs)
	}
}

// loadBucket puts the objects of a bucket kept as files (testdata) into
// a new in-memory backend.
func loadBucket(t *testing.T, dir string) *remote.Mem {
	t.Helper()
	be := remote.NewMem()
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "README.md" {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		key, _ := filepath.Rel(dir, p)
		return be.Put(t.Context(), filepath.ToSlash(key), strings.NewReader(string(b)), int64(len(b)), remote.PutOptions{})
	})
	if err != nil {
		t.Fatal(err)
	}
	return be
}

// restoreDigest restores spec from be on a fresh machine and returns the
// digest of the restored file, with the requests made.
func restoreDigest(t *testing.T, be remote.Backend, spec string) (string, *requestCounter) {
	t.Helper()
	ctx := t.Context()
	c := newCounting(be)
	r := newStoreForTest(t, 64<<10)
	if err := r.UseRemote(ctx, c); err != nil {
		t.Fatal(err)
	}
	obj, err := r.Resolve(ctx, spec)
	if err != nil {
		t.Fatalf("resolve %s: %v", spec, err)
	}
	dest := filepath.Join(t.TempDir(), "out")
	if _, err := r.Restore(ctx, obj, dest, RestoreOptions{}); err != nil {
		t.Fatalf("restore %s: %v", spec, err)
	}
	b, err := os.ReadFile(dest)
	if err != nil {
		t.Fatal(err)
	}
	return digest.Of(b).Hex(), c
}

// A bucket the previous cas wrote (testdata/oldbucket) is read as it is,
// survives an upgrade interrupted part-way, and once upgraded is read
// through its lookup index, byte for byte the same.
func TestUpgradeOldBucket(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const weights = "64e4e5a499e1fcd97640b552047dffb56c0bcd4d30261940803e60a1aa9830d7"
	const readme = "9528cfdfd16559c652ff45669a5d7ee7d3545288a2297fe5eda08d810cd23b4e"
	mem := loadBucket(t, filepath.Join("..", "testdata", "oldbucket"))
	for spec, want := range map[string]string{"olddata2:sub/weights.bin": weights, "olddata2:readme.txt": readme, "olddata:sub/weights.bin": weights} {
		got, c := restoreDigest(t, mem, spec)
		if got != want {
			t.Fatalf("old bucket, %s: digest %s, want %s", spec, got, want)
		}
		if c.reqs["list index"] == 0 {
			t.Fatalf("old bucket, %s: read without its segments? %v", spec, c.reqs)
		}
	}
	// Interrupted: the third run write fails. Nothing tells readers to use
	// the half-built lookup index, so they read as before.
	w := newStoreForTest(t, 64<<10)
	f := remote.NewFault(mem)
	var puts atomic.Int64
	f.FailPut = func(key string) error {
		if strings.HasPrefix(key, format.LookupPrefix) && puts.Add(1) == 3 {
			return remote.ErrInjected
		}
		return nil
	}
	if _, err := w.UpgradeRemote(ctx, f, nil); err == nil {
		t.Fatal("an upgrade whose write failed succeeded")
	}
	if got, c := restoreDigest(t, mem, "olddata2:sub/weights.bin"); got != weights || c.reqs["list index"] == 0 {
		t.Fatalf("after an interrupted upgrade: %s, %v", got, c.reqs)
	}
	st, err := w.UpgradeRemote(ctx, mem, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Segments != 2 || st.Already {
		t.Fatalf("upgrade: %+v", st)
	}
	for spec, want := range map[string]string{"olddata2:sub/weights.bin": weights, "olddata2:readme.txt": readme} {
		got, c := restoreDigest(t, mem, spec)
		if got != want || c.reqs["list index"] != 0 {
			t.Fatalf("upgraded bucket, %s: digest %s (want %s), requests %v", spec, got, want, c.reqs)
		}
	}
	// Every object still verifies, read the old way.
	view, err := OpenRemoteOnly(ctx, mem)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := view.Resolve(ctx, "olddata2")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := view.Verify(ctx, obj, "olddata2", nil)
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("verify: %v %+v", err, rep)
	}
}

// A second machine pushing data the bucket already holds (in packs laid
// out otherwise: here beside a new file) uploads only what is new, and
// what it publishes restores byte for byte on a third machine.
func TestPushDedupsAgainstBucket(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	mem := remote.NewMem()
	big := pseudoRandom(3<<20, 77)
	var small []genEntry
	for i := range 40 {
		small = append(small, genEntry{path: fmt.Sprintf("s/%02d.txt", i), kind: KindFile, data: pseudoRandom(3000+i, uint64(i))})
	}
	a := newStoreForTest(t, 64<<10)
	srcA := filepath.Join(t.TempDir(), "data")
	writeGenTree(t, srcA, append([]genEntry{{path: "big.bin", kind: KindFile, data: big}}, small...))
	if _, err := a.Push(ctx, []string{srcA}, PushOptions{Ref: "a", Remote: mem}); err != nil {
		t.Fatal(err)
	}
	// Machine B: the same files, plus a new one sorted between them, so
	// its packs mix old and new blobs.
	fresh := pseudoRandom(100<<10, 78)
	srcB := filepath.Join(t.TempDir(), "data")
	writeGenTree(t, srcB, append([]genEntry{{path: "big.bin", kind: KindFile, data: big}, {path: "new.bin", kind: KindFile, data: fresh}}, small...))
	c := newCounting(mem)
	b := newStoreForTest(t, 64<<10)
	res, err := b.Push(ctx, []string{srcB}, PushOptions{Ref: "b", Remote: c})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("machine B uploaded %v (requests %v)", c.put, c.reqs)
	if up := c.put["packs"]; up > int64(len(fresh))+64<<10 {
		t.Errorf("machine B uploaded %d bytes of packs for %d new bytes", up, len(fresh))
	}
	// A third machine restores B's push through the bucket alone.
	r := newStoreForTest(t, 64<<10)
	if err := r.UseRemote(ctx, mem); err != nil {
		t.Fatal(err)
	}
	obj, err := r.Resolve(ctx, "b")
	if err != nil || obj.Digest != res.Digest {
		t.Fatalf("resolve b: %v %v", obj, err)
	}
	dest := filepath.Join(t.TempDir(), "out")
	if _, err := r.Restore(ctx, obj, dest, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string][]byte{"big.bin": big, "new.bin": fresh, "s/07.txt": small[7].data} {
		if got, err := os.ReadFile(filepath.Join(dest, p)); err != nil || string(got) != string(want) {
			t.Fatalf("%s restored wrong (%v)", p, err)
		}
	}
	// And the bucket read the old way (every segment) says the same.
	view, err := OpenRemoteOnly(ctx, mem)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := view.Verify(ctx, obj, "b", nil)
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("verify b on the bucket: %v %+v", err, rep)
	}
}

// A gc on a remote drops the lookup entries of the packs it deletes, and
// everything kept still reads through the lookup index alone.
func TestGCDropsLookupEntries(t *testing.T) {
	t.Parallel()
	w := newGCWorld(t)
	mem := remote.NewMem()
	ctx := t.Context()
	if _, err := w.r.Upload(ctx, mem, nil); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"data", "moving"} {
		o, err := w.r.Resolve(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.r.SetRefOn(ctx, mem, ref, *o); err != nil {
			t.Fatal(err)
		}
	}
	gp := w.garbagePacks(t)
	var gblobs []digest.Digest
	for p := range gp {
		oi, err := w.r.Backend.Stat(ctx, format.PackKey(p))
		if err != nil {
			t.Fatal(err)
		}
		bs, err := w.r.readPackTrailer(ctx, p, oi.Size)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range bs {
			gblobs = append(gblobs, b.ID)
		}
	}
	if rep, err := w.r.GC(ctx, mem, GCOptions{Grace: NoGrace}); err != nil || rep.Freed.Packs == 0 {
		t.Fatalf("gc: %+v, %v", rep, err)
	}
	found, err := lookupidx.NewReader(mem, 4).Lookup(ctx, gblobs)
	if err != nil {
		t.Fatal(err)
	}
	for id, es := range found {
		for _, e := range es {
			if e.Kind != format.RunFile && gp[e.Blob.Pack] {
				t.Errorf("blob %s: the lookup index still places it in deleted pack %s", id.Short(), e.Blob.Pack.Short())
			}
		}
	}
	c := newCounting(mem)
	r := newStoreForTest(t, 64<<10)
	if err := r.UseRemote(ctx, c); err != nil {
		t.Fatal(err)
	}
	for _, o := range []*Object{w.kept, w.moved} {
		dest := filepath.Join(t.TempDir(), "out")
		if _, err := r.Restore(ctx, o, dest, RestoreOptions{}); err != nil {
			t.Fatalf("restore %s after gc: %v", o.Digest.Short(), err)
		}
	}
	if c.reqs["list index"] != 0 {
		t.Errorf("reads after gc loaded every segment: %v", c.reqs)
	}
}

// An upgrade killed at any write (every Put and Delete failing from the
// Nth on) leaves a bucket that verifies and serves every ref byte for
// byte, and the upgrade run again completes.
func TestUpgradeCrashPoints(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	base := loadBucket(t, filepath.Join("..", "testdata", "oldbucket"))
	specs := map[string]string{
		"olddata2:sub/weights.bin": "64e4e5a499e1fcd97640b552047dffb56c0bcd4d30261940803e60a1aa9830d7",
		"olddata2:readme.txt":      "9528cfdfd16559c652ff45669a5d7ee7d3545288a2297fe5eda08d810cd23b4e",
	}
	check := func(n int, be remote.Backend) {
		t.Helper()
		for spec, want := range specs {
			if got, _ := restoreDigest(t, be, spec); got != want {
				t.Fatalf("crash point %d: %s restores to %s, want %s", n, spec, got, want)
			}
		}
		view, err := OpenRemoteOnly(ctx, be)
		if err != nil {
			t.Fatal(err)
		}
		obj, err := view.Resolve(ctx, "olddata2")
		if err != nil {
			t.Fatal(err)
		}
		if rep, err := view.Verify(ctx, obj, "olddata2", nil); err != nil || !rep.OK() {
			t.Fatalf("crash point %d: verify: %v %+v", n, err, rep)
		}
	}
	w := newStoreForTest(t, 64<<10)
	for n := 1; ; n++ {
		mem := remotetest.Clone(t, base)
		f := remote.NewFault(mem)
		var mu sync.Mutex
		count, struck := 0, false
		fail := func(string) error {
			mu.Lock()
			defer mu.Unlock()
			if count++; count >= n {
				struck = true
				return remote.ErrInjected
			}
			return nil
		}
		f.FailPut, f.FailDelete = fail, fail
		_, err := w.UpgradeRemote(ctx, f, nil)
		if !struck {
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("upgrade: %d writes and deletes", n-1)
			break
		}
		check(n, mem)
		if _, err := w.UpgradeRemote(ctx, mem, nil); err != nil {
			t.Fatalf("crash point %d: upgrade again: %v", n, err)
		}
		check(n, mem)
		if ok, _ := hasLookupIndex(ctx, mem); !ok {
			t.Fatalf("crash point %d: no lookup index after the upgrade ran again", n)
		}
	}
}

// Machines pushing to one bucket at once, each compacting the shards it
// writes, lose no entry: every push restores on a fresh machine through
// the lookup index alone.
func TestConcurrentPushersLoseNothing(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	mem := remote.NewMem()
	var wg sync.WaitGroup
	for m := range 3 {
		r := newStoreForTest(t, 64<<10)
		wg.Go(func() { pushEach(t, r, mem, 100*m, 8) })
	}
	wg.Wait()
	c := newCounting(mem)
	r := newStoreForTest(t, 64<<10)
	if err := r.UseRemote(ctx, c); err != nil {
		t.Fatal(err)
	}
	for m := range 3 {
		for i := range 8 {
			n := 100*m + i
			obj, err := r.Resolve(ctx, fmt.Sprintf("push-%d:sub/big.bin", n))
			if err != nil {
				t.Fatal(err)
			}
			var buf strings.Builder
			if err := r.WriteFile(ctx, obj, &buf); err != nil {
				t.Fatalf("push-%d: %v", n, err)
			}
			if buf.String() != string(pseudoRandom(200<<10, uint64(1e6+n))) {
				t.Fatalf("push-%d: wrong bytes", n)
			}
		}
	}
	if c.reqs["list index"] != 0 {
		t.Errorf("a read fell back to every segment: the lookup index lost entries (%v)", c.reqs)
	}
}

// A push of a few thousand small files to a remote writes its lookup
// entries as one wide run (issue 3: a 50,000-file push is at most 100
// objects), and a fresh machine restores one file of it with one listing
// (the wide area: no shard listed, no format key read), the run's fan-out
// table, then a bucket of the run (or the segment it names, when its
// entry says it is small) and a read of a pack for each of the root
// tree, the directory's tree and the file.
func TestPushOfManyFilesIsFewObjects(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	be := remote.NewMem()
	w := newStoreForTest(t, 64<<10)
	src := filepath.Join(t.TempDir(), "tree")
	var es []genEntry
	for i := range 3000 {
		es = append(es, genEntry{path: fmt.Sprintf("d%d/f%04d.txt", i/1000, i), kind: KindFile,
			data: []byte(fmt.Sprintf("file %d %s\n", i, strings.Repeat("x", 2000+i%1000)))})
	}
	writeGenTree(t, src, es)
	res, err := w.Push(ctx, []string{src}, PushOptions{Remote: be})
	if err != nil {
		t.Fatal(err)
	}
	byTop := map[string]int{}
	_ = be.List(ctx, "", func(oi remote.ObjectInfo) error { byTop[top(oi.Key)]++; return nil })
	var lookupKeys []string
	_ = be.List(ctx, format.LookupPrefix, func(oi remote.ObjectInfo) error { lookupKeys = append(lookupKeys, oi.Key); return nil })
	slices.Sort(lookupKeys)
	if len(lookupKeys) != 3 || !strings.HasPrefix(lookupKeys[0], "lookup/all/") || lookupKeys[1] != format.LookupIndexMarker || lookupKeys[2] != format.LookupFormatKey {
		t.Fatalf("lookup index: %v, want the index marker, one wide run and the format key", lookupKeys)
	}
	total := 0
	for _, n := range byTop {
		total += n
	}
	if total > 20 {
		t.Fatalf("a push of 3,000 files made %d objects: %v", total, byTop)
	}
	want := es[1234].data
	got, c := restoreDigest(t, be, res.Digest.String()+":"+es[1234].path)
	if got != digest.Of(want).Hex() {
		t.Fatalf("restored digest %s, want that of the %d bytes pushed", got, len(want))
	}
	t.Logf("%d objects %v; restore of one file: %d requests %v", total, byTop, c.total(), c.reqs)
	if l, s := c.reqs["list lookup"], c.reqs["stat lookup"]; l != 1 || s != 0 {
		t.Errorf("%d listings and %d stats of the lookup index, want the wide area listed once", l, s)
	}
	if g, b := c.reqs["get index"], c.bytes["index"]; g > 1 || b > 128<<10 {
		t.Errorf("%d index segments read (%d bytes) for one file of a wide run, want one small one at most", g, b)
	}
	if n := c.total(); n > 8 {
		t.Errorf("%d requests to restore one file, want 8 at most", n)
	}
}
