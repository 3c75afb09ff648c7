package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/remote"
)

// TestHistoryRestoresFromTheBucketAlone writes five pushes in batches of
// two and three into a bucket, then reads it as a fresh machine does: each
// ref resolves there, and its sample file restores to the bytes listed.
func TestHistoryRestoresFromTheBucketAlone(t *testing.T) {
	ctx := context.Background()
	params, err := cas.NewChunkParams(cas.DefaultChunkAvg)
	if err != nil {
		t.Fatal(err)
	}
	bucket := remote.NewMem()
	o := options{work: t.TempDir(), seed: 7}
	var all []pushed
	for _, b := range [][2]int{{0, 2}, {2, 3}} {
		got, err := pushBatch(ctx, o, params, 0, bucket, b[0], b[1])
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, got...)
	}
	if len(all) != 5 {
		t.Fatalf("got %d pushes, want 5", len(all))
	}
	left, _ := os.ReadDir(o.work)
	if len(left) != 0 {
		t.Errorf("scratch directory holds %d entries after the batches, want none", len(left))
	}

	count := map[string]int{}
	err = bucket.List(ctx, "", func(oi remote.ObjectInfo) error {
		count[oi.Key[:strings.IndexByte(oi.Key, '/')]]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{"packs", "index", "refs"} {
		if count[prefix] != 5 {
			t.Errorf("bucket holds %d objects under %s/, want 5 (one a push): %v", count[prefix], prefix, count)
		}
	}

	fresh, err := cas.OpenRemoteOnly(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	for i, p := range all {
		if want := fmt.Sprintf("push-%05d", i); p.ref != want {
			t.Errorf("push %d has ref %s, want %s", i, p.ref, want)
		}
		obj, err := fresh.Resolve(ctx, p.ref+":"+samplePath)
		if err != nil {
			t.Fatalf("resolve %s:%s in the bucket: %v", p.ref, samplePath, err)
		}
		if obj.Digest != p.sample || obj.Size != sampleSize {
			t.Errorf("%s:%s is %s (%d bytes), want %s (%d bytes)", p.ref, samplePath, obj.Digest, obj.Size, p.sample, sampleSize)
		}
		out := filepath.Join(t.TempDir(), "sample.bin")
		if _, err := fresh.Restore(ctx, obj, out, cas.RestoreOptions{}); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if got := digest.Of(b); got != p.sample {
			t.Errorf("restored %s:%s has digest %s, want %s", p.ref, samplePath, got, p.sample)
		}
	}
	if all[0].sample == all[1].sample || all[0].obj.Digest == all[1].obj.Digest {
		t.Error("two pushes have the same sample or tree: each push must store new data")
	}
}

// TestWritePushIsDeterministic: the same seed and number give the same
// bytes, so a listed digest can be checked on any machine.
func TestWritePushIsDeterministic(t *testing.T) {
	a, err := writePush(t.TempDir(), 42, 1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := writePush(t.TempDir(), 42, 1)
	if err != nil {
		t.Fatal(err)
	}
	c, err := writePush(t.TempDir(), 42, 2)
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Errorf("push 42, seed 1 twice: %s then %s", a, b)
	}
	if a == c {
		t.Errorf("push 42 has the same sample %s with seeds 1 and 2", a)
	}
}

// TestFillerGrowsTheLookupIndex: filler entries land in the lookup index
// as valid runs, one run per shard once compacted, beside the entries of
// the pushes (all kept); the pushes still restore from the bucket alone.
func TestFillerGrowsTheLookupIndex(t *testing.T) {
	ctx := context.Background()
	bucket := remote.NewMem()
	if _, err := fill(ctx, bucket, 10, 10, 1, 2, io.Discard); err == nil || !strings.Contains(err.Error(), format.LookupFormatKey) {
		t.Fatalf("fill of a bucket without a lookup index: got %v, want an error naming %s", err, format.LookupFormatKey)
	}
	if keys := listKeys(t, bucket, ""); len(keys) != 0 {
		t.Fatalf("a refused fill left %d objects: %v", len(keys), keys)
	}

	params, err := cas.NewChunkParams(cas.DefaultChunkAvg)
	if err != nil {
		t.Fatal(err)
	}
	pushes, err := pushBatch(ctx, options{work: t.TempDir(), seed: 7}, params, 0, bucket, 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	before := lookupEntries(t, bucket)
	if len(before) == 0 {
		t.Fatal("two pushes left no lookup entries")
	}
	runsBefore := len(runKeys(t, bucket))

	const n, batch = 5000, 2000
	st, err := fill(ctx, bucket, n, batch, 1, 4, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	perShard := map[string]int{}
	runsAfter := 0
	for _, k := range runKeys(t, bucket) {
		perShard[k[len(format.LookupPrefix):len(format.LookupPrefix)+format.LookupShardDigits]]++
		runsAfter++
	}
	for s, c := range perShard {
		if c != 1 {
			t.Errorf("shard %s holds %d runs after the compaction, want 1", s, c)
		}
	}
	// 5,000 entries over 4,096 shards: most shards get one batch's run, a
	// few two or three, which the compaction merges.
	if st.written.Runs <= n/batch || st.compacted.Runs == 0 ||
		runsBefore+st.written.Runs+st.compacted.Runs-st.compacted.Deleted != runsAfter {
		t.Errorf("%d runs before, fill wrote %d, compaction wrote %d and deleted %d: want the %d runs found after",
			runsBefore, st.written.Runs, st.compacted.Runs, st.compacted.Deleted, runsAfter)
	}

	after := lookupEntries(t, bucket)
	ids := map[digest.Digest]bool{}
	kept := 0
	for _, e := range after {
		if e.Segment != fillerSegment {
			kept++
			continue
		}
		if e.Kind != format.RunData || e.Blob.ID != e.ID || e.Blob.Pack != fillerPack || e.Blob.Length != fillerBlob ||
			e.Blob.RawLen != fillerBlob || e.Blob.Offset%fillerBlob != 0 || e.Blob.Offset >= fillerSlots*fillerBlob {
			t.Errorf("filler entry %+v: want a 1 MiB data blob in a slot of the filler pack", e)
		}
		ids[e.ID] = true
	}
	if len(ids) != n {
		t.Errorf("the lookup index holds %d distinct filler IDs, want %d", len(ids), n)
	}
	if kept != len(before) {
		t.Errorf("the pushes' entries: %d before the fill, %d after", len(before), kept)
	}
	if _, err := bucket.Stat(ctx, format.SegmentKey(fillerSegment)); !errors.Is(err, remote.ErrNotFound) {
		t.Errorf("stat of the filler segment: got %v, want not found", err)
	}
	if _, err := bucket.Stat(ctx, format.PackKey(fillerPack)); !errors.Is(err, remote.ErrNotFound) {
		t.Errorf("stat of the filler pack: got %v, want not found", err)
	}

	fresh, err := cas.OpenRemoteOnly(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	for _, p := range pushes {
		obj, err := fresh.Resolve(ctx, p.ref+":"+samplePath)
		if err != nil {
			t.Fatalf("resolve %s:%s after the fill: %v", p.ref, samplePath, err)
		}
		out := filepath.Join(t.TempDir(), "sample.bin")
		if _, err := fresh.Restore(ctx, obj, out, cas.RestoreOptions{}); err != nil {
			t.Fatalf("restore %s:%s after the fill: %v", p.ref, samplePath, err)
		}
		if b, err := os.ReadFile(out); err != nil || digest.Of(b) != p.sample {
			t.Errorf("restored %s:%s: %v, digest %s, want %s", p.ref, samplePath, err, digest.Of(b), p.sample)
		}
	}
}

// TestFillerIsDeterministic: the same seed writes the same runs, another
// seed other ones.
func TestFillerIsDeterministic(t *testing.T) {
	ctx := context.Background()
	keys := func(seed uint64) []string {
		t.Helper()
		b := remote.NewMem()
		f := []byte(`{"version": 1, "shard_digits": 3}`)
		if err := b.Put(ctx, format.LookupFormatKey, bytes.NewReader(f), int64(len(f)), remote.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := fill(ctx, b, 3000, 1000, seed, 4, io.Discard); err != nil {
			t.Fatal(err)
		}
		return listKeys(t, b, format.LookupPrefix)
	}
	a, b, c := keys(1), keys(1), keys(2)
	if !slices.Equal(a, b) {
		t.Errorf("seed 1 twice gave different runs: %d keys, then %d", len(a), len(b))
	}
	if slices.Equal(a, c) {
		t.Error("seeds 1 and 2 gave the same runs")
	}
}

// listKeys lists the keys of b under prefix, sorted.
func listKeys(t *testing.T, b remote.Backend, prefix string) []string {
	t.Helper()
	var keys []string
	err := b.List(context.Background(), prefix, func(oi remote.ObjectInfo) error {
		keys = append(keys, oi.Key)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	return keys
}

// lookupEntries decodes every run of b's lookup index.
// runKeys lists the runs of b's lookup index: not its format key, not
// the markers of its wide area.
func runKeys(t *testing.T, b remote.Backend) []string {
	t.Helper()
	var runs []string
	for _, k := range listKeys(t, b, format.LookupPrefix) {
		if _, err := format.RunIDFromKey(k); err == nil {
			runs = append(runs, k)
		}
	}
	return runs
}

func lookupEntries(t *testing.T, b remote.Backend) []format.RunEntry {
	t.Helper()
	var all []format.RunEntry
	for _, k := range runKeys(t, b) {
		data, err := remote.ReadSmall(context.Background(), b, k)
		if err != nil {
			t.Fatal(err)
		}
		area := strings.Split(k, "/")[1]
		es, err := format.DecodeRunIn(area, data)
		if err != nil {
			t.Fatalf("run %s: %v", k, err)
		}
		all = append(all, es...)
	}
	return all
}
