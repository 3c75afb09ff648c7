package cas

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/cas/gc"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
	"github.com/cas-ml/cas/remote"
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

// A gc without grace killed after deleting a pack and before deleting the
// segment naming it leaves a plan as young as its sweep: the next gc, with
// the default grace, must not take it for one not due ("nothing to
// collect", leaving the plan, the claim and the segment for good). Within
// the dead gc's lease it says another gc is running and when to run again;
// after, it finishes the sweep. A push needing a pack of that plan says it
// waits, and stops waiting once the claim has run out.
func TestGCFinishesAKilledSweepWithoutGrace(t *testing.T) {
	t.Parallel()
	w := newGCWorld(t)
	ctx := t.Context()
	var warned []error
	w.r.Warn = func(err error) { warned = append(warned, err) }
	kill := func(s string) error {
		if s == "packs deleted" {
			return errors.New("killed")
		}
		return nil
	}
	if _, err := w.r.GC(ctx, nil, GCOptions{Grace: NoGrace, StepHook: kill}); err == nil {
		t.Fatal("gc was not stopped")
	}
	if len(keys(t, w.r.Backend, gc.PlansPrefix)) != 1 || len(keys(t, w.r.Backend, gc.SweepPrefix)) != 1 {
		t.Fatal("the killed gc left no plan and claim")
	}
	if _, err := w.r.GC(ctx, nil, GCOptions{}); !errors.Is(err, ErrGCBusy) {
		t.Fatalf("gc within the dead gc's lease: %v, want ErrGCBusy", err)
	}
	// A push needing a pack of the plan waits while the claim lasts.
	plan := strings.TrimPrefix(keys(t, w.r.Backend, gc.PlansPrefix)[0], gc.PlansPrefix)
	guard := make(chan error, 1)
	go func() { guard <- w.r.afterSweep(ctx, w.r.Backend, []string{plan}, map[digest.Digest]bool{}) }()
	waiting, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := w.clock.BlockUntil(waiting, 1); err != nil {
		select {
		case gerr := <-guard:
			t.Fatalf("the guard returned %v without waiting for the sweep", gerr)
		default:
			t.Fatalf("the guard never began to wait for the sweep: %v", err)
		}
	}
	if len(warned) == 0 || !strings.Contains(warned[0].Error(), "waiting") {
		t.Errorf("the guard waits without a word: warnings %v", warned)
	}
	w.clock.Advance(gc.SweepLease(DefaultGrace) + time.Second)
	select {
	case err := <-guard:
		if !errors.Is(err, ErrGCBusy) || !strings.Contains(err.Error(), "run gc") {
			t.Fatalf("guard once the claim ran out: %v, want ErrGCBusy telling to run gc", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("guard still waiting after the dead gc's claim ran out")
	}
	rep, err := w.r.GC(ctx, nil, GCOptions{})
	if err != nil {
		t.Fatalf("gc after the lease: %v", err)
	}
	if rep.Segments == 0 {
		t.Errorf("gc after the lease: %d segments rewritten; want those naming the deleted packs", rep.Segments)
	}
	for _, prefix := range []string{gc.PlansPrefix, gc.SweepPrefix} {
		if ks := keys(t, w.r.Backend, prefix); len(ks) != 0 {
			t.Errorf("left after gc: %v", ks)
		}
	}
	fresh, err := OpenRemoteOnly(ctx, w.r.Backend)
	if err != nil {
		t.Fatal(err)
	}
	_ = fresh.Index.Blobs(func(b index.Blob) error {
		if _, err := w.r.Backend.Stat(ctx, format.PackKey(b.Pack)); errors.Is(err, remote.ErrNotFound) {
			t.Errorf("a segment still names deleted pack %s (blob %s)", b.Pack.Short(), b.ID.Short())
		}
		return nil
	})
	w.checkKept(t)
	_, again := pushTree(t, w.r, w.trash)
	mustRef(t, w.r, "again", again)
	if vr, err := w.r.Verify(ctx, again, "again", nil); err != nil || !vr.OK() {
		t.Fatalf("verify the data pushed again: %v %+v", err, vr)
	}
}
