package lookup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"sync"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/internal/par"
	"github.com/cas-ml/cas/remote"
)

// FromSegment returns the entries of segment seg (named id, of size
// bytes; 0 if not known): one per blob, one per multi-chunk file.
func FromSegment(id digest.Digest, size int64, seg *format.Segment) []format.RunEntry {
	es := make([]format.RunEntry, 0, len(seg.Blobs)+len(seg.Files))
	for _, b := range seg.Blobs {
		es = append(es, format.RunEntry{ID: b.ID, Kind: b.Type, Segment: id, SegmentSize: size, Blob: b})
	}
	for f, chunks := range seg.Files {
		es = append(es, format.RunEntry{ID: f, Kind: format.RunFile, Segment: id, SegmentSize: size, Chunks: chunks})
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

// Layout says how Write may lay entries out on a remote.
type Layout struct {
	// Wide lets Write put the entries of one call in a single run of the
	// wide area (format.WideShard) when there are WideMin to WideMax of
	// them: one object where a run per shard would be thousands. Only on
	// a remote whose lookup index is of version 2.
	Wide bool
	// Mark makes Write put format.LookupShardedMarker before the first
	// run of a shard it writes, for readers that list no shard without
	// it. Only where the lookup index is complete (format key written):
	// the marker tells readers to use it.
	Mark bool
}

const (
	// WideMin is the fewest entries Write puts in a wide run: fewer make
	// as few runs in the shards, which cost a reader less, and a bucket
	// of many small pushes (each its own upload) stays in the shards,
	// where a reader's requests do not depend on how many there were.
	WideMin = 1 << 7
	// WideMax is the most: more make runs in every shard, a few dozen
	// entries each.
	WideMax = 1 << 17
	// SplitAt is the size of the wide area at which a compaction moves it
	// into the shards: every reader reads each wide run's fan-out table
	// and a bucket of it for every lookup, so it stays small.
	SplitAt = 16 << 20
)

// splitAt is SplitAt, which tests lower.
var splitAt int64 = SplitAt

// maxRewrite bounds what one split of the wide area, or one purge of a
// shard, reads (neither heeds a compaction's budget): an honest wide area
// is at most SplitAt and a wide run or two, a shard's runs a few MiB. The
// listing is the bucket's word: runs past it are left as they are, their
// entries hints like any other.
const maxRewrite = 4 * SplitAt

// bounded returns those of runs (largest first) that fit, in order, in
// maxRewrite bytes.
func bounded(runs []run) []run {
	var out []run
	var n int64
	for _, r := range runs {
		if r.size <= maxRewrite-n {
			out = append(out, r)
			n += r.size
		}
	}
	return out
}

// Write writes entries as one run per shard they fall in, several at
// once, or, as lay allows, as one wide run; it returns the shards written
// (format.WideShard for the wide area). A run is named by the BLAKE3 of
// its bytes and written only if absent: writing the same entries twice
// is harmless.
func Write(ctx context.Context, be remote.Backend, entries []format.RunEntry, conc int, lay Layout) ([]string, Written, error) {
	if lay.Wide && len(entries) >= WideMin && len(entries) <= WideMax {
		_, n, err := putRun(ctx, be, format.WideShard, entries)
		if err != nil {
			return nil, Written{}, err
		}
		return []string{format.WideShard}, Written{Runs: 1, Bytes: n}, nil
	}
	return putShards(ctx, be, entries, conc, lay.Mark)
}

// putShards writes entries as a run in each shard they fall in, several
// at once, after the sharded marker if mark is set, and returns the
// shards written.
func putShards(ctx context.Context, be remote.Backend, entries []format.RunEntry, conc int, mark bool) ([]string, Written, error) {
	byShard := map[string][]format.RunEntry{}
	for _, e := range entries {
		s := format.LookupShard(e.ID)
		byShard[s] = append(byShard[s], e)
	}
	shards := slices.Sorted(maps.Keys(byShard))
	if mark && len(shards) > 0 {
		if err := MarkSharded(ctx, be); err != nil {
			return nil, Written{}, err
		}
	}
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

// MarkSharded writes format.LookupShardedMarker on be, if absent.
func MarkSharded(ctx context.Context, be remote.Backend) error {
	return putMarker(ctx, be, format.LookupShardedMarker)
}

// MarkIndexed writes format.LookupIndexMarker on be, if absent: to be
// written once format.LookupFormatKey is.
func MarkIndexed(ctx context.Context, be remote.Backend) error {
	return putMarker(ctx, be, format.LookupIndexMarker)
}

func putMarker(ctx context.Context, be remote.Backend, key string) error {
	err := be.Put(ctx, key, bytes.NewReader(nil), 0, remote.PutOptions{IfNoneMatch: true})
	if err != nil && !errors.Is(err, remote.ErrExists) {
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}

// putRun writes a run of entries into shard and returns its key and size.
func putRun(ctx context.Context, be remote.Backend, shard string, es []format.RunEntry) (string, int64, error) {
	data, err := format.EncodeRunIn(shard, es)
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
	sortRuns(runs)
	return runs, nil
}

// sortRuns sorts runs largest first, then by key.
func sortRuns(runs []run) {
	sort.SliceStable(runs, func(i, j int) bool {
		if runs[i].size != runs[j].size {
			return runs[i].size > runs[j].size
		}
		return runs[i].key < runs[j].key
	})
}

// listWide lists the runs of the wide area, largest first, and reports
// which of its markers it holds.
func listWide(ctx context.Context, be remote.Backend) (runs []run, indexed, sharded bool, err error) {
	err = be.List(ctx, format.LookupShardPrefix(format.WideShard), func(oi remote.ObjectInfo) error {
		switch oi.Key {
		case format.LookupIndexMarker:
			indexed = true
		case format.LookupShardedMarker:
			sharded = true
		default:
			if _, err := format.RunIDFromKey(oi.Key); err == nil {
				runs = append(runs, run{oi.Key, oi.Size})
			}
		}
		return nil
	})
	if err != nil {
		return nil, false, false, fmt.Errorf("list the lookup index's wide area: %w", err)
	}
	sortRuns(runs)
	return runs, indexed, sharded, nil
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
	// afford takes cost out of the budget if it allows.
	afford := func(cost int64) bool {
		mu.Lock()
		defer mu.Unlock()
		if pol.Budget > 0 && cost > left {
			return false
		}
		left -= cost
		return true
	}
	err := par.ForEach(ctx, shards, conc, func(ctx context.Context, s string) error {
		var runs []run
		var err error
		if s == format.WideShard {
			var sharded bool
			if runs, _, sharded, err = listWide(ctx, be); err != nil {
				return err
			}
			if len(runs) > 0 && (sharded || sizeOf(runs) >= splitAt) {
				w, err := splitWide(ctx, be, runs, conc)
				mu.Lock()
				total.add(w)
				mu.Unlock()
				return err
			}
		} else if runs, err = listShard(ctx, be, s); err != nil {
			return err
		}
		merge := pick(runs)
		if len(merge) < 2 {
			return nil
		}
		if !afford(sizeOf(merge)) {
			if len(merge) != len(runs) || len(merge) < 3 || !afford(sizeOf(merge[1:])) {
				return nil
			}
			merge = merge[1:] // the base does not fit: merge the rest only
		}
		w, err := mergeRuns(ctx, be, s, merge, nil)
		mu.Lock()
		total.add(w)
		mu.Unlock()
		return err
	})
	return total, err
}

func sizeOf(runs []run) (n int64) {
	for _, r := range runs {
		n += r.size
	}
	return n
}

// splitWide moves runs, the wide area, into the shards, whatever a budget
// says (the cost is that of the wide runs written since the last split):
// a compaction does once the wide area holds SplitAt bytes or more, or
// once runs are in shards (a reader then reads both areas, which costs it
// requests). Every entry goes to a run of its shard (after the sharded
// marker), then the wide runs are deleted. Killed part-way, it leaves
// entries in both places, never in neither. A run that fails its checks
// is left where it is, as a merge leaves it: its entries are in the
// segments, and verify names it. It reads at most maxRewrite bytes.
func splitWide(ctx context.Context, be remote.Backend, runs []run, conc int) (Written, error) {
	var w Written
	es, used, read, err := readRuns(ctx, be, format.WideShard, bounded(runs), nil)
	w.Read = read
	if err != nil || len(used) == 0 {
		return w, err
	}
	_, put, err := putShards(ctx, be, es, conc, true)
	w.add(put)
	if err != nil {
		return w, err
	}
	n, err := deleteRuns(ctx, be, used, "")
	w.Deleted += n
	return w, err
}

// Purge rewrites the runs of shards without the entries of blobs stored
// in packs of gone (deleted by a gc), merging each shard into one run: the
// merged run is written before the runs it replaces are deleted, as in a
// compaction. A compaction that read a run before and writes after may
// bring such entries back: readers take entries as hints, and a pack that
// is gone as a reason to look elsewhere, so that is slower, never wrong.
// It reads at most maxRewrite bytes of each shard (the wide area too).
func Purge(ctx context.Context, be remote.Backend, shards []string, gone map[digest.Digest]bool, conc int) (Written, error) {
	var mu sync.Mutex
	var total Written
	drop := func(e format.RunEntry) bool { return e.Kind != format.RunFile && gone[e.Blob.Pack] }
	err := par.ForEach(ctx, shards, conc, func(ctx context.Context, s string) error {
		runs, err := listShard(ctx, be, s)
		if err != nil {
			return err
		}
		w, err := mergeRuns(ctx, be, s, bounded(runs), drop)
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
	all, used, read, err := readRuns(ctx, be, shard, runs, drop)
	w.Read = read
	if err != nil || len(used) < 2 && (drop == nil || len(used) == 0) {
		return w, err
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
	n, err := deleteRuns(ctx, be, used, newKey) // the merge may give back a run that was there
	w.Deleted = n
	return w, err
}

// readRuns reads and decodes runs of shard and returns their entries (but
// those drop reports, if set), the runs they came from, and the bytes it
// read. A run gone meanwhile (another compaction merged it) is left out:
// its entries are in that compaction's run. A damaged run is left out
// too, and where it is, for verify to name: its entries are in the
// segments, which stay the truth.
func readRuns(ctx context.Context, be remote.Backend, shard string, runs []run, drop func(format.RunEntry) bool) (all []format.RunEntry, used []run, read int64, err error) {
	for _, r := range runs {
		data, err := readRange(ctx, be, r.key, 0, r.size)
		if errors.Is(err, remote.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, nil, read, fmt.Errorf("read lookup run %s: %w", r.key, err)
		}
		read += int64(len(data))
		es, err := decodeNamed(shard, r.key, data)
		if err != nil {
			continue
		}
		for _, e := range es {
			if drop == nil || !drop(e) {
				all = append(all, e)
			}
		}
		used = append(used, r)
	}
	return all, used, read, nil
}

// deleteRuns deletes runs (but the one keyed keep) once what they held is
// written elsewhere, and returns how many it deleted.
func deleteRuns(ctx context.Context, be remote.Backend, runs []run, keep string) (int, error) {
	n := 0
	for _, r := range runs {
		if r.key == keep {
			continue
		}
		if err := be.Delete(ctx, r.key); err != nil && !errors.Is(err, remote.ErrNotFound) {
			return n, fmt.Errorf("delete lookup run %s: %w", r.key, err)
		}
		n++
	}
	return n, nil
}

// decodeNamed checks a run against the name its key ends with, then
// decodes it.
func decodeNamed(shard, key string, data []byte) ([]format.RunEntry, error) {
	id, err := format.RunIDFromKey(key)
	if err != nil || digest.Of(data) != id {
		return nil, fmt.Errorf("lookup run %s: %w: does not match its name", key, format.ErrBadRun)
	}
	return format.DecodeRunIn(shard, data)
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
