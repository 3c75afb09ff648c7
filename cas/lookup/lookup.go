package lookup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/internal/par"
	"github.com/cas-ml/cas/remote"
)

// FromSegment returns the entries of segment seg (named id): one per
// blob, one per multi-chunk file.
func FromSegment(id digest.Digest, seg *format.Segment) []format.RunEntry {
	es := make([]format.RunEntry, 0, len(seg.Blobs)+len(seg.Files))
	for _, b := range seg.Blobs {
		es = append(es, format.RunEntry{ID: b.ID, Kind: b.Type, Segment: id, Blob: b})
	}
	for f, chunks := range seg.Files {
		es = append(es, format.RunEntry{ID: f, Kind: format.RunFile, Segment: id, Chunks: chunks})
	}
	return es
}

// Written says what Write or Compact did.
type Written struct {
	Runs    int   // runs written
	Bytes   int64 // their bytes
	Read    int64 // bytes of runs read (compaction)
	Deleted int   // runs deleted (compaction)
}

func (w *Written) add(o Written) {
	w.Runs += o.Runs
	w.Bytes += o.Bytes
	w.Read += o.Read
	w.Deleted += o.Deleted
}

// Write writes entries as one run per shard they fall in, several at
// once, and returns the shards written. A run is named by the BLAKE3 of
// its bytes and written only if absent: writing the same entries twice
// is harmless.
func Write(ctx context.Context, be remote.Backend, entries []format.RunEntry, conc int) ([]string, Written, error) {
	byShard := map[string][]format.RunEntry{}
	for _, e := range entries {
		s := format.LookupShard(e.ID)
		byShard[s] = append(byShard[s], e)
	}
	shards := slices.Sorted(func(yield func(string) bool) {
		for s := range byShard {
			if !yield(s) {
				return
			}
		}
	})
	var mu sync.Mutex
	var w Written
	err := par.ForEach(ctx, shards, conc, func(ctx context.Context, s string) error {
		_, n, err := putRun(ctx, be, s, byShard[s])
		mu.Lock()
		defer mu.Unlock()
		if err == nil {
			w.Runs++
			w.Bytes += n
		}
		return err
	})
	return shards, w, err
}

// putRun writes a run of entries into shard and returns its key and size.
func putRun(ctx context.Context, be remote.Backend, shard string, es []format.RunEntry) (string, int64, error) {
	data, err := format.EncodeRun(es)
	if err != nil {
		return "", 0, err
	}
	key := format.RunKey(shard, digest.Of(data))
	err = be.Put(ctx, key, bytes.NewReader(data), int64(len(data)), remote.PutOptions{IfNoneMatch: true})
	if err != nil && !errors.Is(err, remote.ErrExists) {
		return "", 0, fmt.Errorf("write lookup run %s: %w", key, err)
	}
	return key, int64(len(data)), nil
}

// run is one listed run of a shard.
type run struct {
	key  string
	size int64
}

// listShard lists the runs of shard, largest first (then by key).
func listShard(ctx context.Context, be remote.Backend, shard string) ([]run, error) {
	var runs []run
	err := be.List(ctx, format.LookupShardPrefix(shard), func(oi remote.ObjectInfo) error {
		if _, err := format.RunIDFromKey(oi.Key); err == nil {
			runs = append(runs, run{oi.Key, oi.Size})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list lookup shard %s: %w", shard, err)
	}
	sort.SliceStable(runs, func(i, j int) bool {
		if runs[i].size != runs[j].size {
			return runs[i].size > runs[j].size
		}
		return runs[i].key < runs[j].key
	})
	return runs, nil
}

// Policy bounds what a compaction of one shard does.
type Policy struct {
	// Budget is how many bytes of runs it may read (0: no limit).
	Budget int64
}

// Compact merges the runs of shards so that each keeps at most two: its
// largest run (the base) and one merged from the rest; the base joins
// the merge too when the rest has grown to a quarter of it, or the base
// is small, and the budget allows. The merged run is written before the
// runs it replaces are deleted, so an entry is in some run at every
// moment: a compaction killed half-way, or two at once, leave
// duplicates (which the next compaction drops), never a loss.
func Compact(ctx context.Context, be remote.Backend, shards []string, conc int, pol Policy) (Written, error) {
	var mu sync.Mutex
	var total Written
	left := pol.Budget
	err := par.ForEach(ctx, shards, conc, func(ctx context.Context, s string) error {
		runs, err := listShard(ctx, be, s)
		if err != nil {
			return err
		}
		merge := pick(runs)
		if len(merge) < 2 {
			return nil
		}
		var cost int64
		for _, r := range merge {
			cost += r.size
		}
		mu.Lock()
		if pol.Budget > 0 && cost > left && len(merge) == len(runs) {
			merge = merge[1:] // the base does not fit: merge the rest only
			cost -= runs[0].size
		}
		ok := pol.Budget == 0 || cost <= left
		if ok {
			left -= cost
		}
		mu.Unlock()
		if !ok || len(merge) < 2 {
			return nil
		}
		w, err := mergeRuns(ctx, be, s, merge, nil)
		mu.Lock()
		total.add(w)
		mu.Unlock()
		return err
	})
	return total, err
}

// Purge rewrites the runs of shards without the entries of blobs stored
// in packs of gone (deleted by a gc), merging each shard into one run: the
// merged run is written before the runs it replaces are deleted, as in a
// compaction. A compaction that read a run before and writes after may
// bring such entries back: readers take entries as hints, and a pack that
// is gone as a reason to look elsewhere, so that is slower, never wrong.
func Purge(ctx context.Context, be remote.Backend, shards []string, gone map[digest.Digest]bool, conc int) (Written, error) {
	var mu sync.Mutex
	var total Written
	drop := func(e format.RunEntry) bool { return e.Kind != format.RunFile && gone[e.Blob.Pack] }
	err := par.ForEach(ctx, shards, conc, func(ctx context.Context, s string) error {
		runs, err := listShard(ctx, be, s)
		if err != nil {
			return err
		}
		w, err := mergeRuns(ctx, be, s, runs, drop)
		mu.Lock()
		total.add(w)
		mu.Unlock()
		return err
	})
	return total, err
}

// smallBase is a base run small enough to be rewritten with any merge.
const smallBase = 64 << 10

// pick returns the runs of one shard (largest first) to merge.
func pick(runs []run) []run {
	if len(runs) < 2 {
		return nil
	}
	var rest int64
	for _, r := range runs[1:] {
		rest += r.size
	}
	if runs[0].size <= smallBase || rest >= runs[0].size/4 {
		return runs
	}
	if len(runs) < 3 {
		return nil
	}
	return runs[1:]
}

// mergeRuns writes one run holding every entry of runs (but those drop
// reports, if set), then deletes them. A run gone meanwhile (another
// compaction merged it) is left out: its entries are in that compaction's
// run.
func mergeRuns(ctx context.Context, be remote.Backend, shard string, runs []run, drop func(format.RunEntry) bool) (Written, error) {
	var w Written
	var all []format.RunEntry
	var used []run
	for _, r := range runs {
		data, err := readRange(ctx, be, r.key, 0, r.size)
		if errors.Is(err, remote.ErrNotFound) {
			continue
		}
		if err != nil {
			return w, fmt.Errorf("read lookup run %s: %w", r.key, err)
		}
		w.Read += int64(len(data))
		es, err := decodeNamed(r.key, data)
		if err != nil {
			// A damaged run is left where it is, for verify to name; its
			// entries are in the segments, which stay the truth.
			continue
		}
		for _, e := range es {
			if drop == nil || !drop(e) {
				all = append(all, e)
			}
		}
		used = append(used, r)
	}
	if len(used) < 2 && (drop == nil || len(used) == 0) {
		return w, nil
	}
	newKey := ""
	if len(all) > 0 {
		k, n, err := putRun(ctx, be, shard, all)
		if err != nil {
			return w, err
		}
		newKey = k
		w.Runs, w.Bytes = 1, n
	}
	for _, r := range used {
		if r.key == newKey {
			continue // the merge gave back a run that was there
		}
		if err := be.Delete(ctx, r.key); err != nil && !errors.Is(err, remote.ErrNotFound) {
			return w, fmt.Errorf("delete merged lookup run %s: %w", r.key, err)
		}
		w.Deleted++
	}
	return w, nil
}

// decodeNamed checks a run against the name its key ends with, then
// decodes it.
func decodeNamed(key string, data []byte) ([]format.RunEntry, error) {
	id, err := format.RunIDFromKey(key)
	if err != nil || digest.Of(data) != id {
		return nil, fmt.Errorf("lookup run %s: %w: does not match its name", key, format.ErrBadRun)
	}
	return format.DecodeRun(data)
}

// readRange reads n bytes at off of key (n < 0: from off to the end).
// What arrives is read as it comes, up to n bytes, never into a buffer
// sized by what a listing or a footer claims: both are the bucket's word.
func readRange(ctx context.Context, be remote.Backend, key string, off, n int64) ([]byte, error) {
	rc, err := be.Get(ctx, key, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, n+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	if int64(len(data)) != n {
		return nil, fmt.Errorf("read %s: %w: %d bytes where %d were asked for", key, format.ErrBadRun, len(data), n)
	}
	return data, nil
}
