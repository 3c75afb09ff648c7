package cas

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/cas/gc"
	"github.com/cas-ml/cas/clock"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
	"github.com/cas-ml/cas/remote"
)

// gcWorld is a store with an injected clock holding: a dataset under a
// ref, a ref moved once (its old target kept by history), a pin of a
// manifest with roots, and one push nothing references.
type gcWorld struct {
	r       *Repo
	clock   *clock.Fake
	kept    *Object // refs/data
	old     *Object // the first target of refs/moving
	moved   *Object // its current one
	pinned  []Object
	garbage *Object
	trash   []genEntry
	// garbage2 is a second unreferenced push, so that there are two
	// garbage packs.
	garbage2 *Object
}

func newGCWorld(t *testing.T) *gcWorld {
	t.Helper()
	w := &gcWorld{r: newStoreForTest(t, 64<<10), clock: clock.NewFake(time.Now())}
	w.r.Clock = w.clock
	ctx := t.Context()
	_, w.kept = pushTree(t, w.r, []genEntry{{path: "a.bin", kind: KindFile, data: pseudoRandom(400<<10, 1)}})
	mustRef(t, w.r, "data", w.kept)
	_, w.old = pushTree(t, w.r, []genEntry{{path: "v1.bin", kind: KindFile, data: pseudoRandom(200<<10, 2)}})
	mustRef(t, w.r, "moving", w.old)
	_, w.moved = pushTree(t, w.r, []genEntry{{path: "v2.bin", kind: KindFile, data: pseudoRandom(200<<10, 3)}})
	mustRef(t, w.r, "moving", w.moved)
	man, roots, _ := pinFixture(t, w.r)
	if _, err := w.r.Pin(ctx, nil, "paper", man, PinOptions{}); err != nil {
		t.Fatal(err)
	}
	w.pinned = append([]Object{man}, roots...)
	w.trash = []genEntry{
		{path: "big.bin", kind: KindFile, data: pseudoRandom(500<<10, 4)},
		{path: "small.txt", kind: KindFile, data: []byte("unreferenced\n")},
	}
	_, w.garbage = pushTree(t, w.r, w.trash)
	_, w.garbage2 = pushTree(t, w.r, []genEntry{{path: "other.bin", kind: KindFile, data: pseudoRandom(100<<10, 5)}})
	return w
}

// killedSweep plans, then stops the sweep of the plan once its packs are
// deleted, before the segments that named them are, as a kill would.
func (w *gcWorld) killedSweep(t *testing.T) {
	t.Helper()
	w.clock.Advance(25 * time.Hour)
	w.gc(t, GCOptions{})
	w.clock.Advance(25 * time.Hour)
	kill := func(s string) error {
		if s == "packs deleted" {
			return errors.New("killed")
		}
		return nil
	}
	if _, err := w.r.GC(t.Context(), nil, GCOptions{StepHook: kill}); err == nil {
		t.Fatal("gc was not stopped")
	}
}

func mustRef(t *testing.T, r *Repo, name string, o *Object) {
	t.Helper()
	if _, err := r.SetRef(t.Context(), name, *o); err != nil {
		t.Fatalf("SetRef %s: %v", name, err)
	}
}

func (w *gcWorld) gc(t *testing.T, opts GCOptions) *GCReport {
	t.Helper()
	rep, err := w.r.GC(t.Context(), nil, opts)
	if err != nil {
		t.Fatalf("GC: %v", err)
	}
	return rep
}

// checkKept verifies, from the store's segments alone (a fresh view, no
// cached index), every object that must survive.
func (w *gcWorld) checkKept(t *testing.T) {
	t.Helper()
	view, err := OpenRemoteOnly(t.Context(), w.r.Backend)
	if err != nil {
		t.Fatalf("open the store alone: %v", err)
	}
	for _, o := range append([]Object{*w.kept, *w.old, *w.moved}, w.pinned...) {
		rep, err := view.Verify(t.Context(), &o, o.Digest.Short(), nil)
		if err != nil {
			t.Fatalf("verify %s: %v", o.Digest.Short(), err)
		}
		if !rep.OK() {
			t.Errorf("verify %s after gc: %+v", o.Digest.Short(), rep.Problems)
		}
	}
}

func keys(t *testing.T, be remote.Backend, prefix string) []string {
	t.Helper()
	var ks []string
	if err := be.List(t.Context(), prefix, func(oi remote.ObjectInfo) error { ks = append(ks, oi.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	return ks
}

func (w *gcWorld) garbagePacks(t *testing.T) map[digest.Digest]bool {
	t.Helper()
	packs := map[digest.Digest]bool{}
	for _, o := range []*Object{w.garbage, w.garbage2} {
		if err := w.r.closurePacks(t.Context(), o, packs); err != nil {
			t.Fatal(err)
		}
	}
	return packs
}

func TestGCTwoPhases(t *testing.T) {
	t.Parallel()
	w := newGCWorld(t)
	gp := w.garbagePacks(t)
	packsBefore := len(keys(t, w.r.Backend, format.PackPrefix))

	// Everything is younger than the grace period: nothing is planned.
	rep := w.gc(t, GCOptions{})
	if rep.Planned.Packs != 0 || rep.Freed.Packs != 0 || rep.Young != len(gp) {
		t.Fatalf("young store: %+v, want nothing planned and %d young packs", rep, len(gp))
	}

	// A day later: the unreferenced push is condemned, not yet deleted.
	w.clock.Advance(25 * time.Hour)
	dry := w.gc(t, GCOptions{DryRun: true})
	if dry.Planned.Packs != len(gp) || len(keys(t, w.r.Backend, gc.Prefix)) != 0 {
		t.Fatalf("dry run: %+v and gc/ holds %v, want %d packs planned and nothing written", dry, keys(t, w.r.Backend, gc.Prefix), len(gp))
	}
	rep = w.gc(t, GCOptions{})
	if rep.Planned.Packs != len(gp) || rep.Freed.Packs != 0 || rep.Plan == "" || rep.LivePacks != packsBefore-len(gp) {
		t.Fatalf("mark: %+v, want %d packs planned of %d, none freed", rep, len(gp), packsBefore)
	}
	if n := len(keys(t, w.r.Backend, format.PackPrefix)); n != packsBefore {
		t.Fatalf("mark deleted packs: %d left of %d", n, packsBefore)
	}
	// The plan is not due yet: a second gc neither sweeps nor plans again.
	rep = w.gc(t, GCOptions{})
	if rep.Planned.Packs != 0 || rep.Pending.Packs != len(gp) || rep.Freed.Packs != 0 {
		t.Fatalf("second gc: %+v, want the plan pending", rep)
	}

	// A day after the plan: the sweep deletes exactly the garbage.
	w.clock.Advance(25 * time.Hour)
	rep = w.gc(t, GCOptions{})
	if rep.Freed.Packs != len(gp) || rep.Planned.Packs != 0 || rep.Spared != 0 {
		t.Fatalf("sweep: %+v, want %d packs freed", rep, len(gp))
	}
	for p := range gp {
		if _, err := w.r.Backend.Stat(t.Context(), format.PackKey(p)); !errors.Is(err, remote.ErrNotFound) {
			t.Errorf("garbage pack %s: stat = %v, want deleted", p.Short(), err)
		}
	}
	if n := len(keys(t, w.r.Backend, format.PackPrefix)); n != packsBefore-len(gp) {
		t.Errorf("%d packs left, want %d", n, packsBefore-len(gp))
	}
	if ks := keys(t, w.r.Backend, gc.Prefix); len(ks) != 1 || !strings.HasPrefix(ks[0], gc.DonePrefix) {
		t.Errorf("gc/ holds %v, want only the record of what was deleted", ks)
	}
	w.checkKept(t)
	// The local index forgot the deleted data: pushing it again stores it.
	if _, err := w.r.Resolve(t.Context(), w.garbage.Digest.String()); !errors.Is(err, ErrNotFound) {
		t.Errorf("resolve collected tree: %v, want ErrNotFound", err)
	}
	_, again := pushTree(t, w.r, w.trash)
	mustRef(t, w.r, "again", again)
	if rep, err := w.r.Verify(t.Context(), again, "again", nil); err != nil || !rep.OK() {
		t.Fatalf("verify the re-pushed data: %v %+v", err, rep)
	}
}

func TestGCNoGrace(t *testing.T) {
	t.Parallel()
	w := newGCWorld(t)
	gp := w.garbagePacks(t)
	rep := w.gc(t, GCOptions{Grace: NoGrace})
	if rep.Freed.Packs != len(gp) || rep.Plan != "" {
		t.Fatalf("gc without grace: %+v, want %d packs freed at once", rep, len(gp))
	}
	w.checkKept(t)
}

// A push that relies on condemned packs between the mark and the sweep
// leaves a keep marker, and the sweep spares them.
func TestGCSparesWhatAPushReuses(t *testing.T) {
	t.Parallel()
	w := newGCWorld(t)
	gp := w.garbagePacks(t)
	reusedPacks := map[digest.Digest]bool{}
	if err := w.r.closurePacks(t.Context(), w.garbage, reusedPacks); err != nil {
		t.Fatal(err)
	}
	w.clock.Advance(25 * time.Hour)
	if rep := w.gc(t, GCOptions{}); rep.Planned.Packs != len(gp) {
		t.Fatalf("mark: %+v", rep)
	}
	// Another push of overlapping data dedups against condemned packs.
	_, again := pushTree(t, w.r, append(w.trash, genEntry{path: "new.txt", kind: KindFile, data: []byte("new\n")}))
	mustRef(t, w.r, "reuse", again)
	if ks := keys(t, w.r.Backend, gc.KeepPrefix); len(ks) != 1 {
		t.Fatalf("keep markers: %v, want one", ks)
	}
	w.clock.Advance(25 * time.Hour)
	rep := w.gc(t, GCOptions{})
	if rep.Freed.Packs != len(gp)-len(reusedPacks) || rep.Spared != len(reusedPacks) {
		t.Fatalf("sweep: %+v, want the %d reused packs spared, the rest freed", rep, len(reusedPacks))
	}
	if ks := keys(t, w.r.Backend, gc.Prefix); len(ks) != 1 || !strings.HasPrefix(ks[0], gc.DonePrefix) {
		t.Errorf("gc/ holds %v after the sweep, want only the record of what was deleted", ks)
	}
	view, err := OpenRemoteOnly(t.Context(), w.r.Backend)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := view.Verify(t.Context(), again, "reuse", nil); err != nil || !rep.OK() {
		t.Fatalf("verify reuse: %v %+v", err, rep)
	}
	w.checkKept(t)
}

// A ref written (here without the guard) before the sweep's own mark is
// seen by that mark: the sweep re-marks.
func TestGCSweepMarksAgain(t *testing.T) {
	t.Parallel()
	w := newGCWorld(t)
	w.clock.Advance(25 * time.Hour)
	w.gc(t, GCOptions{})
	ref := []byte(fmt.Sprintf(`{"name":"late","target":%q,"kind":"dir","size":%d,"time":"2026-01-01T00:00:00Z"}`, w.garbage.Digest, w.garbage.Size))
	if err := w.r.Backend.Put(t.Context(), refPrefix+"late", strings.NewReader(string(ref)), int64(len(ref)), remote.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	w.clock.Advance(25 * time.Hour)
	rep := w.gc(t, GCOptions{})
	if rep.Freed.Packs != 1 || rep.Spared != 1 {
		t.Fatalf("sweep: %+v, want the late ref's pack spared, the other freed", rep)
	}
	w.garbage, w.old = w.old, w.garbage // checkKept now covers the late ref's target too
	w.checkKept(t)
}

// A push whose guard finds the sweep under way waits for it to end and
// is told that what it relied on is gone; pushing again stores it anew.
// The guard polls on the store's clock, so the test knows when it waits.
func TestGCGuardWaitsForSweep(t *testing.T) {
	t.Parallel()
	w := newGCWorld(t)
	w.clock.Advance(25 * time.Hour)
	plan := w.gc(t, GCOptions{}).Plan
	id := strings.TrimPrefix(plan, gc.PlansPrefix)
	if err := gc.PutJSON(t.Context(), w.r.Backend, gc.SweepPrefix+id, map[string]string{"plan": id}); err != nil {
		t.Fatal(err)
	}
	w.clock.Advance(25 * time.Hour) // the plan is due
	guard := make(chan error, 1)
	go func() { guard <- w.r.GuardGC(t.Context(), nil, *w.garbage) }()
	waiting, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := w.clock.BlockUntil(waiting, 1); err != nil {
		t.Fatalf("the guard never began to wait for the sweep: %v", err)
	}
	select {
	case err := <-guard:
		t.Fatalf("guard returned %v while the sweep was under way", err)
	default:
	}
	if rep := w.gc(t, GCOptions{}); rep.Freed.Packs == 0 {
		t.Fatalf("sweep freed nothing: %+v", rep)
	}
	w.clock.Advance(2 * time.Second) // the longest wait between two looks
	select {
	case err := <-guard:
		if !errors.Is(err, errCollected) {
			t.Fatalf("guard after the sweep: %v, want errCollected (push again)", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("guard still waiting after the sweep ended")
	}
	_, again := pushTree(t, w.r, w.trash)
	mustRef(t, w.r, "again", again)
	if rep, err := w.r.Verify(t.Context(), again, "again", nil); err != nil || !rep.OK() {
		t.Fatalf("verify the re-pushed data: %v %+v", err, rep)
	}
}

// A sweep stopped at any step (as by kill -9: a sweep has no cleanup to
// skip) leaves every ref and pin whole, and the next gc finishes the job.
func TestGCInterrupted(t *testing.T) {
	t.Parallel()
	for _, step := range []string{"sweep started", "segment written", "deletions recorded", "pack deleted", "packs deleted", "segments deleted"} {
		t.Run(step, func(t *testing.T) {
			w := newGCWorld(t)
			gp := w.garbagePacks(t)
			w.clock.Advance(25 * time.Hour)
			w.gc(t, GCOptions{})
			w.clock.Advance(25 * time.Hour)
			var calls atomic.Int32
			kill := func(s string) error {
				// "pack deleted" stops before the second deletion: half done.
				if s == step && (s != "pack deleted" || calls.Add(1) == 2) {
					return errors.New("killed at " + s)
				}
				return nil
			}
			_, err := w.r.GC(t.Context(), nil, GCOptions{StepHook: kill})
			if err == nil || !strings.Contains(err.Error(), "killed at") {
				t.Fatalf("GC: %v, want it stopped", err)
			}
			w.checkKept(t)
			// The next process syncs its index: deletions recorded are forgotten.
			if err := w.r.SyncIndex(t.Context()); err != nil {
				t.Fatal(err)
			}
			// Its sweep marker says a gc is at work: another gc waits out
			// the lease before it resumes the work.
			if _, err := w.r.GC(t.Context(), nil, GCOptions{}); !errors.Is(err, ErrGCBusy) {
				t.Fatalf("gc right after: %v, want ErrGCBusy", err)
			}
			w.clock.Advance(11 * time.Minute)
			rep := w.gc(t, GCOptions{})
			left := 0
			for p := range gp {
				if _, err := w.r.Backend.Stat(t.Context(), format.PackKey(p)); err == nil {
					left++
				}
			}
			if left != 0 {
				t.Errorf("%d garbage packs left after the second gc (%+v)", left, rep)
			}
			if ks := keys(t, w.r.Backend, gc.Prefix); len(ks) > 2 || slicesAny(ks, func(k string) bool { return !strings.HasPrefix(k, gc.DonePrefix) }) {
				t.Errorf("gc/ holds %v, want only records of deletions", ks)
			}
			w.checkKept(t)
			_, again := pushTree(t, w.r, w.trash)
			if rep, err := w.r.Verify(t.Context(), again, "again", nil); err != nil || !rep.OK() {
				t.Fatalf("verify the re-pushed data: %v %+v", err, rep)
			}
		})
	}
}

func slicesAny(ks []string, f func(string) bool) bool {
	for _, k := range ks {
		if f(k) {
			return true
		}
	}
	return false
}

// After a crashed push: its packs no segment names are collected when
// unreferenced, and adopted into a segment when a later push reused them.
func TestGCAfterCrashedPush(t *testing.T) {
	t.Parallel()
	w := newGCWorld(t)
	// Two "crashed" pushes: their segments never landed.
	segsBefore := map[string]bool{}
	for _, k := range keys(t, w.r.Backend, format.SegmentPrefix) {
		segsBefore[k] = true
	}
	reusedTree := []genEntry{{path: "r.bin", kind: KindFile, data: pseudoRandom(300<<10, 9)}}
	pushTree(t, w.r, reusedTree)
	_, lost := pushTree(t, w.r, []genEntry{{path: "l.bin", kind: KindFile, data: pseudoRandom(300<<10, 10)}})
	lostPacks := map[digest.Digest]bool{}
	if err := w.r.closurePacks(t.Context(), lost, lostPacks); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys(t, w.r.Backend, format.SegmentPrefix) {
		if !segsBefore[k] {
			if err := os.Remove(filepath.Join(w.r.Dir, storeDir, k)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// As after a kill: the index knows the orphans' blobs from their
	// trailers, not their files' chunk lists.
	if _, _, err := w.r.RebuildIndex(t.Context()); err != nil {
		t.Fatal(err)
	}
	// A later push reuses the first one's chunks and names them; its
	// segment lists the new file, not where the reused chunks are.
	_, reused := pushTree(t, w.r, append(reusedTree, genEntry{path: "n.txt", kind: KindFile, data: []byte("n\n")}))
	mustRef(t, w.r, "reused", reused)
	w.clock.Advance(25 * time.Hour)
	w.gc(t, GCOptions{})
	w.clock.Advance(25 * time.Hour)
	rep := w.gc(t, GCOptions{})
	for p := range lostPacks {
		if _, err := w.r.Backend.Stat(t.Context(), format.PackKey(p)); !errors.Is(err, remote.ErrNotFound) {
			t.Errorf("orphan pack %s of the lost push: %v, want collected (%+v)", p.Short(), err, rep)
		}
	}
	// The segments alone now locate the reused data.
	view, err := OpenRemoteOnly(t.Context(), w.r.Backend)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := view.Verify(t.Context(), reused, "reused", nil); err != nil || !rep.OK() {
		t.Fatalf("verify reused from segments alone: %v %+v", err, rep)
	}
	w.checkKept(t)
}

// GC on a remote reads the remote alone, and a store that cached the
// remote's index forgets the packs collected there.
func TestGCRemote(t *testing.T) {
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
		// History moves too: set the old target first.
		if ref == "moving" {
			if _, err := w.r.SetRefOn(ctx, mem, ref, *w.old); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := w.r.SetRefOn(ctx, mem, ref, *o); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.r.Pin(ctx, mem, "paper", w.pinned[0], PinOptions{}); err != nil {
		t.Fatal(err)
	}
	gp := w.garbagePacks(t)
	rep, err := w.r.GC(ctx, mem, GCOptions{Grace: NoGrace})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Freed.Packs != len(gp) {
		t.Fatalf("remote gc: %+v, want %d packs freed", rep, len(gp))
	}
	// Nothing local was touched.
	for p := range gp {
		if _, err := w.r.Backend.Stat(ctx, format.PackKey(p)); err != nil {
			t.Errorf("local pack %s: %v, want kept", p.Short(), err)
		}
	}
	view, err := OpenRemoteOnly(ctx, mem)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range append([]Object{*w.kept, *w.old, *w.moved}, w.pinned...) {
		if rep, err := view.Verify(ctx, &o, "x", nil); err != nil || !rep.OK() {
			t.Errorf("verify %s on the remote: %v %+v", o.Digest.Short(), err, rep)
		}
	}
	if _, err := view.Resolve(ctx, w.garbage.Digest.String()); !errors.Is(err, ErrNotFound) {
		t.Errorf("collected tree on the remote: %v, want ErrNotFound", err)
	}
}

// Many index segments (one a push) are merged into one by gc, so that a
// new reader needs one request for the index; everything still resolves
// from the segments alone, and a reader that listed a merged-away segment
// lists again.
func TestGCCompactsSegments(t *testing.T) {
	t.Parallel()
	r := newStoreForTest(t, 64<<10)
	ctx := t.Context()
	var objs []*Object
	for i := range gc.CompactAbove + 4 {
		_, o := pushTree(t, r, []genEntry{{path: fmt.Sprintf("f%d.bin", i), kind: KindFile, data: pseudoRandom(150<<10, uint64(50+i))}})
		mustRef(t, r, fmt.Sprintf("ds/%d", i), o)
		objs = append(objs, o)
	}
	before := keys(t, r.Backend, format.SegmentPrefix)
	if len(before) <= gc.CompactAbove {
		t.Fatalf("%d segments, want more than %d", len(before), gc.CompactAbove)
	}
	// A reader that listed them all before the gc.
	late := &Repo{Backend: r.Backend, Index: index.NewMemory(), packs: newPackFiles(r.Backend)}
	if err := late.loadSegmentFrom(ctx, r.Backend, before[0]); err != nil {
		t.Fatal(err)
	}
	rep, err := r.GC(ctx, nil, GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	after := keys(t, r.Backend, format.SegmentPrefix)
	if len(after) != 1 || rep.Segments != len(before) {
		t.Fatalf("after gc: %d segments (%d rewritten), want 1 replacing %d", len(after), rep.Segments, len(before))
	}
	view, err := OpenRemoteOnly(ctx, r.Backend)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if rep, err := view.Verify(ctx, o, "x", nil); err != nil || !rep.OK() {
			t.Fatalf("verify %s from the merged segment: %v %+v", o.Digest.Short(), err, rep)
		}
	}
	// The late reader's next sync finds its segments gone and the merged one.
	if err := late.syncSegments(ctx, r.Backend, false, false); err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if rep, err := late.Verify(ctx, o, "x", nil); err != nil || !rep.OK() {
			t.Fatalf("verify %s after the late reader's sync: %v %+v", o.Digest.Short(), err, rep)
		}
	}
	// A listing taken before the gc, read after it: the vanished segments
	// are skipped and one more listing finds the merged one.
	stale := &Repo{Backend: &staleList{Backend: r.Backend, keys: before}, Index: index.NewMemory(), packs: newPackFiles(r.Backend)}
	if err := stale.syncSegments(ctx, stale.Backend, false, false); err != nil {
		t.Fatalf("sync from a stale listing: %v", err)
	}
	merged, _ := digest.ParseHex(strings.TrimPrefix(after[0], format.SegmentPrefix))
	if ok, _ := stale.Index.HasSegment(merged); !ok {
		t.Error("the merged segment was not loaded after the stale listing")
	}
}

// staleList lists index/ as it was once (keys), the first time only.
type staleList struct {
	remote.Backend
	keys []string
	used bool
}

func (s *staleList) List(ctx context.Context, prefix string, fn func(remote.ObjectInfo) error) error {
	if prefix != format.SegmentPrefix || s.used {
		return s.Backend.List(ctx, prefix, fn)
	}
	s.used = true
	for _, k := range s.keys {
		if err := fn(remote.ObjectInfo{Key: k}); err != nil {
			return err
		}
	}
	return nil
}

// gcRemoteWorld is a gcWorld uploaded to an in-memory remote, with its
// refs and pin set there and the garbage pushes unreferenced.
func gcRemoteWorld(t *testing.T) (*gcWorld, *remote.Mem) {
	t.Helper()
	w := newGCWorld(t)
	mem := remote.NewMem()
	ctx := t.Context()
	if _, err := w.r.Upload(ctx, mem, nil); err != nil {
		t.Fatal(err)
	}
	for name, o := range map[string]*Object{"data": w.kept, "moving": w.moved} {
		if _, err := w.r.SetRefOn(ctx, mem, name, *o); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.r.Pin(ctx, mem, "paper", w.pinned[0], PinOptions{}); err != nil {
		t.Fatal(err)
	}
	return w, mem
}

func verifyOn(t *testing.T, be remote.Backend, o *Object) {
	t.Helper()
	view, err := OpenRemoteOnly(t.Context(), be)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := view.Verify(t.Context(), o, "x", nil); err != nil || !rep.OK() {
		t.Fatalf("verify %s on %s alone: %v %+v", o.Digest.Short(), be.Location(), err, rep)
	}
}

// A whole sweep between a push's upload (which found the condemned packs
// on the remote and skipped them) and its ref: the guard finds the sweep's
// record and uploads again what was deleted, with its index segments.
func TestGCSweepDuringPushRemote(t *testing.T) {
	t.Parallel()
	w, mem := gcRemoteWorld(t)
	ctx := t.Context()
	w.clock.Advance(25 * time.Hour)
	if rep, err := w.r.GC(ctx, mem, GCOptions{}); err != nil || rep.Planned.Packs == 0 {
		t.Fatalf("mark: %v %+v", err, rep)
	}
	w.clock.Advance(25 * time.Hour)
	_, again := pushTree(t, w.r, append(w.trash, genEntry{path: "new.txt", kind: KindFile, data: []byte("new\n")}))
	if _, err := w.r.Upload(ctx, mem, nil); err != nil {
		t.Fatal(err)
	}
	if rep, err := w.r.GC(ctx, mem, GCOptions{}); err != nil || rep.Freed.Packs == 0 {
		t.Fatalf("sweep: %v %+v", err, rep)
	}
	if _, err := w.r.SetRefOn(ctx, mem, "reuse", *again); err != nil {
		t.Fatalf("SetRefOn: %v", err)
	}
	verifyOn(t, mem, again)
}

// The same on the local store, with the sweep run by another process: the
// push is told to run again, and then it stores the data anew.
func TestGCSweepDuringPushLocal(t *testing.T) {
	t.Parallel()
	w := newGCWorld(t)
	ctx := t.Context()
	w.clock.Advance(25 * time.Hour)
	w.gc(t, GCOptions{})
	w.clock.Advance(25 * time.Hour)
	tree := append(w.trash, genEntry{path: "new.txt", kind: KindFile, data: []byte("new\n")})
	_, again := pushTree(t, w.r, tree)
	other := &Repo{Backend: w.r.Backend, Index: index.NewMemory(), Clock: w.r.Clock, packs: newPackFiles(w.r.Backend), Dir: w.r.Dir}
	if rep, err := other.GC(ctx, nil, GCOptions{}); err != nil || rep.Freed.Packs == 0 {
		t.Fatalf("sweep by another process: %v %+v", err, rep)
	}
	if _, err := w.r.SetRef(ctx, "reuse", *again); !errors.Is(err, errCollected) {
		t.Fatalf("SetRef after the sweep: %v, want errCollected", err)
	}
	_, again = pushTree(t, w.r, tree)
	mustRef(t, w.r, "reuse", again)
	verifyOn(t, w.r.Backend, again)
}

// A sweep killed after its deletions, before it removed the segments it
// replaced: the gc that resumes it replaces them, so no segment names a
// deleted pack and a new reader cannot dedup against one.
func TestGCResumedSweepReplacesSegments(t *testing.T) {
	t.Parallel()
	w := newGCWorld(t)
	ctx := t.Context()
	w.killedSweep(t)
	w.clock.Advance(11 * time.Minute)
	w.gc(t, GCOptions{})
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
}

// A sweep marker whose plan is gone (a gc died between the two deletions)
// is removed by the next gc, which can then merge segments; a guard does
// not wait on it.
func TestGCOrphanSweepMarker(t *testing.T) {
	t.Parallel()
	r := newStoreForTest(t, 64<<10)
	ctx := t.Context()
	var last *Object
	for i := range gc.CompactAbove + 2 {
		_, last = pushTree(t, r, []genEntry{{path: "f.bin", kind: KindFile, data: pseudoRandom(100<<10, uint64(70+i))}})
		mustRef(t, r, fmt.Sprintf("ds/%d", i), last)
	}
	id := "20200101T000000.000Z-deadbeef"
	if err := gc.PutJSON(ctx, r.Backend, gc.SweepPrefix+id, gc.SweepMarker{Plan: id, Started: time.Now()}); err != nil {
		t.Fatal(err)
	}
	rep, err := r.GC(ctx, nil, GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ks := keys(t, r.Backend, gc.SweepPrefix); len(ks) != 0 {
		t.Errorf("sweep markers left: %v", ks)
	}
	if n := len(keys(t, r.Backend, format.SegmentPrefix)); n != 1 || rep.Segments == 0 {
		t.Errorf("%d segments after gc (%d rewritten), want 1", n, rep.Segments)
	}
	c, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := r.afterSweep(c, r.Backend, []string{id}, map[digest.Digest]bool{}); err != nil {
		t.Errorf("afterSweep with no sweep under way: %v", err)
	}
}

// sweepHeld starts a gc whose sweep stops at step until release is
// called, and returns once the sweep is there; done receives its error.
func (w *gcWorld) sweepHeld(t *testing.T, opts GCOptions, step string) (done <-chan error, release func()) {
	t.Helper()
	at, held := make(chan struct{}), make(chan struct{})
	var once sync.Once
	opts.StepHook = func(s string) error {
		if s == step {
			once.Do(func() { close(at); <-held })
		}
		return nil
	}
	errc := make(chan error, 1)
	go func() { _, err := w.r.GC(t.Context(), nil, opts); errc <- err }()
	var releaseOnce sync.Once
	release = func() { releaseOnce.Do(func() { close(held) }) }
	t.Cleanup(release)
	select {
	case <-at:
	case err := <-errc:
		t.Fatalf("gc ended before %q: %v", step, err)
	}
	return errc, release
}

// tick waits until something waits on the world's clock (a sweep's
// renewal timer), then moves the clock on by d.
func (w *gcWorld) tick(t *testing.T, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := w.clock.BlockUntil(ctx, 1); err != nil {
		t.Fatalf("nothing waits on the clock: %v", err)
	}
	w.clock.Advance(d)
}

// A long sweep renews its claim: a second gc well past the lease still
// finds it at work and stops, instead of taking it over.
func TestGCSweepRenewsClaim(t *testing.T) {
	t.Parallel()
	w := newGCWorld(t)
	grace := 3 * time.Second // the lease is 3 s too: renewals every second
	w.clock.Advance(25 * time.Hour)
	if rep := w.gc(t, GCOptions{Grace: grace}); rep.Planned.Packs == 0 {
		t.Fatalf("mark: %+v", rep)
	}
	w.clock.Advance(10 * time.Second)
	first, release := w.sweepHeld(t, GCOptions{Grace: grace}, "segment written")
	for range 5 {
		w.tick(t, time.Second)
	}
	w.tick(t, 0) // the last renewal has landed
	if _, err := w.r.GC(t.Context(), nil, GCOptions{Grace: grace}); !errors.Is(err, ErrGCBusy) {
		t.Errorf("second gc 5 s into a sweep with a 3 s lease: %v, want ErrGCBusy", err)
	}
	release()
	if err := <-first; err != nil {
		t.Fatalf("first gc: %v", err)
	}
	if ks := keys(t, w.r.Backend, gc.SweepPrefix); len(ks) != 0 {
		t.Errorf("sweep markers left after the sweep: %v", ks)
	}
	w.checkKept(t)
}

// A gc whose claim another gc took over (its own looked dead) neither
// renews over the new owner's claim nor deletes it when it finishes, and
// stops with ErrGCBusy; the plan stays for the new owner.
func TestGCLostClaimIsLeftAlone(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		at   string // the step at which the claim is taken over
		// renew: whether a renewal comes due before the gc goes on
		renew bool
		// deletes: whether the first gc gets to delete packs
		deletes bool
	}{
		{name: "before a renewal", at: "segment written", renew: true, deletes: false},
		{name: "before the release", at: "segments deleted", renew: false, deletes: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newGCWorld(t)
			ctx := t.Context()
			grace := 3 * time.Second
			w.clock.Advance(25 * time.Hour)
			rep := w.gc(t, GCOptions{Grace: grace})
			if rep.Plan == "" {
				t.Fatalf("mark: %+v", rep)
			}
			id := strings.TrimPrefix(rep.Plan, gc.PlansPrefix)
			garbage := w.garbagePacks(t)
			w.clock.Advance(10 * time.Second)
			first, release := w.sweepHeld(t, GCOptions{Grace: grace}, tt.at)
			// The other gc's claim, as a takeover writes it.
			key := gc.SweepPrefix + id
			if err := putRecord(ctx, w.r.Backend, key, gc.SweepMarker{Plan: id, Started: w.clock.Now(), Owner: "the other gc"}); err != nil {
				t.Fatal(err)
			}
			theirs, err := remote.ReadAll(ctx, w.r.Backend, key)
			if err != nil {
				t.Fatal(err)
			}
			if tt.renew {
				w.tick(t, time.Second) // a renewal comes due
				w.tick(t, 0)           // and has been tried
			}
			release()
			if err := <-first; !errors.Is(err, ErrGCBusy) {
				t.Fatalf("gc whose claim was taken over: %v, want ErrGCBusy", err)
			}
			got, err := remote.ReadAll(ctx, w.r.Backend, key)
			if err != nil {
				t.Fatalf("the other gc's claim: %v", err)
			}
			if string(got) != string(theirs) {
				t.Errorf("the other gc's claim was rewritten:\ngot  %s\nwant %s", got, theirs)
			}
			if _, err := w.r.Backend.Stat(ctx, rep.Plan); err != nil {
				t.Errorf("plan %s: %v, want it left for the other gc", rep.Plan, err)
			}
			left := 0
			for p := range garbage {
				if _, err := w.r.Backend.Stat(ctx, format.PackKey(p)); err == nil {
					left++
				}
			}
			if deleted := left < len(garbage); deleted != tt.deletes {
				t.Errorf("%d of %d garbage packs left, want deletions %v", left, len(garbage), tt.deletes)
			}
			w.checkKept(t)
		})
	}
}

// Two gcs taking over the same dead sweep claim: the takeover is
// conditional on the version of the claim each read, so the one that
// comes second finds the claim changed and stops (ErrGCBusy) instead of
// sweeping beside the other.
func TestGCTakeoverIsConditional(t *testing.T) {
	t.Parallel()
	w, mem := gcRemoteWorld(t)
	ctx := t.Context()
	w.clock.Advance(25 * time.Hour)
	if rep, err := w.r.GC(ctx, mem, GCOptions{}); err != nil || rep.Plan == "" {
		t.Fatalf("mark: %v %+v", err, rep)
	}
	st, err := gc.ReadState(ctx, mem)
	if err != nil || len(st.Plans) != 1 {
		t.Fatalf("plans: %v %d", err, len(st.Plans))
	}
	key := gc.SweepPrefix + st.Plans[0].ID
	// A gc that died an hour into its sweep left its claim.
	if err := gc.PutJSON(ctx, mem, key, gc.SweepMarker{Plan: st.Plans[0].ID, Started: w.clock.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	w.clock.Advance(25 * time.Hour)
	fault := remote.NewFault(mem)
	puts := 0
	fault.FailPut = func(k string) error {
		if k != key {
			return nil
		}
		if puts++; puts == 2 {
			// Between this gc's read of the dead claim and its takeover,
			// another gc takes it over.
			if err := putRecord(ctx, mem, key, gc.SweepMarker{Plan: st.Plans[0].ID, Started: w.clock.Now()}); err != nil {
				t.Fatal(err)
			}
		}
		return nil
	}
	if _, err := w.r.GC(ctx, fault, GCOptions{}); !errors.Is(err, ErrGCBusy) {
		t.Fatalf("gc taking over a claim another gc took over meanwhile: %v, want ErrGCBusy", err)
	}
}

// putRecord writes v at key as a gc record, over whatever is there.
func putRecord(ctx context.Context, be remote.Backend, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return be.Put(ctx, key, bytes.NewReader(b), int64(len(b)), remote.PutOptions{})
}

// TestForgetRecordsRetriesAnUnreadRecord: a gc record that could not be
// read (a network error) is not marked seen: the next look reads it and
// forgets the packs it lists.
func TestForgetRecordsRetriesAnUnreadRecord(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	r := newStoreForTest(t, 64<<10)
	_, obj := pushTree(t, r, []genEntry{{path: "a.bin", kind: KindFile, data: pseudoRandom(100<<10, 3)}})
	b, ok, err := r.Index.Blob(obj.Digest)
	if err != nil || !ok {
		t.Fatalf("index lacks the tree: %v", err)
	}
	key := gc.DonePrefix + "20260101T000000.000Z-00000000"
	if err := gc.PutJSON(ctx, r.Backend, key, &gc.Done{Packs: []digest.Digest{b.Pack}}); err != nil {
		t.Fatal(err)
	}
	flaky := remote.NewFault(r.Backend)
	down := errors.New("network down")
	flaky.FailGet = func(k string) error {
		if k == key {
			return down
		}
		return nil
	}
	if _, err := r.forgetRecords(ctx, flaky, []string{key}); !errors.Is(err, down) {
		t.Fatalf("forgetRecords with the record unreadable: %v, want the read error", err)
	}
	mark := digest.Of([]byte(flaky.Location() + "\x00" + key))
	if seen, _ := r.Index.HasRecord(mark); seen {
		t.Fatal("the unread record was marked seen: it would never be read again")
	}
	flaky.FailGet = nil
	swept, err := r.forgetRecords(ctx, flaky, []string{key})
	if err != nil || !swept {
		t.Fatalf("forgetRecords once readable: swept %v, %v", swept, err)
	}
	if seen, _ := r.Index.HasRecord(mark); !seen {
		t.Error("the record, read, is not marked seen")
	}
}

// TestGCRewriteVouchesOnlyForCheckedOrphans: a sweep that rewrites the
// index segments names a live orphan pack's blobs (a killed push's, that
// a ref now needs) only once they are read and checked: a chunk that rots
// in the orphan is named by no segment afterwards.
func TestGCRewriteVouchesOnlyForCheckedOrphans(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	r := newStoreForTest(t, 64<<10)
	src := filepath.Join(t.TempDir(), "src")
	// One chunk (under the chunker's minimum), so no chunk list is lost
	// with the killed push's segment.
	writeGenTree(t, src, []genEntry{{path: "model.bin", kind: KindFile, data: pseudoRandom(12<<10, 21)}})
	pushKilledBeforeSegment(t, r, src)
	orphans := storeFiles(t, r.Dir, format.PackPrefix)
	for _, p := range orphans {
		flipAt(t, p, 1000)
	}
	h, err := Hash(ctx, nil, []string{src}, PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.SetRef(ctx, "data", Object{Digest: h.Digest, Kind: h.Kind, Size: h.Size}); err != nil {
		t.Fatal(err)
	}
	pushTree(t, r, []genEntry{{path: "junk.bin", kind: KindFile, data: pseudoRandom(100<<10, 22)}}) // nothing keeps it
	rep, err := r.GC(ctx, nil, GCOptions{Grace: NoGrace})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Freed.Packs == 0 || rep.Segments == 0 {
		t.Fatalf("gc freed %d packs and rewrote %d segments, want a rewrite", rep.Freed.Packs, rep.Segments)
	}
	for _, key := range keys(t, r.Backend, format.SegmentPrefix) {
		seg, _, err := getSegment(ctx, r.Backend, key)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range seg.Blobs {
			data, err := remote.ReadAll(ctx, r.Backend, format.PackKey(b.Pack))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := format.DecodeChunk(b, data[b.Offset:b.Offset+uint64(b.Length)], nil); err != nil {
				t.Errorf("segment %s names blob %s, which does not decode: %v", key, b.ID.Short(), err)
			}
		}
	}
}

// A collection that carries out a plan reads the index segments once:
// its sweep marks, rewrites only the segments that name a condemned pack
// (the mark said which) and plans anew from the same mark. So what a
// sweep costs beyond the mark follows the garbage, not the index.
func TestGCSweepCostFollowsGarbage(t *testing.T) {
	t.Parallel()
	w := newGCWorld(t)
	ctx := t.Context()
	mem := remote.NewMemClock(w.clock)
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
	if _, err := w.r.Pin(ctx, mem, "paper", w.pinned[0], PinOptions{}); err != nil {
		t.Fatal(err)
	}
	segs := len(keys(t, mem, format.SegmentPrefix))
	if segs < 5 || segs > gc.CompactAbove {
		t.Fatalf("%d segments: the test wants several, and no compaction", segs)
	}
	w.clock.Advance(2 * time.Hour)
	c := newCounting(mem)
	rep, err := w.r.GC(ctx, c, GCOptions{Grace: time.Hour})
	if err != nil || rep.Planned.Packs == 0 {
		t.Fatalf("gc: %+v %v, want a plan", rep, err)
	}
	planned := rep.Planned.Packs
	if got := c.reqs["get index"]; got != segs {
		t.Errorf("the planning collection read %d segments of %d", got, segs)
	}
	w.clock.Advance(2 * time.Hour)
	c.reset()
	rep, err = w.r.GC(ctx, c, GCOptions{Grace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	// The remote keeps no history of "moving": its old target is garbage
	// too. Each garbage pack came with a push of its own, in a segment
	// of its own.
	if rep.Freed.Packs != planned || rep.Segments != planned {
		t.Fatalf("sweep: %+v, want %d packs freed and the %[2]d segments that named them rewritten", rep, planned)
	}
	// The mark reads every segment; the rewrite only those.
	if got := c.reqs["get index"]; got != segs+planned {
		t.Errorf("the sweeping collection read segments %d times; want %d (a mark, and the %d rewritten)", got, segs+planned, planned)
	}
	view, err := OpenRemoteOnly(ctx, mem)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range append([]Object{*w.kept, *w.moved}, w.pinned...) {
		if rep, err := view.Verify(ctx, &o, "x", nil); err != nil || !rep.OK() {
			t.Errorf("verify %s after the sweep: %v %+v", o.Digest.Short(), err, rep)
		}
	}
}

// A sweep that died after deleting its packs but before deleting the
// segments that named them leaves those segments naming packs that are
// gone. When a later push stores the same chunks again, in a new pack,
// the mark must find them there: were it to take a gone pack's location
// for theirs, the new pack would look unreferenced and be condemned.
func TestGCMarkSkipsGonePacks(t *testing.T) {
	t.Parallel()
	w := newGCWorld(t)
	ctx := t.Context()
	gone := w.garbagePacks(t)
	w.killedSweep(t)
	for p := range gone {
		if _, err := w.r.Backend.Stat(ctx, format.PackKey(p)); !errors.Is(err, remote.ErrNotFound) {
			t.Fatalf("pack %s: %v, want deleted by the killed sweep", p.Short(), err)
		}
	}
	// The garbage again, named this time: its chunks go into new packs.
	// As a new command would: the store opened again reads what the
	// killed sweep recorded it deleted.
	if err := w.r.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := Open(ctx, w.r.Dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	w.r, r.Clock = r, w.clock
	// A push that needs a pack of the killed sweep's plan would wait for
	// its claim to run out (or a gc to take it over); with the claim's
	// marker gone it leaves a keep marker instead. The segments stay as
	// the sweep left them.
	for _, k := range keys(t, w.r.Backend, gc.SweepPrefix) {
		if err := w.r.Backend.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	w.clock.Advance(11 * time.Minute)
	_, again := pushTree(t, w.r, w.trash)
	mustRef(t, w.r, "again", again)
	m, err := gcMark(ctx, w.r.Backend, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	stale := 0
	for _, packs := range m.segPacks {
		for _, p := range packs {
			if gone[p] {
				stale++
			}
		}
	}
	if stale == 0 {
		t.Fatal("no segment names a deleted pack: the sweep was not stopped where the test wants")
	}
	// Where the mark's view of the store finds the push's data: packs
	// that are there, and that the mark found live.
	held := map[digest.Digest]bool{}
	if err := m.view.closurePacks(ctx, again, held); err != nil {
		t.Fatal(err)
	}
	for p := range held {
		if _, there := m.packs[p]; !there {
			t.Errorf("the mark's view finds the push's data in pack %s, which is gone", p.Short())
		}
		if !m.live[p] {
			t.Errorf("pack %s holds the new push's data but the mark did not find it live", p.Short())
		}
	}
	// And gc, sweeping and planning, keeps it.
	w.gc(t, GCOptions{})
	view, err := OpenRemoteOnly(ctx, w.r.Backend)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := view.Verify(ctx, again, "again", nil); err != nil || !rep.OK() {
		t.Fatalf("verify the pushed-again tree after gc: %v %+v", err, rep)
	}
}
