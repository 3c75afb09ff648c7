package cas

import (
	"errors"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/manifest/schema"
	"github.com/cas-ml/cas/remote"
)

// Review of pull's check of a remote ref's kind and size (checkNamed):
// forgeries where the bucket makes the index agree with a lying ref, run
// through the whole hostile kit in the bucket world (whose checkPull
// pulls the forged ref into a fresh store and wants it refused, or what
// it took to verify there).
func hostilePullCases() []hostileCase {
	return []hostileCase{
		// A file's chunk list that is empty: its size from the index is 0.
		{name: "segment/no-chunks-agrees-with-ref-size-0", where: "bucket", forge: func(w *hostileWorld, f *forger) (string, []string) {
			f.segment(nil, map[digest.Digest][]digest.Digest{promised: {}})
			return evilRef(f, Object{Digest: promised, Kind: KindFile, Size: 0, Name: "f.txt"})
		}},
		// A file of two honest chunks whose segment says the second is 5
		// bytes longer, and a ref that agrees: the sizes add up, the bytes
		// do not.
		{name: "segment/multi-chunk-raw-lengths-agree-with-ref", where: "bucket", forge: func(w *hostileWorld, f *forger) (string, []string) {
			x, y := []byte("first chunk, honest\n"), []byte("second chunk, honest\n")
			recs := f.pack(forgedBlob{id: digest.Of(x), stored: x}, forgedBlob{id: digest.Of(y), stored: y})
			recs[1].RawLen += 5
			file := digest.Of(append(append([]byte(nil), x...), y...))
			f.segment(recs, map[digest.Digest][]digest.Digest{file: {digest.Of(x), digest.Of(y)}})
			return evilRef(f, Object{Digest: file, Kind: KindFile, Size: int64(len(x)+len(y)) + 5, Name: "f.txt"})
		}},
		// A ref of kind file, of the tree's own size, on an honest tree.
		{name: "ref/kind=file,target=tree", where: "bucket", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return evilRef(f, Object{Digest: w.good.Digest, Kind: KindFile, Size: w.good.Size, Name: "f.txt"})
		}},
		{name: "ref/size=max-int64", where: "bucket", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return refWith(f, w.a, "size", int64(math.MaxInt64))
		}},
		{name: "ref/size=min-int64", where: "bucket", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return refWith(f, w.a, "size", int64(math.MinInt64))
		}},
		{name: "ref/dir,size=max-int64", where: "bucket", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return refWith(f, w.good, "size", int64(math.MaxInt64))
		}},
	}
}

func TestHostilePullRev3(t *testing.T) {
	t.Parallel()
	for _, c := range hostilePullCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			runHostile(t, c, true)
		})
	}
}

// freshPullStore is an empty store reading from bucket.
func freshPullStore(t *testing.T, bucket remote.Backend) *Repo {
	t.Helper()
	r := newStoreAt(t, filepath.Join(t.TempDir(), DirName), 4<<10)
	t.Cleanup(func() { _ = r.Close() })
	if err := r.UseRemote(t.Context(), bucket); err != nil {
		t.Fatal(err)
	}
	return r
}

// newStoreAt makes a store in dir, chunking at avg bytes on average, and
// opens it; the caller closes it.
func newStoreAt(t *testing.T, dir string, avg int) *Repo {
	t.Helper()
	params, err := NewChunkParams(avg)
	if err != nil {
		t.Fatal(err)
	}
	if err := Init(dir, params, time.Now()); err != nil {
		t.Fatal(err)
	}
	r, err := Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// runRef writes the run manifest m as data and refs/runs/NAME, typed as a
// manifest, naming it.
func (f *forger) runRef(m *schema.Manifest) {
	f.t.Helper()
	enc, err := m.Encode()
	if err != nil {
		f.t.Fatal(err)
	}
	name := "runs/" + m.Name
	f.ref(name, hostileWith(hostileRefFields(name, Object{Digest: f.data(enc), Kind: KindFile, Size: int64(len(enc))}), "type", "manifest"))
}

// A ref marked as a manifest (type "manifest") that points at a plain data
// file: Pull cannot know the closure, so it must refuse rather than pull
// the file alone as if it kept nothing; a ref with no type that points at
// a data file pulls it as a file.
func TestHostilePullTypeManifestOnDataFile(t *testing.T) {
	w := newHostileWorld(t, true)
	f := newForger(t, w.forged)
	f.ref("evil", hostileWith(hostileRefFields("evil", w.a), "type", "manifest"))
	if !w.open() {
		return
	}
	r := freshPullStore(t, w.bucket)
	obj, err := r.Resolve(t.Context(), "evil")
	if err != nil {
		t.Fatalf("resolve evil: %v", err)
	}
	_, err = r.Pull(t.Context(), obj, nil)
	if err == nil {
		t.Fatalf("pull of a data file named a manifest: done; want it refused")
	}
	if !isDamage(err) && !errors.Is(err, schema.ErrNotManifest) {
		t.Errorf("pull of a data file named a manifest: %v (%T); want a damage error", err, err)
	}
}

// Pulled twice: the bucket moves a ref between pulls to the same digest
// with a lying size; the second pull finds the data here and must still
// refuse the ref's word.
func TestHostilePullAgainAfterBucketLies(t *testing.T) {
	w := newHostileWorld(t, true)
	if !w.open() {
		return
	}
	r := freshPullStore(t, w.bucket)
	ctx := t.Context()
	obj, err := r.Resolve(ctx, "good")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Pull(ctx, obj, nil); err != nil {
		t.Fatalf("honest pull: %v", err)
	}
	for _, lie := range []Object{
		{Digest: w.good.Digest, Kind: KindDir, Size: w.good.Size + 1},
		{Digest: w.good.Digest, Kind: KindFile, Size: w.good.Size, Name: "g"},
		{Digest: w.a.Digest, Kind: KindFile, Size: 0, Name: "a"},
		{Digest: w.a.Digest, Kind: KindFile, Size: w.a.Size - 1, Name: "a"},
		{Digest: w.big.Digest, Kind: KindFile, Size: w.big.Size + 1, Name: "b"},
		{Digest: w.big.Digest, Kind: KindDir, Size: w.big.Size},
	} {
		o := lie
		_, err := r.Pull(ctx, &o, nil)
		var me *MismatchError
		if !errors.As(err, &me) || !errors.Is(err, ErrInvalidObject) {
			t.Errorf("pull %s %v %d bytes after the data is here: %v; want a *MismatchError", lie.Digest.Short(), lie.Kind, lie.Size, err)
		}
	}
	// The truth about data already here still pulls: files of one chunk
	// in packs the store knows (read again against their digests), of
	// many, and the tree.
	for _, o := range []Object{w.a, w.c, w.big, w.good} {
		if _, err := r.Pull(ctx, &o, nil); err != nil {
			t.Errorf("pull %s %v %d bytes again: %v", o.Digest.Short(), o.Kind, o.Size, err)
		}
	}
}
