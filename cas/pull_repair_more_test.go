package cas

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
	"github.com/cas-ml/cas/remote"
)

// repairFixture is a store that pulled a tree (big.bin, small.txt) from
// bucket.
type repairFixture struct {
	r      *Repo
	bucket *remote.Mem
	tree   Object
	big    []byte
}

func newRepairFixture(t *testing.T) *repairFixture {
	t.Helper()
	ctx := t.Context()
	root := t.TempDir()
	src := filepath.Join(root, "src")
	big := pseudoRandom(64<<10, 77)
	writeGenTree(t, src, []genEntry{
		{path: "big.bin", kind: KindFile, data: big},
		{path: "small.txt", kind: KindFile, data: []byte("small\n")},
	})
	seed := newStoreAt(t, filepath.Join(root, "seed", DirName), 4<<10)
	defer seed.Close()
	res, err := seed.Push(ctx, []string{src}, PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return pulledFrom(t, seed, res, big)
}

// pulledFrom uploads what seed holds to a new bucket and pulls the tree
// res pushed into a fresh store: the fixture, big its file of interest.
func pulledFrom(t *testing.T, seed *Repo, res *PushResult, big []byte) *repairFixture {
	t.Helper()
	ctx := t.Context()
	bucket := remote.NewMem()
	if _, err := seed.Upload(ctx, bucket, nil); err != nil {
		t.Fatal(err)
	}
	tree := Object{Digest: res.Digest, Kind: res.Kind, Size: res.Bytes}
	r := freshPullStore(t, bucket)
	again := tree
	if _, err := r.Pull(ctx, &again, nil); err != nil {
		t.Fatal(err)
	}
	return &repairFixture{r: r, bucket: bucket, tree: tree, big: big}
}

// reopen closes the store and opens it again, as the next command would.
func (f *repairFixture) reopen(t *testing.T) {
	t.Helper()
	dir := f.r.Dir
	if err := f.r.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	if err := r.UseRemote(t.Context(), f.bucket); err != nil {
		t.Fatal(err)
	}
	f.r = r
}

// blob is where the store's index places id, and the path of its pack.
func (f *repairFixture) blob(t *testing.T, id digest.Digest) (index.Blob, string) {
	t.Helper()
	b, ok, err := f.r.Index.Blob(id)
	if err != nil || !ok {
		t.Fatalf("blob %s: %v %v", id.Short(), ok, err)
	}
	return b, filepath.Join(f.r.Dir, storeDir, filepath.FromSlash(format.PackKey(b.Pack)))
}

func (f *repairFixture) bigChunk(t *testing.T) (index.Blob, string) {
	t.Helper()
	chunks, ok, err := f.r.Index.FileChunks(digest.Of(f.big))
	if err != nil || !ok || len(chunks) < 2 {
		t.Fatalf("big.bin: %d chunks (%v, %v)", len(chunks), ok, err)
	}
	return f.blob(t, chunks[1])
}

// pullSound pulls the tree again and checks the store holds it whole.
func (f *repairFixture) pullSound(t *testing.T) {
	t.Helper()
	ctx := t.Context()
	again := f.tree
	if _, err := f.r.Pull(ctx, &again, nil); err != nil {
		t.Fatalf("pull again: %v", err)
	}
	if rep, err := f.r.Verify(ctx, &f.tree, "src", nil); err != nil || !rep.OK() {
		t.Fatalf("verify after the pull: %v %+v", err, rep)
	}
	got, err := f.r.ReadObject(ctx, digest.Of(f.big), int64(len(f.big)))
	if err != nil || !bytes.Equal(got, f.big) {
		t.Fatalf("big.bin after the pull: %v", err)
	}
}

// The root tree read damaged (met by checkNamed, before the pull's plan)
// is repaired as a chunk is.
func TestPullRepairTreeDamaged(t *testing.T) {
	t.Parallel()
	f := newRepairFixture(t)
	b, path := f.blob(t, f.tree.Digest)
	if b.Type != index.TypeTree {
		t.Fatalf("root blob type %d", b.Type)
	}
	flipAt(t, path, int64(b.Offset)+int64(b.Length)/2)
	f.reopen(t) // a new process: no tree in memory
	f.pullSound(t)
}

// A pack the store's index knows, deleted from the store, is pulled again.
func TestPullRepairPackDeleted(t *testing.T) {
	t.Parallel()
	for _, which := range []string{"chunk", "tree"} {
		t.Run(which, func(t *testing.T) {
			t.Parallel()
			f := newRepairFixture(t)
			_, path := f.bigChunk(t)
			if which == "tree" {
				_, path = f.blob(t, f.tree.Digest)
			}
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			f.pullSound(t)
		})
	}
}

// A pack truncated in the store (its trailer lost) is repaired too.
func TestPullRepairPackTruncated(t *testing.T) {
	t.Parallel()
	f := newRepairFixture(t)
	b, path := f.bigChunk(t)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, int64(b.Offset)+int64(b.Length)/2); err != nil {
		t.Fatal(err)
	}
	f.pullSound(t)
}

// A repair that fails before the sound copy is in place (a full disk)
// leaves the damaged copy as it was, with all its sound chunks, never no
// copy; the next pull, of this process or the next, mends it.
func TestPullRepairInterrupted(t *testing.T) {
	t.Parallel()
	for _, reopen := range []bool{false, true} {
		t.Run(map[bool]string{false: "same process", true: "next process"}[reopen], func(t *testing.T) {
			t.Parallel()
			testPullRepairInterrupted(t, reopen)
		})
	}
}

func testPullRepairInterrupted(t *testing.T, reopen bool) {
	f := newRepairFixture(t)
	b, path := f.bigChunk(t)
	flipAt(t, path, int64(b.Offset)+int64(b.Length)/2)
	damaged, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	orig := f.r.Backend
	full := &fullDisk{Backend: orig, key: format.PackKey(b.Pack)}
	f.r.Backend = full
	again := f.tree
	_, err = f.r.Pull(t.Context(), &again, nil)
	f.r.Backend = orig
	var ce *CorruptError
	if !errors.Is(err, errDiskFull) || !errors.As(err, &ce) || full.failed == 0 {
		t.Fatalf("pull on a full disk: %v (%d puts failed); want the damaged chunk and the full disk", err, full.failed)
	}
	if now, err := os.ReadFile(path); err != nil || !bytes.Equal(now, damaged) {
		t.Fatalf("the store's copy of pack %s after a repair cut short: %v, as it was %v; want it kept as it was",
			b.Pack.Short(), err, bytes.Equal(now, damaged))
	}
	if reopen {
		f.reopen(t)
	}
	f.pullSound(t)
}

var errDiskFull = errors.New("disk full")

// fullDisk is a store's backend that cannot write the object at key: a
// put that would change it fails (one finding it there with IfNoneMatch
// says so, as that changes nothing).
type fullDisk struct {
	remote.Backend
	key    string
	failed int
}

func (d *fullDisk) Put(ctx context.Context, key string, r io.Reader, size int64, opts remote.PutOptions) error {
	if key != d.key {
		return d.Backend.Put(ctx, key, r, size, opts)
	}
	if _, err := d.Stat(ctx, key); err == nil && opts.IfNoneMatch {
		return remote.ErrExists
	}
	d.failed++
	return fmt.Errorf("put %s: %w", key, errDiskFull)
}

// The same pack damaged again after a repair is repaired again by the
// next pull.
func TestPullRepairDamagedAgain(t *testing.T) {
	t.Parallel()
	f := newRepairFixture(t)
	b, path := f.bigChunk(t)
	flipAt(t, path, int64(b.Offset)+int64(b.Length)/2)
	f.pullSound(t)
	flipAt(t, path, int64(b.Offset)+int64(b.Length)/3)
	f.pullSound(t)
}

// Two packs of the store damaged (one from each of two pushes) are both
// replaced by one pull.
func TestPullRepairTwoPacksOfTwoPushes(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	root := t.TempDir()
	a, b := pseudoRandom(32<<10, 5), pseudoRandom(32<<10, 6)
	src1, src2 := filepath.Join(root, "src1"), filepath.Join(root, "src2")
	writeGenTree(t, src1, []genEntry{{path: "a.bin", kind: KindFile, data: a}})
	writeGenTree(t, src2, []genEntry{{path: "a.bin", kind: KindFile, data: a}, {path: "b.bin", kind: KindFile, data: b}})
	seed := newStoreAt(t, filepath.Join(root, "seed", DirName), 4<<10)
	defer seed.Close()
	if _, err := seed.Push(ctx, []string{src1}, PushOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err := seed.Push(ctx, []string{src2}, PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f := pulledFrom(t, seed, res, b)
	ca, ok, err := f.r.Index.FileChunks(digest.Of(a))
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	ba, pa := f.blob(t, ca[1])
	bb, pb := f.bigChunk(t)
	if ba.Pack == bb.Pack {
		t.Fatal("one pack")
	}
	flipAt(t, pa, int64(ba.Offset)+int64(ba.Length)/2)
	flipAt(t, pb, int64(bb.Offset)+int64(bb.Length)/2)
	f.reopen(t)
	f.pullSound(t)
	got, err := f.r.ReadObject(ctx, digest.Of(a), int64(len(a)))
	if err != nil || !bytes.Equal(got, a) {
		t.Fatalf("a.bin: %v", err)
	}
}

// Two stores on one directory (the second on the in-memory index, the
// first holding badger) pull the damaged data at once: both succeed and
// the store ends sound.
func TestPullRepairConcurrent(t *testing.T) {
	t.Parallel()
	f := newRepairFixture(t)
	b, path := f.bigChunk(t)
	flipAt(t, path, int64(b.Offset)+int64(b.Length)/2)
	f.reopen(t)
	other, err := Open(t.Context(), f.r.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.UseRemote(t.Context(), f.bucket); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 4)
	for _, r := range []*Repo{f.r, f.r, other, other} {
		go func() {
			o := f.tree
			_, err := r.Pull(t.Context(), &o, nil)
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	f.pullSound(t)
}
