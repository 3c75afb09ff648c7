package cas

import (
	"path/filepath"
	"testing"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
	"github.com/cas-ml/cas/remote"
)

// index.Memory and Spill kept the first record of a blob met in a pack,
// where Badger takes the latest; a store opened while another process
// holds its badger index falls back to Memory.

// A store whose index is in memory (another process holds the badger
// one), reading a bucket whose forged segment, read first, gives a.txt's
// chunk a wrong length in its honest pack: pulling refs/good takes the
// pack and writes the store's own segment from its bytes, and from then
// on what the store says of the chunk is that segment's word, not the
// bucket's. A tree that agrees with the bucket's lie is refused, and
// refs/good still restores.
func TestHostilePullMemoryIndexAfterBucketLie(t *testing.T) {
	t.Parallel()
	w := newHostileWorld(t, true)
	f := newForger(t, w.forged)
	var honestSeg string
	if err := w.bucket.List(t.Context(), format.SegmentPrefix, func(oi remote.ObjectInfo) error {
		if honestSeg == "" || oi.Key < honestSeg {
			honestSeg = oi.Key
		}
		return nil
	}); err != nil || honestSeg == "" {
		t.Fatalf("the bucket's segments: %q, %v", honestSeg, err)
	}
	ctx := t.Context()
	blob, ok, err := func() (index.Blob, bool, error) {
		r := freshPullStore(t, w.bucket)
		return r.locate(ctx, w.a.Digest)
	}()
	if err != nil || !ok {
		t.Fatalf("a.txt in the bucket's segments: %v, %v", ok, err)
	}
	// A lie whose segment sorts before the honest ones, so it is read first.
	var k uint32
	for k = 1; ; k++ {
		lie := blob
		lie.RawLen += k
		data := (&format.Segment{Blobs: []index.Blob{lie}, Files: map[digest.Digest][]digest.Digest{}}).Encode()
		if key := format.SegmentKey(digest.Of(data)); key < honestSeg {
			f.put(key, data)
			break
		}
	}
	// Without a lookup index (an older cas's bucket), a store reads every
	// segment, in the order listed.
	var lookup []string
	if err := w.bucket.List(t.Context(), format.LookupPrefix, func(oi remote.ObjectInfo) error {
		lookup = append(lookup, oi.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, key := range lookup {
		if err := w.bucket.Delete(t.Context(), key); err != nil {
			t.Fatal(err)
		}
	}
	spec, _ := treeRef(f, forgedEntry{kind: "file", digest: w.a.Digest, size: w.a.Size + int64(k), name: "a"})
	if !w.open() {
		return
	}
	dir := filepath.Join(t.TempDir(), DirName)
	holder := newStoreAt(t, dir, 4<<10) // holds the badger index
	defer holder.Close()
	r, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, ok := r.Index.(*index.Memory); !ok {
		t.Fatalf("index %T, want the memory one", r.Index)
	}
	if err := r.UseRemote(ctx, w.bucket); err != nil {
		t.Fatal(err)
	}
	good := w.good
	if _, err := r.Pull(ctx, &good, nil); err != nil {
		t.Fatalf("pull good: %v", err)
	}
	obj, err := r.Resolve(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Pull(ctx, obj, nil); !isDamage(err) {
		t.Errorf("pull a tree agreeing with the bucket's lie about a chunk already here: %v; want it refused as damage", err)
	}
	dest := filepath.Join(t.TempDir(), "good")
	if _, err := r.Restore(ctx, &good, dest, RestoreOptions{}); err != nil {
		t.Errorf("restore good after pulling it: %v", err)
	}
}
