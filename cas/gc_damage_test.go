package cas

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/digest"
)

// A chunk found damaged in one pack and stored again in another by a
// push of its source has two copies: gc keeps the sound one, whichever
// copy the segments name first (the order of their keys, so the data
// decides; several are tried, so that both orders come up), and never
// only the damaged one.
func TestGCKeepsTheSoundCopy(t *testing.T) {
	t.Parallel()
	damagedFirst := 0
	for seed := range uint64(8) {
		ctx := t.Context()
		dir := filepath.Join(t.TempDir(), DirName)
		params, _ := NewChunkParams(64 << 10)
		if err := Init(dir, params, time.Now()); err != nil {
			t.Fatal(err)
		}
		src := filepath.Join(t.TempDir(), "src")
		data := pseudoRandom(300<<10, 40+seed)
		writeGenTree(t, src, []genEntry{{path: "x.bin", kind: KindFile, data: data}})
		r := mustOpen(t, dir)
		first, err := r.Push(ctx, []string{src}, PushOptions{})
		if err != nil {
			t.Fatal(err)
		}
		obj := &Object{Digest: first.Digest, Kind: first.Kind, Size: first.Bytes}
		mustRef(t, r, "d", obj)
		mustClose(t, r)
		packs := storeFiles(t, dir, format.PackPrefix)
		if len(packs) != 1 {
			t.Fatalf("%d packs after the first push, want 1", len(packs))
		}
		damaged := packs[0]
		firstSeg := storeFiles(t, dir, format.SegmentPrefix)
		flipAt(t, damaged, 20000)

		r = mustOpen(t, dir)
		if rep, err := r.Verify(ctx, obj, "d", nil); err != nil || rep.OK() {
			t.Fatalf("seed %d: verify of the damaged pack: %v, ok=%v; want damage found", seed, err, rep != nil && rep.OK())
		}
		again, err := r.Push(ctx, []string{src}, PushOptions{})
		if err != nil || again.Digest != first.Digest || again.NewBytes == 0 {
			t.Fatalf("seed %d: push again: %+v, %v; want the damaged chunk stored anew", seed, again, err)
		}
		mustRef(t, r, "d2", obj)
		segs := storeFiles(t, dir, format.SegmentPrefix)
		if len(segs) != 2 || len(firstSeg) != 1 {
			t.Fatalf("seed %d: segments %d then %d, want 1 then 2", seed, len(firstSeg), len(segs))
		}
		if slices.Min(segs) == firstSeg[0] {
			damagedFirst++ // the damaged copy is the one the segments name first
		}
		rep, err := r.GC(ctx, nil, GCOptions{Grace: NoGrace})
		if err != nil {
			t.Fatalf("seed %d: gc: %v", seed, err)
		}
		// The damaged pack holds the file's other chunks: both stay.
		if rep.Freed.Packs != 0 || len(storeFiles(t, dir, format.PackPrefix)) != 2 {
			t.Errorf("seed %d: gc freed %d packs, left %d; want 0 freed, both kept", seed, rep.Freed.Packs, len(storeFiles(t, dir, format.PackPrefix)))
		}
		alone, err := OpenRemoteOnly(ctx, r.Backend)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []*Repo{r, alone} {
			if vr, err := v.Verify(ctx, obj, "d2", nil); err != nil || !vr.OK() {
				t.Errorf("seed %d: verify after gc: %v %+v", seed, err, vr)
			}
			var buf bytes.Buffer
			if err := v.WriteFile(ctx, &Object{Digest: digest.Of(data), Kind: KindFile, Size: int64(len(data))}, &buf); err != nil || !bytes.Equal(buf.Bytes(), data) {
				t.Errorf("seed %d: read x.bin after gc: %d bytes, %v", seed, buf.Len(), err)
			}
		}
		mustClose(t, r)
		if _, err := os.Stat(damaged); err != nil {
			t.Errorf("seed %d: the damaged pack, which holds live chunks too: %v", seed, err)
		}
	}
	if damagedFirst == 0 || damagedFirst == 8 {
		t.Fatalf("the damaged copy came first in %d of 8 stores: the test needs both orders", damagedFirst)
	}
}
