package cas

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"

	"github.com/cas-ml/cas/cas/format"
	lookupidx "github.com/cas-ml/cas/cas/lookup"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
	"github.com/cas-ml/cas/remote"
	"github.com/cas-ml/cas/remote/remotetest"
)

// Attacks on the wide area of a remote's lookup index (docs/FORMAT.md
// §7a, lookup/all/): forged wide runs and markers, kills during a wide
// upload and during a split, concurrent uploads, gc, and buckets shared
// with the cas that knew only version 1. Each test states the property it
// pins; a failing one is a finding.

// wideFiles returns n small files in directories of 250, and one file of
// several chunks (big.bin): a push of them has more than
// lookupidx.WideMin lookup entries.
func wideFiles(n int, seed uint64) []genEntry {
	es := []genEntry{{path: "big.bin", kind: KindFile, data: pseudoRandom(300<<10, seed)}}
	for i := range n {
		es = append(es, genEntry{path: fmt.Sprintf("d%d/f%04d.txt", i/250, i), kind: KindFile,
			data: []byte(fmt.Sprintf("file %d of push %d %s\n", i, seed, strings.Repeat("w", i%200)))})
	}
	return es
}

// wideWorld is a bucket holding one push of many files (ref "wide"),
// whose lookup entries went up as one wide run: a flat bucket.
type wideWorld struct {
	be    *remote.Mem
	obj   *Object
	src   string
	files []genEntry
}

func newWideWorld(t *testing.T) *wideWorld {
	t.Helper()
	w := &wideWorld{be: remote.NewMem(), files: wideFiles(1100, 77)}
	var err error
	w.obj, w.src, err = pushTo(t, newStoreForTest(t, 64<<10), w.be, "wide", w.files)
	if err != nil {
		t.Fatal(err)
	}
	runs, indexed, sharded := wideArea(t, w.be)
	if len(runs) != 1 || !indexed || sharded || shardRuns(t, w.be) != 0 {
		t.Fatalf("after a push of %d files: wide runs %v, index marker %v, sharded marker %v, %d shard runs; want one wide run on a flat bucket",
			len(w.files), runs, indexed, sharded, shardRuns(t, w.be))
	}
	return w
}

// wideArea lists the wide area of be: its runs and its markers.
func wideArea(t *testing.T, be remote.Backend) (runs []string, indexed, sharded bool) {
	t.Helper()
	err := be.List(t.Context(), format.LookupShardPrefix(format.WideShard), func(oi remote.ObjectInfo) error {
		switch oi.Key {
		case format.LookupIndexMarker:
			indexed = true
		case format.LookupShardedMarker:
			sharded = true
		default:
			runs = append(runs, oi.Key)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return runs, indexed, sharded
}

// shardRuns counts the runs in the shards of be.
func shardRuns(t *testing.T, be remote.Backend) int {
	t.Helper()
	n := 0
	err := be.List(t.Context(), format.LookupPrefix, func(oi remote.ObjectInfo) error {
		if !strings.HasPrefix(oi.Key, format.LookupShardPrefix(format.WideShard)) && oi.Key != format.LookupFormatKey {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// readWide returns the entries of wide run key.
func readWide(t *testing.T, be remote.Backend, key string) []format.RunEntry {
	t.Helper()
	data, err := remote.ReadAll(t.Context(), be, key)
	if err != nil {
		t.Fatal(err)
	}
	es, err := format.DecodeRunIn(format.WideShard, data)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// putWideBytes puts data as a wide run named by its bytes.
func putWideBytes(t *testing.T, be remote.Backend, data []byte) string {
	t.Helper()
	key := format.RunKey(format.WideShard, digest.Of(data))
	putObject(t, be, key, data)
	return key
}

// putWide encodes es as a wide run and puts it.
func putWide(t *testing.T, be remote.Backend, es []format.RunEntry) string {
	t.Helper()
	data, err := format.EncodeRunIn(format.WideShard, es)
	if err != nil {
		t.Fatal(err)
	}
	return putWideBytes(t, be, data)
}

// replaceWide replaces the one wide run of be by one of its entries as
// edit leaves them (the attacker controls the bucket), and returns them.
func replaceWide(t *testing.T, be remote.Backend, edit func([]format.RunEntry) []format.RunEntry) []format.RunEntry {
	t.Helper()
	runs, _, _ := wideArea(t, be)
	if len(runs) != 1 {
		t.Fatalf("wide runs %v, want one", runs)
	}
	es := edit(readWide(t, be, runs[0]))
	putWide(t, be, es)
	if err := be.Delete(t.Context(), runs[0]); err != nil {
		t.Fatal(err)
	}
	return es
}

// idsOf returns the digests a restore of path in w looks up: the root
// tree, the directory's tree and the file.
func (w *wideWorld) idsOf(t *testing.T, path string) []digest.Digest {
	t.Helper()
	r := newStoreForTest(t, 64<<10)
	if err := r.UseRemote(t.Context(), w.be); err != nil {
		t.Fatal(err)
	}
	ids := []digest.Digest{w.obj.Digest}
	cur := ""
	for _, name := range strings.Split(path, "/") {
		cur = strings.TrimPrefix(cur+"/"+name, "/")
		o, err := r.Lookup(t.Context(), w.obj, cur)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, o.Digest)
	}
	return ids
}

// dataOf returns the content of path in w's push.
func (w *wideWorld) dataOf(path string) []byte {
	for _, e := range w.files {
		if e.path == path {
			return e.data
		}
	}
	panic(path)
}

// keyReads counts the bytes served from one key.
type keyReads struct {
	remote.Backend
	key string
	n   atomic.Int64
}

func (k *keyReads) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	rc, err := k.Backend.Get(ctx, key, off, n)
	if err != nil || key != k.key {
		return rc, err
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	k.n.Add(int64(len(b)))
	return io.NopCloser(bytes.NewReader(b)), err
}

// Invariant: a forged wide run never makes a restore wrong. The attacker
// replaces the one wide run of a flat bucket (the only place a reader
// looks) by one whose entries for the restored file, its directory and
// the root lie: another pack, a wrong offset, a pack that does not exist,
// swapped chunks, a small segment size for a huge object, a huge one, an
// entry moved to another shard's bucket. A fresh restore of the file and
// of the whole tree is byte for byte the push, and the bucket still
// verifies through its segments; a segment a wide entry calls small is
// read with one bounded request whatever it is.
func TestAttackWideForgedEntries(t *testing.T) {
	t.Parallel()
	base := newWideWorld(t)
	const path = "d3/f0800.txt"
	targets := map[digest.Digest]bool{}
	for _, id := range base.idsOf(t, path) {
		targets[id] = true
	}
	big := digest.Of(base.dataOf("big.bin"))
	attackerPack := digest.Of([]byte("the attacker's pack"))
	hugeSeg := pseudoRandom(4<<20, 5)
	hugeSegID := digest.Of([]byte("a segment that is not one"))
	// edit applies f to the entries of the path's objects and big.bin,
	// with a segment size that keeps the segment (which would put them
	// right) from loading at the first answer: the reads use the lies.
	edit := func(f func(*format.RunEntry)) func([]format.RunEntry) []format.RunEntry {
		return func(es []format.RunEntry) []format.RunEntry {
			for i := range es {
				if targets[es[i].ID] || es[i].ID == big {
					f(&es[i])
					es[i].SegmentSize = 1 << 40
				}
			}
			return es
		}
	}
	every := func(f func(*format.RunEntry)) func([]format.RunEntry) []format.RunEntry {
		return func(es []format.RunEntry) []format.RunEntry {
			for i := range es {
				f(&es[i])
			}
			return es
		}
	}
	tests := []struct {
		name string
		edit func([]format.RunEntry) []format.RunEntry
		// lies: the reads take the forged entries, find them wrong and
		// fall back to the segments.
		lies bool
	}{
		{name: "another pack", lies: true, edit: edit(func(e *format.RunEntry) {
			if e.Kind != format.RunFile {
				e.Blob.Pack = attackerPack
			}
		})},
		{name: "offset moved", lies: true, edit: edit(func(e *format.RunEntry) {
			if e.Kind != format.RunFile {
				e.Blob.Offset++
			}
		})},
		{name: "pack gone", lies: true, edit: edit(func(e *format.RunEntry) {
			if e.Kind != format.RunFile {
				e.Blob.Pack = digest.Of([]byte("no such pack"))
			}
		})},
		{name: "chunks swapped", lies: true, edit: edit(func(e *format.RunEntry) {
			if e.Kind == format.RunFile {
				e.Chunks[0], e.Chunks[1] = e.Chunks[1], e.Chunks[0]
			}
		})},
		{name: "small segment that is huge", edit: every(func(e *format.RunEntry) {
			e.Segment, e.SegmentSize = hugeSegID, 1
		})},
		{name: "huge segment size", edit: every(func(e *format.RunEntry) { e.SegmentSize = 1 << 40 })},
		{name: "zero segment", edit: every(func(e *format.RunEntry) { e.Segment, e.SegmentSize = digest.Zero, 0 })},
		{name: "entries dropped", lies: true, edit: func(es []format.RunEntry) []format.RunEntry {
			var kept []format.RunEntry
			for _, e := range es {
				if !targets[e.ID] {
					kept = append(kept, e)
				}
			}
			return kept
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			be := remotetest.Clone(t, base.be)
			putObject(t, be, format.PackKey(attackerPack), pseudoRandom(1<<20, 6))
			// Only where the forged entries call it a small segment: a read
			// that falls back to every segment reads it whole, as it must.
			if tt.name == "small segment that is huge" {
				putObject(t, be, format.SegmentKey(hugeSegID), hugeSeg)
			}
			replaceWide(t, be, tt.edit)
			k := &keyReads{Backend: be, key: format.SegmentKey(hugeSegID)}
			got, c := restoreDigest(t, k, "wide:"+path)
			if got != digest.Of(base.dataOf(path)).Hex() {
				t.Fatalf("restored %s, want the file pushed", got)
			}
			got, cb := restoreDigest(t, be, "wide:big.bin")
			if got != big.Hex() {
				t.Fatalf("restored big.bin as %s", got)
			}
			// The lies are about the root tree (which both restores read)
			// or big.bin: the second restore meets one in every case.
			if fell := cb.reqs["list index"] > 0; fell != tt.lies || !tt.lies && c.reqs["list index"] > 0 {
				t.Errorf("restores fell back to every segment: %v, want %v (%v, %v)", fell, tt.lies, c.reqs, cb.reqs)
			}
			if n := k.n.Load(); n > 128<<10+1 {
				t.Errorf("read %d bytes of an object a wide entry called a small segment, want one bounded read", n)
			}
			if err := servesAlone(t, be, base.obj, base.src); err != nil {
				t.Error(err)
			}
		})
	}
}

// Invariant: an entry a forged wide run puts outside its bucket is not
// taken (the reader checks every entry of a bucket it reads belongs
// there), and a restore still gets the right bytes. The run is well
// named (its bytes hash to its name), so only its content gives it away.
func TestAttackWideEntryInWrongBucket(t *testing.T) {
	t.Parallel()
	base := newWideWorld(t)
	const path = "d1/f0300.txt"
	file := digest.Of(base.dataOf(path))
	be := remotetest.Clone(t, base.be)
	attackerPack := digest.Of([]byte("the attacker's pack"))
	putObject(t, be, format.PackKey(attackerPack), pseudoRandom(1<<20, 7))
	// Encode the file's entry under an ID of another bucket, then write
	// the file's ID over it: the entry sits in the bucket of the other.
	var alias digest.Digest
	replaceWide(t, be, func(es []format.RunEntry) []format.RunEntry {
		for i := range es {
			if es[i].ID == file {
				es[i].Blob.Pack = attackerPack
				alias = file
				alias[0] ^= 0x80
				es[i].ID, es[i].Blob.ID = alias, alias
			}
		}
		return es
	})
	runs, _, _ := wideArea(t, be)
	data, err := remote.ReadAll(t.Context(), be, runs[0])
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(data, alias[:])
	if at < 0 || alias.IsZero() {
		t.Fatal("the forged entry is not in the run")
	}
	copy(data[at:], file[:])
	if err := be.Delete(t.Context(), runs[0]); err != nil {
		t.Fatal(err)
	}
	putWideBytes(t, be, data)
	if got, _ := restoreDigest(t, be, "wide:"+path); got != file.Hex() {
		t.Fatalf("restored %s, want the file pushed", got)
	}
	if err := servesAlone(t, be, base.obj, base.src); err != nil {
		t.Error(err)
	}
}

// Invariant: hostile sizes in the wide area never make a lookup allocate
// without bound: a wide run listed small and served huge, and one listed
// at 256 MiB whose footer gives one bucket all of it (then hangs up). As
// TestAttackHostileRunSizes, for the wide area's layout. Not parallel: it
// measures the heap.
func TestAttackWideHostileRunSizes(t *testing.T) {
	ctx := t.Context()
	id := digest.Of([]byte("the file a restore looks up"))
	key := format.RunKey(format.WideShard, digest.Of([]byte("hostile")))
	marked := remote.NewMem()
	if err := lookupidx.MarkIndexed(ctx, marked); err != nil {
		t.Fatal(err)
	}
	const limit = 16 << 20
	h := &hostileRun{Backend: marked, key: key, size: 2 << 10, body: func(int64, int64) (io.ReadCloser, error) {
		return io.NopCloser(io.LimitReader(zeros{}, 64<<20)), nil
	}}
	var err error
	if n := allocatedBy(func() { _, err = lookupidx.NewReader(h, 4).Lookup(ctx, []digest.Digest{id}) }); n > limit {
		t.Errorf("a lookup over a wide run listed at %d bytes allocated %d MiB (%v)", h.size, n>>20, err)
	}
	size := int64(256 << 20)
	flen := format.RunFooterLenIn(format.WideShard)
	bucket := int(id[0])<<4 | int(id[1]>>4)
	tail := make([]byte, 0, flen)
	for b := 0; b <= 4096; b++ {
		off := uint32(8)
		if b > bucket {
			off = uint32(size) - uint32(flen)
		}
		tail = binary.LittleEndian.AppendUint32(tail, off)
	}
	tail = binary.LittleEndian.AppendUint32(tail, 0)
	tail = append(tail, format.WideRunMagic...)
	h = &hostileRun{Backend: marked, key: key, size: size, body: func(off, n int64) (io.ReadCloser, error) {
		if off == size-int64(flen) {
			return io.NopCloser(bytes.NewReader(tail)), nil
		}
		return io.NopCloser(iotest.ErrReader(remote.ErrInjected)), nil
	}}
	if n := allocatedBy(func() { _, err = lookupidx.NewReader(h, 4).Lookup(ctx, []digest.Digest{id}) }); n > limit {
		t.Errorf("a lookup in a wide run listed at %d MiB allocated %d MiB before reading a byte of it (%v)", size>>20, n>>20, err)
	}
}

// Invariant: a damaged wide run (well named, so only its content gives it
// away) is never a reason to fail every upload to the bucket: a split
// leaves it where it is, as a merge does. Two such runs, with a sound
// footer: in one, a bucket starts inside the entry before it (a decode
// of that bucket alone fails, and so does, since 90148d3, a decode of the
// whole run); in the other, an entry is of an unknown kind. The split
// leaves both.
func TestAttackWideDamagedRunBlocksSplit(t *testing.T) {
	t.Parallel()
	w := newWideWorld(t)
	be := w.be
	// Two entries in adjacent buckets (shards 000 and 001); the fan-out
	// says the second bucket starts one byte before it really does.
	var es []format.RunEntry
	for i := 0; len(es) < 2; i++ {
		id := digest.Of([]byte(fmt.Sprint("forged ", i)))
		if format.LookupShard(id) != fmt.Sprintf("%03x", len(es)) {
			continue
		}
		es = append(es, format.RunEntry{ID: id, Kind: format.RunData, Segment: digest.Of([]byte("s")),
			Blob: index.Blob{ID: id, Type: index.TypeData, Pack: digest.Of([]byte("p")), Offset: 8, Length: 3, RawLen: 3}})
	}
	data, err := format.EncodeRunIn(format.WideShard, es)
	if err != nil {
		t.Fatal(err)
	}
	flen := format.RunFooterLenIn(format.WideShard)
	fan := data[len(data)-flen:]
	binary.LittleEndian.PutUint32(fan[4:], binary.LittleEndian.Uint32(fan[4:])-1)
	if _, err := format.DecodeRunIn(format.WideShard, data); !errors.Is(err, format.ErrBadRun) {
		t.Fatalf("a run whose bucket starts inside an entry decodes whole: %v", err)
	}
	straddles := putWideBytes(t, be, data)
	bad := bytes.Clone(data)
	bad[8+32] = 9 // the first entry's kind
	kept := putWideBytes(t, be, bad)
	// Another machine pushes a few files: into the shards, so its
	// compaction splits the wide area.
	small := []genEntry{{path: "note.txt", kind: KindFile, data: []byte("a note\n")}}
	obj, src, err := pushTo(t, newStoreForTest(t, 64<<10), be, "small", small)
	if err != nil {
		t.Fatalf("one damaged wide run makes a push fail: %v", err)
	}
	if err := servesAlone(t, be, obj, src); err != nil {
		t.Error(err)
	}
	if err := servesAlone(t, be, w.obj, w.src); err != nil {
		t.Error(err)
	}
	if runs, _, _ := wideArea(t, be); len(runs) != 2 || !slices.Contains(runs, kept) || !slices.Contains(runs, straddles) {
		t.Errorf("wide runs after the split: %v, want the two damaged ones, %s and %s", runs, straddles, kept)
	}
}

// failWritesFrom makes every Put and Delete of f fail from the nth on, as
// if the process had been killed there; it reports whether it struck.
func failWritesFrom(f *remote.Fault, n int) *atomic.Bool {
	var count atomic.Int64
	var struck atomic.Bool
	fail := func(string) error {
		if count.Add(1) >= int64(n) {
			struck.Store(true)
			return remote.ErrInjected
		}
		return nil
	}
	f.FailPut, f.FailDelete = fail, fail
	return &struck
}

// refOn reports whether be holds ref name.
func refOn(t *testing.T, be remote.Backend, name string) bool {
	t.Helper()
	_, err := be.Stat(t.Context(), "refs/"+name)
	if err != nil && !isNotFound(err) {
		t.Fatal(err)
	}
	return err == nil
}

// findsAll reports the IDs of es that be's lookup index does not find.
func findsAll(t *testing.T, be remote.Backend, es []format.RunEntry) []digest.Digest {
	t.Helper()
	ids := make([]digest.Digest, len(es))
	for i, e := range es {
		ids[i] = e.ID
	}
	found, err := lookupidx.NewReader(be, 4).Lookup(t.Context(), ids)
	if err != nil {
		t.Fatal(err)
	}
	var lost []digest.Digest
	for _, id := range ids {
		if len(found[id]) == 0 {
			lost = append(lost, id)
		}
	}
	return lost
}

// Invariant: a push that writes a wide run, killed at any write (packs,
// the format key, the index marker, the wide run, the segment, the ref),
// leaves no ref naming missing data, and the same push run again
// completes: a fresh machine restores it byte for byte through the
// lookup index alone, and it verifies through the segments.
func TestWideUploadCrashPoints(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	files := wideFiles(1100, 91)
	src := filepath.Join(t.TempDir(), "src")
	writeGenTree(t, src, files)
	const path = "d2/f0600.txt"
	want := digest.Of(files[601].data).Hex()
	for n := 1; ; n++ {
		mem := remote.NewMem()
		f := remote.NewFault(mem)
		struck := failWritesFrom(f, n)
		w := newStoreForTest(t, 64<<10)
		_, err := w.Push(ctx, []string{src}, PushOptions{Ref: "wide", Remote: f})
		if !struck.Load() {
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("a push of %d files: %d writes", len(files), n-1)
			break
		}
		if err == nil {
			t.Fatalf("crash point %d: the push did not fail", n)
		}
		res, err := w.Push(ctx, []string{src}, PushOptions{Ref: "wide", Remote: mem})
		if err != nil {
			t.Fatalf("crash point %d: the push run again: %v", n, err)
		}
		got, c := restoreDigest(t, mem, "wide:"+path)
		if got != want {
			t.Fatalf("crash point %d: restored %s, want %s", n, got, want)
		}
		if c.reqs["list index"] != 0 {
			t.Errorf("crash point %d: a fresh restore fell back to every segment: %v", n, c.reqs)
		}
		_, indexed, sharded := wideArea(t, mem)
		t.Logf("crash point %d: restore of one file: %d requests %v; index marker %v, sharded %v", n, c.total(), c.reqs, indexed, sharded)
		obj := &Object{Digest: res.Digest, Kind: res.Kind, Size: res.Bytes}
		if err := servesAlone(t, mem, obj, src); err != nil {
			t.Fatalf("crash point %d: %v", n, err)
		}
	}
}

// Invariant: a split of the wide area (here by the first push into the
// shards), killed at any write (the sharded marker, any shard run, the
// deletes), leaves every entry of the wide area findable, never a ref
// naming missing data; the push run again completes the split, and both
// pushes restore through the lookup index alone.
func TestWideSplitCrashPoints(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	base := newWideWorld(t)
	runs, _, _ := wideArea(t, base.be)
	wideEntries := readWide(t, base.be, runs[0])
	small := []genEntry{{path: "a.txt", kind: KindFile, data: []byte("a\n")}, {path: "b.bin", kind: KindFile, data: pseudoRandom(20<<10, 92)}}
	src := filepath.Join(t.TempDir(), "small")
	writeGenTree(t, src, small)
	pushSmall := func(be remote.Backend) (*Object, error) {
		w := newStoreForTest(t, 64<<10)
		res, err := w.Push(ctx, []string{src}, PushOptions{Ref: "small", Remote: be})
		if err != nil {
			return nil, err
		}
		return &Object{Digest: res.Digest, Kind: res.Kind, Size: res.Bytes}, nil
	}
	// Count the writes of a push that splits.
	whole := remotetest.Clone(t, base.be)
	counted := remote.NewFault(whole)
	if _, err := pushSmall(counted); err != nil {
		t.Fatal(err)
	}
	total := int(counted.Puts.Load() + counted.Deletes.Load())
	if r, _, sharded := wideArea(t, whole); len(r) != 0 || !sharded {
		t.Fatalf("after the first push into the shards: wide runs %v, sharded %v; want the wide area split", r, sharded)
	}
	points := []int{}
	for n := 1; n <= total; n++ {
		if n <= 8 || n > total-8 || n%150 == 0 {
			points = append(points, n)
		}
	}
	t.Logf("a push that splits the wide area: %d writes; crash points %v", total, points)
	for _, n := range points {
		mem := remotetest.Clone(t, base.be)
		f := remote.NewFault(mem)
		struck := failWritesFrom(f, n)
		if _, err := pushSmall(f); err == nil || !struck.Load() {
			t.Fatalf("crash point %d of %d: the push did not fail (%v)", n, total, err)
		}
		if lost := findsAll(t, mem, wideEntries); len(lost) > 0 {
			t.Fatalf("crash point %d of %d: %d entries of the wide area found nowhere", n, total, len(lost))
		}
		if got, _ := restoreDigest(t, mem, "wide:big.bin"); got != digest.Of(base.dataOf("big.bin")).Hex() {
			t.Fatalf("crash point %d of %d: restored %s", n, total, got)
		}
		if refOn(t, mem, "small") {
			if got, _ := restoreDigest(t, mem, "small:b.bin"); got != digest.Of(small[1].data).Hex() {
				t.Fatalf("crash point %d of %d: a ref names data the bucket does not serve: %s", n, total, got)
			}
		}
		obj, err := pushSmall(mem)
		if err != nil {
			t.Fatalf("crash point %d of %d: the push run again: %v", n, total, err)
		}
		if r, _, _ := wideArea(t, mem); len(r) != 0 {
			t.Errorf("crash point %d of %d: wide runs left after the push ran again: %v", n, total, r)
		}
		if lost := findsAll(t, mem, wideEntries); len(lost) > 0 {
			t.Fatalf("crash point %d of %d: after the push ran again, %d entries found nowhere", n, total, len(lost))
		}
		got, c := restoreDigest(t, mem, "small:b.bin")
		if got != digest.Of(small[1].data).Hex() || c.reqs["list index"] != 0 {
			t.Fatalf("crash point %d of %d: restored %s with %v", n, total, got, c.reqs)
		}
		if n == points[len(points)/2] {
			if err := servesAlone(t, mem, base.obj, base.src); err != nil {
				t.Fatal(err)
			}
			if err := servesAlone(t, mem, obj, src); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// beforePacks is a bucket as one machine sees it: before its first pack
// goes up, it runs hook once (another machine's whole push, landing
// while this one uploads).
type beforePacks struct {
	remote.Backend
	once sync.Once
	hook func()
}

func (b *beforePacks) Put(ctx context.Context, key string, r io.Reader, size int64, opts remote.PutOptions) error {
	if strings.HasPrefix(key, format.PackPrefix) {
		b.once.Do(b.hook)
	}
	return b.Backend.Put(ctx, key, r, size, opts)
}

// Invariant (the wide area's promise, FORMAT §7a): once a push into the
// shards has finished, no wide run is left beside the sharded marker,
// whatever ran at the same time: a reader would read both areas for
// every lookup until some later upload split it. Here machine B starts a
// push of a few files on a flat bucket; while its packs go up, machine A
// pushes many files (a wide run, the bucket still flat); then B writes
// its entries into the shards. Both pushes restore on a fresh machine
// through the lookup index alone.
func TestConcurrentWideAndShardPushesLeaveNoMixedArea(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	mem := remote.NewMem()
	// The bucket is started (flat) by an earlier push of a few files
	// that B's dedup will look up: B lists the wide area before A lands.
	first := []genEntry{{path: "x.bin", kind: KindFile, data: pseudoRandom(20<<10, 93)}}
	if _, _, err := pushTo(t, newStoreForTest(t, 64<<10), mem, "first", first); err != nil {
		t.Fatal(err)
	}
	if err := mem.Delete(ctx, format.LookupShardedMarker); err != nil && !isNotFound(err) {
		t.Fatal(err)
	}
	// (A push of one file writes into the shards; a flat bucket with no
	// run at all is what B sees when it lists: drop the runs too, the
	// first push's entries stay in its segment.)
	var runKeys []string
	_ = mem.List(ctx, format.LookupPrefix, func(oi remote.ObjectInfo) error {
		if oi.Key != format.LookupFormatKey && oi.Key != format.LookupIndexMarker {
			runKeys = append(runKeys, oi.Key)
		}
		return nil
	})
	for _, k := range runKeys {
		if err := mem.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	files := wideFiles(1100, 94)
	var objA *Object
	var srcA string
	b := &beforePacks{Backend: mem, hook: func() {
		var err error
		if objA, srcA, err = pushTo(t, newStoreForTest(t, 64<<10), mem, "a", files); err != nil {
			t.Error(err)
		}
	}}
	small := []genEntry{{path: "b.bin", kind: KindFile, data: pseudoRandom(20<<10, 95)}}
	objB, srcB, err := pushTo(t, newStoreForTest(t, 64<<10), b, "b", small)
	if err != nil || objA == nil {
		t.Fatalf("push b: %v", err)
	}
	runs, _, sharded := wideArea(t, mem)
	if sharded && len(runs) > 0 {
		t.Errorf("after both pushes: %d wide runs beside the sharded marker (a reader reads both areas until a later upload)", len(runs))
	}
	got, c := restoreDigest(t, mem, "a:d1/f0300.txt")
	if got != digest.Of(files[301].data).Hex() {
		t.Fatalf("restored %s", got)
	}
	t.Logf("wide runs %d, sharded %v: a fresh restore of one file of a: %d requests %v", len(runs), sharded, c.total(), c.reqs)
	if c.reqs["list index"] != 0 {
		t.Errorf("a fresh restore fell back to every segment: %v", c.reqs)
	}
	if err := servesAlone(t, mem, objA, srcA); err != nil {
		t.Error(err)
	}
	if err := servesAlone(t, mem, objB, srcB); err != nil {
		t.Error(err)
	}
}

// v1Format is a lookup/format record as the cas before wide runs wrote it.
const v1Format = "{\n  \"version\": 1,\n  \"shard_digits\": 3,\n  \"id\": \"0123456789ab\"\n}\n"

// Invariant: markers in the wide area are hints like every entry: a
// forged index marker (on a bucket of segments only, on one whose index
// is of version 1, on an empty one) or a sharded marker removed (hiding
// every shard run) make reads slower, never wrong, and pushes go on.
func TestAttackWideMarkers(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const weights = "64e4e5a499e1fcd97640b552047dffb56c0bcd4d30261940803e60a1aa9830d7"
	extra := []genEntry{{path: "e.bin", kind: KindFile, data: pseudoRandom(30<<10, 96)}, {path: "n.txt", kind: KindFile, data: []byte("n\n")}}
	tests := []struct {
		name  string
		setup func(t *testing.T) (be *remote.Mem, spec, want string)
	}{
		{"index marker on a bucket of segments only", func(t *testing.T) (*remote.Mem, string, string) {
			be := loadBucket(t, filepath.Join("..", "testdata", "oldbucket"))
			if err := lookupidx.MarkIndexed(ctx, be); err != nil {
				t.Fatal(err)
			}
			return be, "olddata2:sub/weights.bin", weights
		}},
		{"index marker on an index of version 1", func(t *testing.T) (*remote.Mem, string, string) {
			be := remote.NewMem()
			putObject(t, be, format.LookupFormatKey, []byte(v1Format))
			data := pseudoRandom(40<<10, 97)
			if _, _, err := pushTo(t, newStoreForTest(t, 64<<10), be, "v1", []genEntry{{path: "w.bin", kind: KindFile, data: data}}); err != nil {
				t.Fatal(err)
			}
			if shardRuns(t, be) == 0 {
				t.Fatal("a push to an index of version 1 wrote no shard run")
			}
			if err := be.Delete(ctx, format.LookupShardedMarker); err != nil && !isNotFound(err) {
				t.Fatal(err)
			}
			if err := lookupidx.MarkIndexed(ctx, be); err != nil {
				t.Fatal(err)
			}
			return be, "v1:w.bin", digest.Of(data).Hex()
		}},
		{"sharded marker removed", func(t *testing.T) (*remote.Mem, string, string) {
			w := newWideWorld(t)
			data := pseudoRandom(40<<10, 98)
			if _, _, err := pushTo(t, newStoreForTest(t, 64<<10), w.be, "s", []genEntry{{path: "w.bin", kind: KindFile, data: data}}); err != nil {
				t.Fatal(err)
			}
			if runs, _, sharded := wideArea(t, w.be); len(runs) != 0 || !sharded {
				t.Fatalf("after a push into the shards: wide runs %v, sharded %v", runs, sharded)
			}
			if err := w.be.Delete(ctx, format.LookupShardedMarker); err != nil {
				t.Fatal(err)
			}
			return w.be, "s:w.bin", digest.Of(data).Hex()
		}},
		{"markers on an empty bucket", func(t *testing.T) (*remote.Mem, string, string) {
			be := remote.NewMem()
			if err := lookupidx.MarkSharded(ctx, be); err != nil {
				t.Fatal(err)
			}
			if err := lookupidx.MarkIndexed(ctx, be); err != nil {
				t.Fatal(err)
			}
			data := pseudoRandom(40<<10, 99)
			if _, _, err := pushTo(t, newStoreForTest(t, 64<<10), be, "m", []genEntry{{path: "w.bin", kind: KindFile, data: data}}); err != nil {
				t.Fatal(err)
			}
			return be, "m:w.bin", digest.Of(data).Hex()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			be, spec, want := tt.setup(t)
			if got, c := restoreDigest(t, be, spec); got != want {
				t.Fatalf("restored %s as %s (%v), want %s", spec, got, c.reqs, want)
			}
			// A push to the bucket goes on, and both restore.
			obj, src, err := pushTo(t, newStoreForTest(t, 64<<10), be, "extra", extra)
			if err != nil {
				t.Fatalf("a push after the markers were forged: %v", err)
			}
			if err := servesAlone(t, be, obj, src); err != nil {
				t.Error(err)
			}
			if got, c := restoreDigest(t, be, spec); got != want {
				t.Fatalf("after a push, restored %s as %s (%v), want %s", spec, got, c.reqs, want)
			}
			// And a push of many files (a wide run where the bucket looks
			// flat), restored whole.
			many := wideFiles(1100, 100)
			obj, src, err = pushTo(t, newStoreForTest(t, 64<<10), be, "many", many)
			if err != nil {
				t.Fatal(err)
			}
			if err := servesAlone(t, be, obj, src); err != nil {
				t.Error(err)
			}
		})
	}
}

// oldCas is a bucket as the cas before wide runs wrote to it: it knows
// nothing of the wide area, so the markers it would write are dropped
// (it writes runs into shards and nothing else of the lookup index).
type oldCas struct{ remote.Backend }

func (o oldCas) Put(ctx context.Context, key string, r io.Reader, size int64, opts remote.PutOptions) error {
	if strings.HasPrefix(key, format.LookupShardPrefix(format.WideShard)) {
		return nil
	}
	return o.Backend.Put(ctx, key, r, size, opts)
}

// startRace is a bucket on which, just before this machine writes the
// lookup format key, the cas that knew only version 1 writes its own
// (two machines start the lookup index of an empty bucket at once, and
// the old one wins); kill makes every later write but the markers fail
// (this machine is killed after it started the index).
type startRace struct {
	remote.Backend
	killed atomic.Bool
}

func (s *startRace) Put(ctx context.Context, key string, r io.Reader, size int64, opts remote.PutOptions) error {
	if key == format.LookupFormatKey {
		if err := s.Backend.Put(ctx, key, strings.NewReader(v1Format), int64(len(v1Format)), remote.PutOptions{IfNoneMatch: true}); err != nil {
			return err
		}
		s.killed.Store(true)
	} else if s.killed.Load() && !strings.HasPrefix(key, format.LookupShardPrefix(format.WideShard)) {
		return remote.ErrInjected
	}
	return s.Backend.Put(ctx, key, r, size, opts)
}

// Invariant: a bucket whose lookup index is of version 1 never gets the
// index marker (a reader that finds it, and no sharded marker, lists no
// shard): the cas that knew only version 1 writes runs into shards with
// no marker, and its pushes must stay findable through the lookup index.
// Here that cas wins the race to start the index of an empty bucket;
// the new one, started at the same time, is killed after starting it;
// then the old one pushes. A fresh machine restores that push through
// the lookup index, with no fallback to every segment.
func TestOldCasWinsTheLookupFormatRace(t *testing.T) {
	t.Parallel()
	mem := remote.NewMem()
	race := &startRace{Backend: mem}
	if _, _, err := pushTo(t, newStoreForTest(t, 64<<10), race, "new", []genEntry{{path: "n.txt", kind: KindFile, data: []byte("new\n")}}); err == nil {
		t.Fatal("the killed push succeeded")
	}
	data := pseudoRandom(40<<10, 101)
	obj, src, err := pushTo(t, newStoreForTest(t, 64<<10), oldCas{mem}, "old", []genEntry{{path: "w.bin", kind: KindFile, data: data}})
	if err != nil {
		t.Fatal(err)
	}
	if _, indexed, _ := wideArea(t, mem); indexed {
		t.Errorf("the index marker is on a bucket whose lookup index is of version 1")
	}
	got, c := restoreDigest(t, mem, "old:w.bin")
	if got != digest.Of(data).Hex() {
		t.Fatalf("restored %s", got)
	}
	if c.reqs["list index"] != 0 {
		t.Errorf("a fresh restore of the old cas's push fell back to every segment: %v", c.reqs)
	}
	if err := servesAlone(t, mem, obj, src); err != nil {
		t.Error(err)
	}
}

// lookupEntriesOn returns every entry of every run on be (wide and in
// shards) that decodes.
func lookupEntriesOn(t *testing.T, be remote.Backend) []format.RunEntry {
	t.Helper()
	var all []format.RunEntry
	err := be.List(t.Context(), format.LookupPrefix, func(oi remote.ObjectInfo) error {
		rest := strings.TrimPrefix(oi.Key, format.LookupPrefix)
		shard, _, ok := strings.Cut(rest, "/")
		if !ok || oi.Key == format.LookupIndexMarker || oi.Key == format.LookupShardedMarker {
			return nil
		}
		data, err := remote.ReadAll(t.Context(), be, oi.Key)
		if err != nil {
			return err
		}
		es, err := format.DecodeRunIn(shard, data)
		if err != nil {
			return fmt.Errorf("run %s: %w", oi.Key, err)
		}
		all = append(all, es...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return all
}

// Invariant: a gc on a flat bucket drops, from its wide area, the entries
// of the packs it deletes, and what it keeps restores through the lookup
// index alone, byte for byte. Its cost follows the garbage and the runs
// that hold it: no listing of shards that hold no run.
func TestGCPurgesTheWideArea(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	mem := remote.NewMem()
	r := newStoreForTest(t, 64<<10)
	keepSrc := filepath.Join(t.TempDir(), "keep")
	writeGenTree(t, keepSrc, []genEntry{{path: "k.bin", kind: KindFile, data: pseudoRandom(100<<10, 102)}, {path: "k.txt", kind: KindFile, data: []byte("keep\n")}})
	res, err := r.Push(ctx, []string{keepSrc}, PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	keep := res.Object(1)
	trashSrc := filepath.Join(t.TempDir(), "trash")
	writeGenTree(t, trashSrc, wideFiles(1100, 103))
	if _, err := r.Push(ctx, []string{trashSrc}, PushOptions{}); err != nil {
		t.Fatal(err)
	}
	// Both go up at once (one wide run), the ref names one of them.
	if _, err := r.Upload(ctx, mem, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SetRefOn(ctx, mem, "keep", keep); err != nil {
		t.Fatal(err)
	}
	if runs, _, sharded := wideArea(t, mem); len(runs) != 1 || sharded {
		t.Fatalf("before gc: wide runs %v, sharded %v; want a flat bucket", runs, sharded)
	}
	c := newCounting(mem)
	rep, err := r.GC(ctx, c, GCOptions{Grace: NoGrace})
	if err != nil || rep.Freed.Packs == 0 {
		t.Fatalf("gc: %+v, %v", rep, err)
	}
	t.Logf("gc of a flat bucket: %d requests %v", c.total(), c.reqs)
	// No shard holds a run: the purge has nothing to list there.
	if n := c.reqs["list lookup"]; n > 4 {
		t.Errorf("gc of a flat bucket made %d listings of the lookup index, want the wide area's alone", n)
	}
	for _, e := range lookupEntriesOn(t, mem) {
		if e.Kind == format.RunFile {
			continue
		}
		if _, err := mem.Stat(ctx, format.PackKey(e.Blob.Pack)); err != nil {
			t.Fatalf("after gc, the lookup index places %s in pack %s: %v", e.ID.Short(), e.Blob.Pack.Short(), err)
		}
	}
	got, cr := restoreDigest(t, mem, "keep:k.bin")
	if got != digest.Of(pseudoRandom(100<<10, 102)).Hex() || cr.reqs["list index"] != 0 {
		t.Fatalf("restore after gc: %s, %v", got, cr.reqs)
	}
	if err := servesAlone(t, mem, &keep, keepSrc); err != nil {
		t.Error(err)
	}
}

// adoptedBlobs returns n blobs of a made-up pack, as a sweep adopts them.
func adoptedBlobs(n int, seed string) (map[digest.Digest][]index.Blob, map[digest.Digest]bool) {
	p := digest.Of([]byte("adopted pack " + seed))
	var bs []index.Blob
	for i := range n {
		id := digest.Of([]byte(fmt.Sprint(seed, i)))
		bs = append(bs, index.Blob{ID: id, Type: index.TypeData, Pack: p, Offset: uint64(8 + 10*i), Length: 10, RawLen: 10})
	}
	return map[digest.Digest][]index.Blob{p: bs}, map[digest.Digest]bool{p: true}
}

// Invariant: the entries a sweep writes for the orphans it adopts are
// found (in the wide area of a flat bucket, in the shards of another),
// and never make a wide run beside the sharded marker: on a sharded
// bucket, a reader would then read both areas for every lookup until a
// later upload split it.
func TestGCAdoptionOnWideArea(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	ids := func(m map[digest.Digest][]index.Blob) []format.RunEntry {
		var es []format.RunEntry
		for _, bs := range m {
			for _, b := range bs {
				es = append(es, format.RunEntry{ID: b.ID})
			}
		}
		return es
	}
	t.Run("flat, many", func(t *testing.T) {
		w := newWideWorld(t)
		r := newStoreForTest(t, 64<<10)
		adopted, live := adoptedBlobs(1500, "a")
		if err := r.gcLookupAdd(ctx, w.be, adopted, live); err != nil {
			t.Fatal(err)
		}
		if lost := findsAll(t, w.be, ids(adopted)); len(lost) > 0 {
			t.Fatalf("%d adopted entries not found", len(lost))
		}
		if runs, _, sharded := wideArea(t, w.be); len(runs) != 2 || sharded {
			t.Errorf("after adopting 1,500 blobs on a flat bucket: wide runs %v, sharded %v; want two wide runs, flat", runs, sharded)
		}
	})
	t.Run("flat, few", func(t *testing.T) {
		w := newWideWorld(t)
		r := newStoreForTest(t, 64<<10)
		adopted, live := adoptedBlobs(10, "b")
		if err := r.gcLookupAdd(ctx, w.be, adopted, live); err != nil {
			t.Fatal(err)
		}
		if lost := findsAll(t, w.be, ids(adopted)); len(lost) > 0 {
			t.Fatalf("%d adopted entries not found", len(lost))
		}
		// The next push, of one file, moves the wide area into the shards.
		if _, _, err := pushTo(t, newStoreForTest(t, 64<<10), w.be, "one", []genEntry{{path: "o.txt", kind: KindFile, data: []byte("o\n")}}); err != nil {
			t.Fatal(err)
		}
		if runs, _, sharded := wideArea(t, w.be); len(runs) != 0 || !sharded {
			t.Errorf("after a push into the shards: wide runs %v, sharded %v", runs, sharded)
		}
		if err := servesAlone(t, w.be, w.obj, w.src); err != nil {
			t.Error(err)
		}
	})
	t.Run("sharded, many", func(t *testing.T) {
		be := remote.NewMem()
		if _, _, err := pushTo(t, newStoreForTest(t, 64<<10), be, "one", []genEntry{{path: "o.txt", kind: KindFile, data: []byte("o\n")}}); err != nil {
			t.Fatal(err)
		}
		r := newStoreForTest(t, 64<<10)
		// This machine looked at the bucket before its first push.
		if err := r.UseRemote(ctx, be); err != nil {
			t.Fatal(err)
		}
		adopted, live := adoptedBlobs(1500, "c")
		if err := r.gcLookupAdd(ctx, be, adopted, live); err != nil {
			t.Fatal(err)
		}
		if lost := findsAll(t, be, ids(adopted)); len(lost) > 0 {
			t.Fatalf("%d adopted entries not found", len(lost))
		}
		if runs, _, sharded := wideArea(t, be); len(runs) != 0 || !sharded {
			t.Errorf("after adopting 1,500 blobs on a sharded bucket: wide runs %v, sharded %v; want none, sharded", runs, sharded)
		}
	})
}

// Invariant: a run a listing shows and a read finds gone, twice (a
// listing that lags behind deletes, as some S3-compatible services'
// do; or the wide area, which every upload of many files rewrites,
// compacted under the reader at each turn), is a gap: the read falls
// back to the segments and gets the right bytes, never fails.
func TestListedWideRunGoneTwice(t *testing.T) {
	t.Parallel()
	w := newWideWorld(t)
	const path = "d2/f0700.txt"
	ghost := &hostileRun{Backend: w.be, key: format.RunKey(format.WideShard, digest.Of([]byte("merged away"))), size: 200 << 10,
		body: func(int64, int64) (io.ReadCloser, error) {
			return nil, fmt.Errorf("get: %w", remote.ErrNotFound)
		}}
	got, c := restoreDigest(t, ghost, "wide:"+path)
	if got != digest.Of(w.dataOf(path)).Hex() {
		t.Fatalf("restored %s, want the file pushed", got)
	}
	t.Logf("restore beside a run listed and gone: %d requests %v", c.total(), c.reqs)
}

// oldReader is a bucket as the cas before wide runs reads it: it knows
// nothing of the wide area, and lists every shard.
type oldReader struct{ remote.Backend }

func (o oldReader) List(ctx context.Context, prefix string, fn func(remote.ObjectInfo) error) error {
	wide := format.LookupShardPrefix(format.WideShard)
	return o.Backend.List(ctx, prefix, func(oi remote.ObjectInfo) error {
		if strings.HasPrefix(oi.Key, wide) {
			return nil
		}
		return fn(oi)
	})
}

// Invariant: a lookup index of version 1 is extended as version 1. The
// cas of version 1 pushed to a bucket; the new cas pushes many files to
// it (a wide run, on a bucket of version 2): their entries go to the
// shards, where the old cas finds every one, and each cas restores the
// other's push through the lookup index, byte for byte.
func TestVersion1BucketExtendedAsVersion1(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	mem := remote.NewMem()
	putObject(t, mem, format.LookupFormatKey, []byte(v1Format))
	oldData := pseudoRandom(40<<10, 104)
	oldObj, oldSrc, err := pushTo(t, newStoreForTest(t, 64<<10), oldCas{mem}, "old", []genEntry{{path: "w.bin", kind: KindFile, data: oldData}})
	if err != nil {
		t.Fatal(err)
	}
	w := newStoreForTest(t, 64<<10)
	files := wideFiles(1100, 105)
	newObj, newSrc, err := pushTo(t, w, mem, "new", files)
	if err != nil {
		t.Fatal(err)
	}
	if runs, indexed, _ := wideArea(t, mem); len(runs) != 0 || indexed {
		t.Fatalf("a bucket of version 1: wide runs %v, index marker %v; want neither", runs, indexed)
	}
	// Every entry of the new push's segment, as the old cas reads.
	var es []format.RunEntry
	err = mem.List(ctx, format.SegmentPrefix, func(oi remote.ObjectInfo) error {
		id, err := format.SegmentIDFromKey(oi.Key)
		if err != nil {
			return err
		}
		seg, _, err := getSegment(ctx, mem, oi.Key)
		if err != nil {
			return err
		}
		es = append(es, lookupidx.FromSegment(id, oi.Size, seg)...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if lost := findsAll(t, oldReader{mem}, es); len(lost) > 0 {
		t.Fatalf("the cas of version 1 finds %d of %d entries nowhere", len(lost), len(es))
	}
	for _, be := range []remote.Backend{mem, oldReader{mem}} {
		if got, c := restoreDigest(t, be, "new:d2/f0600.txt"); got != digest.Of(files[601].data).Hex() || c.reqs["list index"] != 0 {
			t.Fatalf("restore of the new push: %s, %v", got, c.reqs)
		}
		if got, c := restoreDigest(t, be, "old:w.bin"); got != digest.Of(oldData).Hex() || c.reqs["list index"] != 0 {
			t.Fatalf("restore of the old push: %s, %v", got, c.reqs)
		}
	}
	if err := servesAlone(t, mem, oldObj, oldSrc); err != nil {
		t.Error(err)
	}
	if err := servesAlone(t, mem, newObj, newSrc); err != nil {
		t.Error(err)
	}
}

// Invariant: the cas of version 1 reading a flat bucket of version 2
// (it lists shards, which hold nothing) finds no entry there and falls
// back to the segments: slower, never wrong.
func TestOldReaderOfFlatBucket(t *testing.T) {
	t.Parallel()
	w := newWideWorld(t)
	const path = "d0/f0100.txt"
	got, c := restoreDigest(t, oldReader{w.be}, "wide:"+path)
	if got != digest.Of(w.dataOf(path)).Hex() {
		t.Fatalf("restored %s, want the file pushed", got)
	}
	if c.reqs["list index"] == 0 {
		t.Fatalf("the old reader found entries where none are: %v", c.reqs)
	}
	if err := servesAlone(t, oldReader{w.be}, w.obj, w.src); err != nil {
		t.Error(err)
	}
}

// Invariant: machines pushing at once to a flat bucket, two of them many
// files (wide runs, merged and split by their compactions) and one a few
// (into the shards), lose nothing: every push restores on a fresh machine
// through the lookup index alone, byte for byte.
func TestConcurrentWidePushersLoseNothing(t *testing.T) {
	t.Parallel()
	mem := remote.NewMem()
	type pushed struct {
		ref, path string
		data      []byte
	}
	var mu sync.Mutex
	var all []pushed
	var wg sync.WaitGroup
	for m := range 3 {
		wg.Go(func() {
			r := newStoreForTest(t, 64<<10)
			for round := range 2 {
				ref := fmt.Sprintf("m%d-%d", m, round)
				files := wideFiles(1100, uint64(1000+10*m+round))
				if m == 2 {
					files = files[:3] // big.bin and two small files: into the shards
				}
				if _, _, err := pushTo(t, r, mem, ref, files); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				all = append(all, pushed{ref, files[2].path, files[2].data}, pushed{ref, "big.bin", files[0].data})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	runs, _, sharded := wideArea(t, mem)
	t.Logf("after the pushes: %d wide runs, sharded %v, %d shard runs", len(runs), sharded, shardRuns(t, mem))
	for _, p := range all {
		got, c := restoreDigest(t, mem, p.ref+":"+p.path)
		if got != digest.Of(p.data).Hex() {
			t.Fatalf("%s:%s restored as %s", p.ref, p.path, got)
		}
		if c.reqs["list index"] != 0 {
			t.Errorf("%s:%s: a fresh restore fell back to every segment: %v", p.ref, p.path, c.reqs)
		}
	}
}

// Invariant: what a compaction or a gc's purge reads of the wide area is
// bounded whatever the bucket lists: an honest wide area is at most
// lookupidx.SplitAt and a wide run or two. Here the listing shows a wide
// run of 512 MiB (served as zeros: it fails its checks once read) on a
// sharded bucket, so the next compaction splits, and a gc purges the wide
// area. Not parallel: it measures the heap.
func TestAttackWideHugeRunRead(t *testing.T) {
	ctx := t.Context()
	mem := remote.NewMem()
	if err := lookupidx.MarkIndexed(ctx, mem); err != nil {
		t.Fatal(err)
	}
	if err := lookupidx.MarkSharded(ctx, mem); err != nil {
		t.Fatal(err)
	}
	const size = 512 << 20
	h := &hostileRun{Backend: mem, key: format.RunKey(format.WideShard, digest.Of([]byte("huge"))), size: size,
		body: func(off, n int64) (io.ReadCloser, error) {
			return io.NopCloser(io.LimitReader(zeros{}, n)), nil
		}}
	const limit = 80 << 20
	var err error
	if n := allocatedBy(func() {
		_, err = lookupidx.Compact(ctx, h, []string{format.WideShard}, 4, lookupidx.Policy{Budget: 4 << 20})
	}); n > limit {
		t.Errorf("a compaction of a wide area listed at %d MiB allocated %d MiB (%v)", size>>20, n>>20, err)
	}
	gone := map[digest.Digest]bool{digest.Of([]byte("a pack")): true}
	if n := allocatedBy(func() { _, err = lookupidx.Purge(ctx, h, []string{format.WideShard}, gone, 4) }); n > limit {
		t.Errorf("a purge of a wide area listed at %d MiB allocated %d MiB (%v)", size>>20, n>>20, err)
	}
}

// Invariant: a read that falls back to every segment finds what any
// segment places, including one a lookup loaded whole just before. Here
// the wide run lies about big.bin's chunk list (swapped) and calls every
// segment large: a fresh machine reads one directory (a lookup), then
// restores big.bin: the lookup of its chunk list (the lie), then of its
// chunks, the fourth answer of their segment, which loads it whole; the
// file's digest is wrong, the read falls back to the segments, forgets
// what the lookups placed, and must still find the chunks (the loaded
// segment places them).
func TestLazyFallbackAfterSegmentLoaded(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	base := newWideWorld(t)
	be := remotetest.Clone(t, base.be)
	replaceWide(t, be, func(es []format.RunEntry) []format.RunEntry {
		for i := range es {
			es[i].SegmentSize = 1 << 40
			if es[i].Kind == format.RunFile {
				es[i].Chunks[0], es[i].Chunks[1] = es[i].Chunks[1], es[i].Chunks[0]
			}
		}
		return es
	})
	r := newStoreForTest(t, 64<<10)
	if err := r.UseRemote(ctx, be); err != nil {
		t.Fatal(err)
	}
	dir, err := r.Resolve(ctx, "wide:d0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadTree(ctx, dir.Digest); err != nil {
		t.Fatal(err)
	}
	obj, err := r.Resolve(ctx, "wide:big.bin")
	if err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "big.bin")
	if _, err := r.Restore(ctx, obj, dest, RestoreOptions{}); err != nil {
		t.Fatalf("restore after a fallback: %v", err)
	}
	if got := snapshotDir(t, filepath.Dir(dest))["big.bin"]; string(got.data) != string(base.dataOf("big.bin")) {
		t.Fatal("big.bin restored wrong")
	}
}
