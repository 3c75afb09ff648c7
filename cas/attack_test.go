package cas

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
	"github.com/cas-ml/cas/remote"
)

// Attacks on the fixes of issue 10: each test states what must hold.

// A tree restored to a destination inside the open store's directory must
// be refused like a single file is: it would write objects (refs, packs,
// segments) into the store behind its back.
func TestAttackRestoreTreeIntoStore(t *testing.T) {
	t.Parallel()
	r := newStoreForTest(t, 64<<10)
	_, obj := pushTree(t, r, []genEntry{
		{path: "evil", kind: KindFile, data: []byte(`{"not":"a ref"}`)},
	})
	tests := []struct {
		name  string
		dest  string
		force bool
	}{
		{"new directory below refs", filepath.Join(r.Dir, storeDir, "refs", "forged"), false},
		{"existing refs directory", filepath.Join(r.Dir, storeDir, "refs"), true},
		{"the store root", filepath.Join(r.Dir, storeDir), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.Restore(t.Context(), obj, tt.dest, RestoreOptions{Force: tt.force})
			if !errors.Is(err, ErrIntoStore) {
				t.Errorf("restore into %s: got %v, want ErrIntoStore", tt.dest, err)
			}
			if _, serr := os.Lstat(filepath.Join(tt.dest, "evil")); serr == nil {
				t.Errorf("restore wrote %s inside the store", filepath.Join(tt.dest, "evil"))
			}
		})
	}
}

// A project whose .cas is a symlink to a store kept elsewhere: a tree
// holding a .cas of its own, restored in place with --force, must neither
// remove that symlink nor plant a forged store in its place.
func TestAttackRestoreOverSymlinkedStore(t *testing.T) {
	t.Parallel()
	for _, kind := range []Kind{KindDir, KindFile, KindExec} { // exec: a single file restored onto .cas itself
		t.Run(kind.String(), func(t *testing.T) {
			ctx := t.Context()
			base := t.TempDir()
			real := filepath.Join(base, "elsewhere", DirName)
			params, _ := NewChunkParams(64 << 10)
			if err := Init(real, params, time.Now()); err != nil {
				t.Fatal(err)
			}
			proj := filepath.Join(base, "proj")
			if err := os.Mkdir(proj, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(real, filepath.Join(proj, DirName)); err != nil {
				t.Fatal(err)
			}
			r := mustOpen(t, filepath.Join(proj, DirName))
			defer mustClose(t, r)
			// Put the symlink back before Close, whatever the restore did:
			// badger hangs closing an index whose directory vanished.
			defer func() {
				link := filepath.Join(proj, DirName)
				if fi, err := os.Lstat(link); err == nil && fi.Mode()&os.ModeSymlink != 0 {
					return
				}
				_ = os.RemoveAll(link)
				_ = os.Symlink(real, link)
			}()

			payload := []byte("forged\n")
			fileID := putRawBlobs(t, r, rawBlob{index.TypeData, payload})[0]
			e := TreeEntry{Name: DirName, Kind: KindFile, Size: int64(len(payload)), Digest: fileID}
			if kind == KindDir {
				inner := validTree(t, TreeEntry{Name: "marker", Kind: KindFile, Size: int64(len(payload)), Digest: fileID})
				e.Kind, e.Digest = KindDir, putRawBlobs(t, r, rawBlob{index.TypeTree, inner})[0]
			}
			top := putRawBlobs(t, r, rawBlob{index.TypeTree, validTree(t, e)})[0]
			obj := &Object{Digest: top, Kind: KindDir, Size: int64(len(payload))}
			dest := proj
			if kind == KindExec {
				obj, dest = &Object{Digest: fileID, Kind: KindFile, Size: int64(len(payload))}, filepath.Join(proj, DirName)
			}
			_, err := r.Restore(ctx, obj, dest, RestoreOptions{Force: true})
			if !errors.Is(err, ErrIntoStore) {
				t.Errorf("restore of a tree holding %s into the project: got %v, want ErrIntoStore", DirName, err)
			}
			fi, lerr := os.Lstat(filepath.Join(proj, DirName))
			if lerr != nil || fi.Mode()&os.ModeSymlink == 0 {
				t.Fatalf("the project's %s is no longer the symlink to its store (%v)", DirName, lerr)
			}
		})
	}
}

// A file whose chunk list the local index learned from a remote's segment
// (UseRemote, as a restore falling back to the remote does), then pushed
// locally: the push stores the chunks again but writes no chunk list,
// since the index "knows" it. Neither the local store on its own nor a
// second bucket it is uploaded to can then serve the file, though push,
// upload and the ref on the bucket all succeed.
func TestAttackChunkListLearnedFromRemote(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	data := pseudoRandom(600<<10, 21)
	src := filepath.Join(t.TempDir(), "src")
	writeGenTree(t, src, []genEntry{{path: "model.bin", kind: KindFile, data: data}})

	// Another machine pushed the same file to bucket one.
	other := newStoreForTest(t, 64<<10)
	res1, err := other.Push(ctx, []string{src}, PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	obj := Object{Digest: res1.Digest, Kind: res1.Kind, Size: res1.Bytes}
	one := remote.NewMem()
	if _, err := other.Upload(ctx, one, nil); err != nil {
		t.Fatal(err)
	}

	r := newStoreForTest(t, 64<<10)
	if err := r.UseRemote(ctx, one); err != nil {
		t.Fatal(err)
	}
	res, err := r.Push(ctx, []string{src}, PushOptions{})
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	if res.Digest != obj.Digest {
		t.Fatalf("push: digest %s, want %s", res.Digest, obj.Digest)
	}

	// The local store alone must serve the file.
	alone, err := OpenRemoteOnly(ctx, r.Backend)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, "the local store alone", alone, obj, data)

	// And a bucket it was uploaded to, once a ref there names the data.
	two := remote.NewMem()
	if _, err := r.Upload(ctx, two, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SetRefOn(ctx, two, "data", obj); err != nil {
		return // refused: nothing was promised
	}
	reader, err := OpenRemoteOnly(ctx, two)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, "bucket two, which a ref names it on", reader, obj, data)
}

// readAll reads model.bin of the tree obj through r and compares it.
func readAll(t *testing.T, what string, r *Repo, obj Object, want []byte) {
	t.Helper()
	file, err := r.Lookup(t.Context(), &obj, "model.bin")
	if err != nil {
		t.Errorf("%s: lookup model.bin: %v", what, err)
		return
	}
	var buf bytes.Buffer
	if err := r.WriteFile(t.Context(), file, &buf); err != nil {
		t.Errorf("%s: read model.bin: %v", what, err)
		return
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("%s: model.bin: got %d bytes that differ, want the %d pushed", what, buf.Len(), len(want))
	}
}

// countingBackend counts the reads of keys under a prefix.
type countingBackend struct {
	remote.Backend
	prefix string
	gets   atomic.Int64
}

func (c *countingBackend) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if strings.HasPrefix(key, c.prefix) {
		c.gets.Add(1)
	}
	return c.Backend.Get(ctx, key, off, n)
}

// pushOne pushes a file of its own and returns it as an object.
func pushOne(t *testing.T, r *Repo, seed uint64) Object {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	writeGenTree(t, src, []genEntry{{path: "f.bin", kind: KindFile, data: pseudoRandom(100<<10, seed)}})
	res, err := r.Push(t.Context(), []string{src}, PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return Object{Digest: res.Digest, Kind: res.Kind, Size: res.Bytes}
}

// The local store and its bucket each ran a gc that deleted a pack the
// other still holds. Each gc record then makes the index rebuild, and each
// rebuild forgets that the other store's records were seen: every command
// that opens the store and uses the remote rebuilds the index twice,
// reading every segment of both, forever.
func TestAttackGCRecordsPingPong(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), DirName)
	params, _ := NewChunkParams(64 << 10)
	if err := Init(dir, params, time.Now()); err != nil {
		t.Fatal(err)
	}
	bucket := remote.NewMem()
	r := mustOpen(t, dir)
	a, b := pushOne(t, r, 1), pushOne(t, r, 2)
	if _, err := r.Upload(ctx, bucket, nil); err != nil {
		t.Fatal(err)
	}
	// Locally only b is kept; on the bucket only a.
	if _, err := r.SetRef(ctx, "b", b); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SetRefOn(ctx, bucket, "a", a); err != nil {
		t.Fatal(err)
	}
	for _, be := range []remote.Backend{nil, bucket} {
		rep, err := r.GC(ctx, be, GCOptions{Grace: NoGrace})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Freed.Packs == 0 {
			t.Fatalf("gc on %v freed nothing; the test needs a pack deleted", be)
		}
	}
	mustClose(t, r)

	counted := &countingBackend{Backend: bucket, prefix: format.SegmentPrefix}
	var reads []int64
	for range 4 {
		r := mustOpen(t, dir)
		before := counted.gets.Load()
		if err := r.UseRemote(ctx, counted); err != nil {
			t.Fatal(err)
		}
		reads = append(reads, counted.gets.Load()-before)
		mustClose(t, r)
	}
	// The first use reads the bucket's segments; after that, none is new.
	for i, n := range reads[2:] {
		if n != 0 {
			t.Errorf("use of the remote #%d: read %d of its segments again, want 0 (all reads: %v)", i+3, n, reads)
		}
	}
}

// A bucket's segment may claim any raw length up to 4 GiB for a chunk
// (here 1 GiB and one byte). Reading that chunk must fail on the claim,
// not first allocate a buffer of that size (one per chunk read at once,
// by cat, verify and restore).
func TestAttackHugeRawLenAllocates(t *testing.T) {
	ctx := t.Context()
	r := newStoreForTest(t, 64<<10)
	pushOne(t, r, 3)
	bucket := remote.NewMem()
	if _, err := r.Upload(ctx, bucket, nil); err != nil {
		t.Fatal(err)
	}
	var pack digest.Digest
	if err := r.Index.Packs(func(p digest.Digest) error { pack = p; return nil }); err != nil {
		t.Fatal(err)
	}
	forged := digest.Of([]byte("never stored"))
	seg := &format.Segment{Blobs: []index.Blob{{ID: forged, Pack: pack, Offset: 0, Length: 64, RawLen: format.MaxChunkLen + 1}}}
	data := seg.Encode()
	if err := bucket.Put(ctx, format.SegmentKey(digest.Of(data)), bytes.NewReader(data), int64(len(data)), remote.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	reader, err := OpenRemoteOnly(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	obj := &Object{Digest: forged, Kind: KindFile, Size: 64}
	tests := []struct {
		name string
		run  func() error
	}{
		{"cat", func() error { return reader.WriteFile(ctx, obj, io.Discard) }},
		{"restore", func() error {
			_, err := reader.Restore(ctx, obj, filepath.Join(t.TempDir(), "out"), RestoreOptions{})
			return err
		}},
		{"verify", func() error {
			rep, err := reader.Verify(ctx, obj, "forged", nil)
			if err == nil && rep.OK() {
				return errors.New("verify: ok")
			}
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			err := tt.run()
			runtime.ReadMemStats(&after)
			if tt.name != "verify" && err == nil {
				t.Errorf("%s of a chunk claiming over 1 GiB: no error", tt.name)
			}
			if tt.name == "verify" && err != nil {
				t.Error(err)
			}
			if got := after.TotalAlloc - before.TotalAlloc; got > 256<<20 {
				t.Errorf("%s of a chunk claiming over 1 GiB: allocated %d MiB, want less than 256", tt.name, got>>20)
			}
		})
	}
}

// A bucket serves a tree whose file names a chunk ID (the digest of bytes
// a victim will push later: a public dataset, say) stored in a pack as
// other bytes; the pack's name matches its contents. Pulling that tree
// copies the lying pack into the local store, and the victim's push of the
// real bytes then finds the chunk "stored", writes nothing, and exits 0:
// the data pushed cannot be restored.
func TestAttackPullPoisonsDedup(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	real := []byte("the bytes the victim will push, later on\n")
	bucket, tree := lyingBucket(t, real)

	r := newStoreForTest(t, 64<<10)
	if err := r.UseRemote(ctx, bucket); err != nil {
		t.Fatal(err)
	}
	bait := &Object{Digest: digest.Of(tree), Kind: KindDir, Size: int64(len(real))}
	_, pullErr := r.Pull(ctx, bait, nil)

	src := filepath.Join(t.TempDir(), "model.bin")
	if err := os.WriteFile(src, real, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := r.Push(ctx, []string{src}, PushOptions{})
	if err != nil {
		t.Fatalf("push (after a pull that returned %v): %v", pullErr, err)
	}
	var buf bytes.Buffer
	obj := &Object{Digest: res.Digest, Kind: res.Kind, Size: res.Bytes}
	if err := r.WriteFile(ctx, obj, &buf); err != nil || !bytes.Equal(buf.Bytes(), real) {
		t.Errorf("read back what push stored (pull: %v; push stored %d new bytes): got %q, %v; want %q", pullErr, res.NewBytes, buf.Bytes(), err, real)
	}
}

// A push killed before its segment leaves packs no segment names; one of
// them rots (a flipped byte) before the next push, which adopts the
// orphans by their trailers alone and so counts the rotten chunk as
// stored: it exits 0, and what it pushed cannot be read back.
func TestAttackAdoptRottenOrphan(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	r := newStoreForTest(t, 64<<10)
	src := filepath.Join(t.TempDir(), "src")
	data := pseudoRandom(300<<10, 11)
	writeGenTree(t, src, []genEntry{{path: "model.bin", kind: KindFile, data: data}})

	pushKilledBeforeSegment(t, r, src)
	for _, p := range storeFiles(t, r.Dir, format.PackPrefix) {
		flipAt(t, p, 1000)
	}

	res, err := r.Push(ctx, []string{src}, PushOptions{})
	if err != nil {
		return // refused: nothing was promised
	}
	obj := Object{Digest: res.Digest, Kind: res.Kind, Size: res.Bytes}
	readAll(t, "the store after the push exited 0", r, obj, data)
}

// A bucket holds a pack under its right name but cut short (a proxy that
// stored a broken upload, or a hand copy that failed). Upload skips it
// because the key is there, though the listing gives its size, and the
// ref on the bucket is accepted: the bucket cannot serve the data.
func TestAttackUploadSkipsShortPack(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	r := newStoreForTest(t, 64<<10)
	src := filepath.Join(t.TempDir(), "src")
	data := pseudoRandom(200<<10, 5)
	writeGenTree(t, src, []genEntry{{path: "model.bin", kind: KindFile, data: data}})
	res, err := r.Push(ctx, []string{src}, PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	obj := Object{Digest: res.Digest, Kind: res.Kind, Size: res.Bytes}
	bucket := remote.NewMem()
	err = r.Backend.List(ctx, format.PackPrefix, func(oi remote.ObjectInfo) error {
		b, err := remote.ReadAll(ctx, r.Backend, oi.Key)
		if err != nil {
			return err
		}
		half := b[:len(b)/2]
		return bucket.Put(ctx, oi.Key, bytes.NewReader(half), int64(len(half)), remote.PutOptions{})
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Upload(ctx, bucket, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SetRefOn(ctx, bucket, "data", obj); err != nil {
		return // refused: nothing was promised
	}
	reader, err := OpenRemoteOnly(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, "the bucket a ref names the data on", reader, obj, data)
}

// A verify finds a chunk damaged and marks it, so that the next push of
// the intact source stores it again. An index rebuild in between (`cas
// index rebuild`, or one that a vanished segment or a gc record starts)
// forgets the mark: the push then stores nothing, exits 0, and the data
// still cannot be read.
func TestAttackRebuildForgetsDamage(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	r := newStoreForTest(t, 64<<10)
	src := filepath.Join(t.TempDir(), "src")
	data := pseudoRandom(300<<10, 13)
	writeGenTree(t, src, []genEntry{{path: "model.bin", kind: KindFile, data: data}})
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(src, "model.bin"), old, old); err != nil {
		t.Fatal(err)
	}
	res, err := r.Push(ctx, []string{src}, PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	obj := Object{Digest: res.Digest, Kind: res.Kind, Size: res.Bytes}
	for _, p := range storeFiles(t, r.Dir, format.PackPrefix) {
		flipAt(t, p, 20000)
	}
	rep, err := r.Verify(ctx, &obj, "data", nil)
	if err != nil || rep.OK() {
		t.Fatalf("verify after the damage: %v, ok=%v; want problems", err, rep != nil && rep.OK())
	}
	if _, _, err := r.RebuildIndex(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Push(ctx, []string{src}, PushOptions{}); err != nil {
		return // refused: nothing was promised
	}
	readAll(t, "the store after a push of the intact source exited 0", r, obj, data)
}

// A shared bucket adds a segment that places a chunk ID (the digest of
// bytes a victim will push later) in a pack the victim's own store holds,
// at bytes that are something else. Using the remote loads that segment
// into the local index; the victim's push of the real bytes then finds
// the chunk in a pack that is present, stores nothing, and exits 0.
func TestAttackRemoteSegmentPoisonsDedup(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	r := newStoreForTest(t, 64<<10)
	pushOne(t, r, 17)
	bucket := remote.NewMem()
	if _, err := r.Upload(ctx, bucket, nil); err != nil {
		t.Fatal(err)
	}
	// A bucket an older cas wrote (no lookup index): reading from it loads
	// every segment, the forged one too. (TestAttackLookupPoisonsDedup is
	// the same attack through the lookup index.)
	if err := bucket.Delete(ctx, format.LookupFormatKey); err != nil {
		t.Fatal(err)
	}
	var pack digest.Digest
	if err := r.Index.Packs(func(p digest.Digest) error { pack = p; return nil }); err != nil {
		t.Fatal(err)
	}
	real := []byte("the bytes the victim will push, later on\n")
	forged := &format.Segment{Blobs: []index.Blob{{ID: digest.Of(real), Pack: pack, Offset: uint64(len(format.PackMagic)),
		Length: uint32(len(real)), RawLen: uint32(len(real)), Codec: index.CodecNone, Type: index.TypeData}}}
	seg := forged.Encode()
	if err := bucket.Put(ctx, format.SegmentKey(digest.Of(seg)), bytes.NewReader(seg), int64(len(seg)), remote.PutOptions{}); err != nil {
		t.Fatal(err)
	}

	if err := r.UseRemote(ctx, bucket); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "model.bin")
	if err := os.WriteFile(src, real, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := r.Push(ctx, []string{src}, PushOptions{})
	if err != nil {
		return // refused: nothing was promised
	}
	var buf bytes.Buffer
	obj := &Object{Digest: res.Digest, Kind: res.Kind, Size: res.Bytes}
	if err := r.WriteFile(ctx, obj, &buf); err != nil || !bytes.Equal(buf.Bytes(), real) {
		t.Errorf("read back what push stored (%d new bytes): got %q, %v; want %q", res.NewBytes, buf.Bytes(), err, real)
	}
}

// A pull that copies a pack holding a chunk the closure needs, but wrong
// (stored as other bytes under its ID), fails naming it instead of
// reporting the data pulled: the local store can serve nothing of it.
func TestPullFailsOnAWrongChunk(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	real := []byte("the bytes the file holds\n")
	x := digest.Of(real)
	bucket, tree := lyingBucket(t, real)
	r := newStoreForTest(t, 64<<10)
	if err := r.UseRemote(ctx, bucket); err != nil {
		t.Fatal(err)
	}
	_, err := r.Pull(ctx, &Object{Digest: digest.Of(tree), Kind: KindDir, Size: int64(len(real))}, nil)
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.ID != x {
		t.Errorf("pull of a tree whose chunk is wrong in the pulled pack: %v, want damage naming chunk %s", err, x.Short())
	}
}

// A pack is named by its trailer, so a bucket can serve wrong data under
// a pack's true name: the pull that meets it keeps no copy of it, and a
// pull from a sound bucket then brings the sound one.
func TestPullDropsPackWithWrongData(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	real := []byte("the bytes the file holds\n")
	lying, tree := lyingBucket(t, real)
	r := newStoreForTest(t, 64<<10)
	if err := r.UseRemote(ctx, lying); err != nil {
		t.Fatal(err)
	}
	obj := &Object{Digest: digest.Of(tree), Kind: KindDir, Size: int64(len(real))}
	if _, err := r.Pull(ctx, obj, nil); err == nil {
		t.Fatal("pull from the lying bucket succeeded")
	}
	err := r.Backend.List(ctx, format.PackPrefix, func(oi remote.ObjectInfo) error {
		data, err := remote.ReadAll(ctx, r.Backend, oi.Key)
		if err == nil && bytes.Contains(data, []byte("!!!!!!!!")) {
			err = fmt.Errorf("the local store kept the lying pack %s", oi.Key)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	// The same pack, sound, on another bucket: same trailer, same name.
	sound, data, pack := soundBucket(t, real, tree)
	if _, err := lying.Stat(ctx, format.PackKey(pack)); err != nil {
		t.Fatalf("the sound pack is not named as the lying one: %v", err)
	}
	if err := r.UseRemote(ctx, sound); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Pull(ctx, obj, nil); err != nil {
		t.Fatalf("pull from the sound bucket: %v", err)
	}
	if got, err := remote.ReadAll(ctx, r.Backend, format.PackKey(pack)); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the local store's copy of %s after the sound pull: %d bytes, %v; want the sound %d", pack.Short(), len(got), err, len(data))
	}
}

// A pull killed after it copied a pack and before it checked it leaves
// the copy in the store, under the pack's true name (its trailer's) and
// named by no segment. Here the copy is a lying bucket's (the kill stands
// as a failed delete): a pull from a sound bucket must not take it for
// the pack because its name is there, reporting the data pulled while
// the store can serve none of it; it checks it, and brings the sound one.
func TestPullReplacesLyingLeftover(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	real := []byte("the bytes the file holds\n")
	lying, tree := lyingBucket(t, real)
	sound, data, pack := soundBucket(t, real, tree)
	r := newStoreForTest(t, 64<<10)
	local := r.Backend
	killed := remote.NewFault(local)
	killed.FailDelete = func(string) error { return context.Canceled }
	r.Backend = killed
	if err := r.UseRemote(ctx, lying); err != nil {
		t.Fatal(err)
	}
	obj := &Object{Digest: digest.Of(tree), Kind: KindDir, Size: int64(len(real))}
	if _, err := r.Pull(ctx, obj, nil); err == nil {
		t.Fatal("pull from the lying bucket succeeded")
	}
	r.Backend = local
	if got, err := remote.ReadAll(ctx, local, format.PackKey(pack)); err != nil || bytes.Equal(got, data) {
		t.Fatalf("the killed pull left %d bytes, %v; want the lying copy", len(got), err)
	}

	if err := r.UseRemote(ctx, sound); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Pull(ctx, obj, nil); err != nil {
		t.Fatalf("pull from the sound bucket: %v", err)
	}
	if got, err := remote.ReadAll(ctx, local, format.PackKey(pack)); err != nil || !bytes.Equal(got, data) {
		t.Errorf("the local store's copy of %s after the sound pull: %d bytes, %v; want the sound %d", pack.Short(), len(got), err, len(data))
	}
	var buf bytes.Buffer
	if err := r.WriteFile(ctx, &Object{Digest: digest.Of(real), Kind: KindFile, Size: int64(len(real))}, &buf); err != nil || !bytes.Equal(buf.Bytes(), real) {
		t.Errorf("read x after the pull: %q, %v; want %q", buf.Bytes(), err, real)
	}
}

// A bucket serves a pack whose trailer (so its name) and chunks are
// true but whose header is not a pack's: the trailer does not cover the
// header, so the copy passes the name check. The pull fails and keeps no
// copy, which would stand in the way of a sound one and fail every
// verify of the store; a pull from a sound bucket then brings the pack.
func TestPullDropsMalformedPack(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	real := []byte("the bytes the file holds\n")
	tree := validTree(t, TreeEntry{Name: "x", Kind: KindFile, Size: int64(len(real)), Digest: digest.Of(real)})
	sound, data, pack := soundBucket(t, real, tree)
	bad := remote.NewMem()
	err := sound.List(ctx, "", func(oi remote.ObjectInfo) error {
		b, err := remote.ReadAll(ctx, sound, oi.Key)
		if err == nil && oi.Key == format.PackKey(pack) {
			b = append([]byte("NOTAPACK"), b[len(format.PackMagic):]...)
		}
		if err == nil {
			err = bad.Put(ctx, oi.Key, bytes.NewReader(b), int64(len(b)), remote.PutOptions{})
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	r := newStoreForTest(t, 64<<10)
	if err := r.UseRemote(ctx, bad); err != nil {
		t.Fatal(err)
	}
	obj := &Object{Digest: digest.Of(tree), Kind: KindDir, Size: int64(len(real))}
	if _, err := r.Pull(ctx, obj, nil); err == nil {
		t.Error("pull of a pack with a broken header succeeded")
	}
	if _, err := r.Backend.Stat(ctx, format.PackKey(pack)); !errors.Is(err, remote.ErrNotFound) {
		t.Errorf("the local store's copy of the broken pack: %v, want none", err)
	}

	if err := r.UseRemote(ctx, sound); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Pull(ctx, obj, nil); err != nil {
		t.Fatalf("pull from the sound bucket: %v", err)
	}
	if got, err := remote.ReadAll(ctx, r.Backend, format.PackKey(pack)); err != nil || !bytes.Equal(got, data) {
		t.Errorf("the local store's copy of %s after the sound pull: %d bytes, %v; want the sound %d", pack.Short(), len(got), err, len(data))
	}
	rep, err := r.VerifyAll(ctx, nil)
	if err != nil || !rep.OK() {
		t.Errorf("verify after the sound pull: %v, %+v; want no problem", err, rep)
	}
}

// A pull killed before its segment leaves sound packs that no segment
// names. The next pull must not skip them because their names are there:
// its segment names them, so that the store, without the remote, holds
// what it pulled (verify finds nothing missing).
func TestPullNamesLeftoverPacks(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	src := newStoreForTest(t, 64<<10)
	obj := pushOne(t, src, 23)
	bucket := remote.NewMem()
	if _, err := src.Upload(ctx, bucket, nil); err != nil {
		t.Fatal(err)
	}
	r, dir := storeAt(t)
	if err := r.UseRemote(ctx, bucket); err != nil {
		t.Fatal(err)
	}
	local := r.Backend
	killed := remote.NewFault(local)
	killed.FailPut = func(key string) error {
		if strings.HasPrefix(key, format.SegmentPrefix) {
			return context.Canceled // the pull dies before its segment
		}
		return nil
	}
	r.Backend = killed
	if _, err := r.Pull(ctx, &obj, nil); err == nil {
		t.Fatal("the pull killed before its segment succeeded")
	}
	r.Backend = local
	if _, err := r.Pull(ctx, &obj, nil); err != nil {
		t.Fatalf("pull again: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	alone := openAt(t, dir)
	rep, err := alone.Verify(ctx, &obj, "f", nil)
	if err != nil || !rep.OK() {
		t.Errorf("verify of what was pulled, without the remote: %v, %+v; want no problem", err, rep)
	}
}

// soundBucket returns a bucket holding the pack lyingBucket holds, with
// real as the file's bytes (so under the same name: the same trailer),
// and a segment naming it; and the pack's bytes and name.
func soundBucket(t *testing.T, real, tree []byte) (*remote.Mem, []byte, digest.Digest) {
	t.Helper()
	ctx := t.Context()
	sound := remote.NewMem()
	pb := format.NewPackBuilder()
	pb.Add(index.Blob{ID: digest.Of(real), RawLen: uint32(len(real)), Codec: index.CodecNone, Type: index.TypeData}, real)
	pb.Add(index.Blob{ID: digest.Of(tree), RawLen: uint32(len(tree)), Codec: index.CodecNone, Type: index.TypeTree}, tree)
	data, pack, recs := pb.Finish()
	if err := sound.Put(ctx, format.PackKey(pack), bytes.NewReader(data), int64(len(data)), remote.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	seg := (&format.Segment{Blobs: recs}).Encode()
	if err := sound.Put(ctx, format.SegmentKey(digest.Of(seg)), bytes.NewReader(seg), int64(len(seg)), remote.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	return sound, bytes.Clone(data), pack
}

// lyingBucket returns a bucket holding a tree of one file, x, whose
// content is real, and a pack, named by its trailer, that stores other
// bytes under the ID of real; and the tree's encoding.
func lyingBucket(t *testing.T, real []byte) (*remote.Mem, []byte) {
	t.Helper()
	ctx := t.Context()
	bucket := remote.NewMem()
	tree := validTree(t, TreeEntry{Name: "x", Kind: KindFile, Size: int64(len(real)), Digest: digest.Of(real)})
	pb := format.NewPackBuilder()
	pb.Add(index.Blob{ID: digest.Of(real), RawLen: uint32(len(real)), Codec: index.CodecNone, Type: index.TypeData}, bytes.Repeat([]byte{'!'}, len(real)))
	pb.Add(index.Blob{ID: digest.Of(tree), RawLen: uint32(len(tree)), Codec: index.CodecNone, Type: index.TypeTree}, tree)
	data, pack, recs := pb.Finish()
	if err := bucket.Put(ctx, format.PackKey(pack), bytes.NewReader(data), int64(len(data)), remote.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	seg := (&format.Segment{Blobs: recs}).Encode()
	if err := bucket.Put(ctx, format.SegmentKey(digest.Of(seg)), bytes.NewReader(seg), int64(len(seg)), remote.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	return bucket, tree
}
