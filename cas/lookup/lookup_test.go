package lookup

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
	"github.com/cas-ml/cas/remote"
	"github.com/cas-ml/cas/remote/remotetest"
)

// entries returns n blob entries of "push" p, with IDs all over the shards.
func entries(p, n int) []format.RunEntry {
	seg := digest.Of([]byte(fmt.Sprint("segment", p)))
	pack := digest.Of([]byte(fmt.Sprint("pack", p)))
	es := make([]format.RunEntry, n)
	for i := range es {
		id := digest.Of(binary.LittleEndian.AppendUint64(nil, uint64(p)<<32|uint64(i)))
		es[i] = format.RunEntry{ID: id, Kind: format.RunData, Segment: seg,
			Blob: index.Blob{ID: id, Pack: pack, Offset: uint64(8 + 64*i), Length: 64, RawLen: 64}}
	}
	return es
}

func runsIn(t *testing.T, be remote.Backend) map[string]int {
	t.Helper()
	n := map[string]int{}
	err := be.List(context.Background(), format.LookupPrefix, func(oi remote.ObjectInfo) error {
		if parts := strings.Split(oi.Key, "/"); len(parts) == 3 {
			n[parts[1]]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// checkAll looks every entry up through a fresh Reader.
func checkAll(t *testing.T, be remote.Backend, want []format.RunEntry) {
	t.Helper()
	ids := make([]digest.Digest, len(want))
	for i, e := range want {
		ids[i] = e.ID
	}
	got, err := NewReader(be, 8).Lookup(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range want {
		es := got[e.ID]
		if len(es) == 0 || es[0].Blob != e.Blob || es[0].Segment != e.Segment {
			t.Fatalf("entry %s: got %+v, want %+v", e.ID.Short(), es, e)
		}
	}
}

func TestWriteLookupCompact(t *testing.T) {
	ctx := context.Background()
	be := remote.NewMem()
	var all []format.RunEntry
	for p := range 12 {
		es := entries(p, 300)
		all = append(all, es...)
		if _, _, err := Write(ctx, be, es, 4, Layout{}); err != nil {
			t.Fatal(err)
		}
	}
	checkAll(t, be, all)
	// Absent IDs come back absent.
	miss := digest.Of([]byte("absent"))
	got, err := NewReader(be, 4).Lookup(ctx, []digest.Digest{miss})
	if err != nil || len(got) != 0 {
		t.Fatalf("lookup of an absent ID: %v, %v", got, err)
	}
	var shards []string
	for s := range runsIn(t, be) {
		shards = append(shards, s)
	}
	w, err := Compact(ctx, be, shards, 4, Policy{})
	if err != nil {
		t.Fatal(err)
	}
	if w.Deleted == 0 {
		t.Fatal("compaction deleted no run")
	}
	for s, n := range runsIn(t, be) {
		if n > 2 {
			t.Fatalf("shard %s has %d runs after compaction", s, n)
		}
	}
	checkAll(t, be, all)
}

// Compactions and writers at once lose no entry: each merged run is
// written before the runs it replaces are deleted.
func TestConcurrentCompactionLosesNothing(t *testing.T) {
	ctx := context.Background()
	be := remote.NewMem()
	var mu sync.Mutex
	var all []format.RunEntry
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for p := range 10 {
				es := entries(100*w+p, 200)
				shards, _, err := Write(ctx, be, es, 2, Layout{})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				all = append(all, es...)
				mu.Unlock()
				if _, err := Compact(ctx, be, shards, 2, Policy{}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	checkAll(t, be, all)
}

// A lookup of one ID costs a listing of its shard and one or two reads
// per run, whatever else the index holds.
func TestLookupRequests(t *testing.T) {
	ctx := context.Background()
	for _, pushes := range []int{10, 200} {
		mem := remote.NewMem()
		var last []format.RunEntry
		for p := range pushes {
			last = entries(p, 50)
			shards, _, err := Write(ctx, mem, last, 4, Layout{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Compact(ctx, mem, shards, 4, Policy{}); err != nil {
				t.Fatal(err)
			}
		}
		f := remote.NewFault(mem)
		got, err := NewReader(f, 4).Lookup(ctx, []digest.Digest{last[7].ID})
		if err != nil || len(got) != 1 {
			t.Fatalf("lookup: %v %v", got, err)
		}
		runs := runsIn(t, mem)[format.LookupShard(last[7].ID)]
		reqs := f.Lists.Load() + f.Gets.Load()
		t.Logf("%d pushes: %d runs in the shard, %d requests", pushes, runs, reqs)
		if reqs > 1+2*int64(runs) || runs > 2 {
			t.Fatalf("%d pushes: %d requests for %d runs", pushes, reqs, runs)
		}
	}
}

// crashAfter makes every Put and Delete of f fail from the nth on, as if
// the process had been killed there; it reports whether it struck.
func crashAfter(f *remote.Fault, n int) *bool {
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
	return &struck
}

// A compaction killed at any write or delete leaves every entry findable,
// and a compaction run again finishes the work.
func TestCompactCrashPoints(t *testing.T) {
	ctx := context.Background()
	base := remote.NewMem()
	var all []format.RunEntry
	var shards []string
	for p := range 6 {
		es := entries(p, 40)
		for i := range es { // into four shards: several runs each
			es[i].ID[0], es[i].ID[1] = byte(i%4), es[i].ID[1]&0x0f
			es[i].Blob.ID = es[i].ID
		}
		all = append(all, es...)
		s, _, err := Write(ctx, base, es, 1, Layout{})
		if err != nil {
			t.Fatal(err)
		}
		shards = append(shards, s...)
	}
	slices.Sort(shards)
	shards = slices.Compact(shards)
	for n := 1; ; n++ {
		mem := remotetest.Clone(t, base)
		f := remote.NewFault(mem)
		struck := crashAfter(f, n)
		_, err := Compact(ctx, f, shards, 1, Policy{})
		if !*struck {
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("compaction: %d writes and deletes", n-1)
			break
		}
		checkAll(t, mem, all)
		if _, err := Compact(ctx, mem, shards, 1, Policy{}); err != nil {
			t.Fatalf("crash point %d: compaction again: %v", n, err)
		}
		checkAll(t, mem, all)
		for _, s := range shards {
			if k := runsIn(t, mem)[s]; k > 2 {
				t.Fatalf("crash point %d: shard %s has %d runs after compaction again", n, s, k)
			}
		}
	}
}

// A lookup index of version 2 keeps the entries of an upload of many in
// one wide run: a reader finds them there with no shard listed while the
// sharded marker is absent, and, once the wide area has grown to SplitAt,
// a compaction moves it into the shards (marker first), entry for entry,
// even when killed at any write and run again.
func TestWideRuns(t *testing.T) {
	ctx := context.Background()
	defer func(n int64) { splitAt = n }(splitAt)
	base := remote.NewMem()
	if err := MarkIndexed(ctx, base); err != nil {
		t.Fatal(err)
	}
	var all []format.RunEntry
	var size int64
	for p := range 3 {
		es := entries(p, WideMin+p)
		all = append(all, es...)
		shards, w, err := Write(ctx, base, es, 4, Layout{Wide: true, Mark: true})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(shards, []string{format.WideShard}) || w.Runs != 1 {
			t.Fatalf("push %d: wrote %d runs in %v, want one wide run", p, w.Runs, shards)
		}
		size += w.Bytes
	}
	if n := runsIn(t, base); len(n) != 1 || n[format.WideShard] != 3+1 { // 3 runs and the index marker
		t.Fatalf("runs by shard: %v, want 3 wide runs", n)
	}
	// Fewer than WideMin entries go to the shards, after the marker.
	few := remotetest.Clone(t, base)
	if _, _, err := Write(ctx, few, entries(9, 3), 4, Layout{Wide: true, Mark: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := few.Stat(ctx, format.LookupShardedMarker); err != nil {
		t.Fatalf("runs in shards without the sharded marker: %v", err)
	}

	f := remote.NewFault(base)
	rd := NewReader(f, 4)
	ids := []digest.Digest{all[5].ID, all[len(all)-1].ID}
	got, err := rd.Lookup(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if len(got[id]) != 1 || !got[id][0].Wide {
			t.Fatalf("lookup of %s: %+v", id.Short(), got[id])
		}
	}
	// One listing (the wide area), then per run its footer and a bucket.
	if l, g := f.Lists.Load(), f.Gets.Load(); l != 1 || g > 3*2 {
		t.Fatalf("%d listings and %d reads for two IDs in 3 wide runs", l, g)
	}
	checkAll(t, base, all)

	splitAt = size / 2 // the next compaction splits
	whole := remotetest.Clone(t, base)
	counted := remote.NewFault(whole)
	if _, err := Compact(ctx, counted, []string{format.WideShard}, 2, Policy{}); err != nil {
		t.Fatal(err)
	}
	runs := runsIn(t, whole)
	shardsOf := map[string]bool{format.WideShard: true}
	for _, e := range all {
		shardsOf[format.LookupShard(e.ID)] = true
	}
	if runs[format.WideShard] != 2 || len(runs) != len(shardsOf) { // the two markers left
		t.Fatalf("after the split: %d objects in the wide area, %d shards, want %d", runs[format.WideShard], len(runs)-1, len(shardsOf)-1)
	}
	checkAll(t, whole, all)
	total := int(counted.Puts.Load() + counted.Deletes.Load())
	// Killed at the marker, among the shard runs, at each delete.
	for _, n := range []int{1, 2, 3, total / 2, total - 3, total - 2, total - 1, total} {
		mem := remotetest.Clone(t, base)
		fm := remote.NewFault(mem)
		struck := crashAfter(fm, n)
		if _, err := Compact(ctx, fm, []string{format.WideShard}, 2, Policy{}); err == nil || !*struck {
			t.Fatalf("crash point %d of %d: compaction did not fail (%v)", n, total, err)
		}
		checkAll(t, mem, all)
		if _, err := Compact(ctx, mem, []string{format.WideShard}, 2, Policy{}); err != nil {
			t.Fatalf("crash point %d of %d: compaction again: %v", n, total, err)
		}
		checkAll(t, mem, all)
		if k := runsIn(t, mem)[format.WideShard]; k != 2 {
			t.Fatalf("crash point %d of %d: %d objects left in the wide area", n, total, k)
		}
	}
}
