package cas

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/cas/gc"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/remote"
)

// A gc killed after deleting packs and before deleting the segments that
// name them leaves segments that place chunks in packs that are gone; the
// index, rebuilt from them, may too. Pushing the data of a deleted pack
// again, under a name, must store it again and write the ref: not fail in
// the gc guard because the index places a chunk in the deleted pack, not
// wait for the dead gc's claim, not write a ref to data the store lacks.
// The ref then verifies and restores exactly, before and after a later gc
// finishes the sweep, and a push after that gc works too. The segments
// are named by their bytes, so whether the dead gc's segment is read
// before or after the push's depends on the data: several are tried.
func TestGCRepushAfterAKilledSweep(t *testing.T) {
	t.Parallel()
	for seed := range uint64(8) {
		for _, reopen := range []bool{false, true} {
			t.Run(fmt.Sprintf("seed%d/reopen=%v", seed, reopen), func(t *testing.T) {
				t.Parallel()
				repushAfterKilledSweep(t, seed, reopen)
			})
		}
	}
}

func repushAfterKilledSweep(t *testing.T, seed uint64, reopen bool) {
	ctx := t.Context()
	w := newGCWorld(t)
	src, lost := pushTree(t, w.r, []genEntry{
		{path: "lost/big.bin", kind: KindFile, data: pseudoRandom(300<<10, 200+seed)},
		{path: "lost/small.txt", kind: KindFile, data: fmt.Appendf(nil, "lost %d\n", seed)},
		{path: "top.bin", kind: KindFile, data: pseudoRandom(90<<10, 300+seed)},
	})
	want := snapshotDir(t, src)
	lostPacks := map[digest.Digest]bool{}
	if err := w.r.closurePacks(ctx, lost, lostPacks); err != nil {
		t.Fatal(err)
	}

	// Plan, then sweep and kill the sweep once its packs are deleted,
	// before the segments naming them are.
	w.killedSweep(t)
	gone := 0
	for p := range lostPacks {
		if _, err := w.r.Backend.Stat(ctx, format.PackKey(p)); errors.Is(err, remote.ErrNotFound) {
			gone++
		}
	}
	if gone == 0 {
		t.Fatalf("the killed gc deleted none of the %d packs of the pushed data", len(lostPacks))
	}
	if len(keys(t, w.r.Backend, gc.SweepPrefix)) != 1 {
		t.Fatal("the killed gc left no sweep claim")
	}
	if reopen {
		// As a new command would.
		if err := w.r.Close(); err != nil {
			t.Fatal(err)
		}
		r, err := Open(ctx, w.r.Dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		w.r, r.Clock = r, w.clock
	}

	// The clock is fake: a push that waited would never end.
	push := func(ref string) (*Object, error) {
		t.Helper()
		type result struct {
			res *PushResult
			err error
		}
		done := make(chan result, 1)
		go func() {
			res, err := w.r.Push(ctx, []string{src}, PushOptions{Ref: ref})
			done <- result{res, err}
		}()
		var got result
		select {
		case got = <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("push --name %s still running after 20s (waiting for the dead gc?)", ref)
		}
		if got.err != nil {
			return nil, got.err
		}
		if got.res.Digest != lost.Digest {
			t.Fatalf("push --name %s: digest %s, want %s", ref, got.res.Digest.Short(), lost.Digest.Short())
		}
		return &Object{Digest: got.res.Digest, Kind: got.res.Kind, Size: got.res.Bytes}, nil
	}
	check := func(when string, v *Repo, ref string, obj *Object) {
		t.Helper()
		stored, err := v.GetRef(ctx, ref)
		if err != nil || stored.Target != obj.Digest {
			t.Fatalf("%s: ref %s: %+v, %v; want it to name %s", when, ref, stored, err, obj.Digest.Short())
		}
		if rep, err := v.Verify(ctx, obj, ref, nil); err != nil || !rep.OK() {
			t.Fatalf("%s: verify %s: %v %+v", when, ref, err, rep)
		}
		dest := filepath.Join(t.TempDir(), "out")
		if _, err := v.Restore(ctx, obj, dest, RestoreOptions{}); err != nil {
			t.Fatalf("%s: restore %s: %v", when, ref, err)
		}
		compareSnapshots(t, snapshotDir(t, dest), want)
	}
	alone := func() *Repo {
		t.Helper()
		v, err := OpenRemoteOnly(ctx, w.r.Backend)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	// Once the dead gc's claim has run out (within it, a push needing
	// what the sweep may delete waits for it).
	w.clock.Advance(gc.SweepLease(DefaultGrace) + time.Minute)
	again, err := push("again")
	if err != nil {
		// Packs are named by their bytes: the push may have written a
		// pack of the deleted name again, which the dead gc's plan
		// condemns. Then, and only then, it may stop and ask for the gc
		// to be finished, writing no ref.
		back := false
		for p := range lostPacks {
			if _, err := w.r.Backend.Stat(ctx, format.PackKey(p)); err == nil {
				back = true
			}
		}
		if !back || !errors.Is(err, ErrGCBusy) || !strings.Contains(err.Error(), "run gc") {
			t.Fatalf("push --name again of the data the killed gc deleted: %v", err)
		}
		if _, err := w.r.GetRef(ctx, "again"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a push that stopped wrote its ref: %v", err)
		}
	} else {
		check("pushed again before gc", w.r, "again", again)
		check("pushed again before gc, the store alone", alone(), "again", again)
		// The index rebuilt from the segments, the dead gc's included
		// (a new command whose index is damaged or stale does so): a
		// ref to the same data is guarded without the deleted pack.
		if _, _, err := w.r.RebuildIndex(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := w.r.SetRef(ctx, "again-rebuilt", *again); err != nil {
			t.Fatalf("ref to the data pushed again, the index rebuilt: %v", err)
		}
		check("ref after a rebuild", w.r, "again-rebuilt", again)
	}

	// A gc finishes the killed sweep and keeps what the push stored.
	plans := keys(t, w.r.Backend, gc.PlansPrefix)
	w.gc(t, GCOptions{})
	if ks := keys(t, w.r.Backend, gc.SweepPrefix); len(ks) != 0 {
		t.Errorf("claims left by the gc that finished the sweep: %v", ks)
	}
	for _, k := range plans {
		if _, err := w.r.Backend.Stat(ctx, k); !errors.Is(err, remote.ErrNotFound) {
			t.Errorf("plan %s of the killed sweep after gc: %v, want it carried out", k, err)
		}
	}
	w.checkKept(t)
	if again != nil {
		check("after gc", w.r, "again", again)
		check("after gc, the store alone", alone(), "again", again)
	}

	third, err := push("third")
	if err != nil {
		t.Fatalf("push --name third after gc: %v", err)
	}
	check("pushed after gc", w.r, "third", third)
	check("pushed after gc, the store alone", alone(), "third", third)
	if _, _, err := w.r.RebuildIndex(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := w.r.SetRef(ctx, "third-rebuilt", *third); err != nil {
		t.Fatalf("ref to the data pushed after gc, the index rebuilt: %v", err)
	}
	check("ref after gc and a rebuild", w.r, "third-rebuilt", third)
}
