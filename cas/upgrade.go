package cas

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/cas-ml/cas/cas/format"
	lookupidx "github.com/cas-ml/cas/cas/lookup"
	"github.com/cas-ml/cas/remote"
)

// UpgradeStats say what UpgradeRemote did.
type UpgradeStats struct {
	// Already: be had a lookup index; nothing was done.
	Already  bool    `json:"already"`
	Segments int     `json:"segments"`
	Entries  int     `json:"entries"`
	Runs     int     `json:"runs"`
	Bytes    int64   `json:"bytes"`
	Seconds  float64 `json:"seconds"`
}

// UpgradeRemote gives be, a remote written by an older cas, the lookup
// index of docs/FORMAT.md §7a, built from its index segments: runs written
// a batch of segments at a time, then every shard compacted, then the
// format key that tells readers to use it. Until that last write readers
// load segments as before, so the upgrade is safe to interrupt and to run
// again (runs are named by their bytes; duplicates merge away). Segments
// written to be later by an older cas are not in the lookup index: a
// reader that misses an ID loads every segment, so they are still read.
func (r *Repo) UpgradeRemote(ctx context.Context, be remote.Backend, prog *Progress) (*UpgradeStats, error) {
	start := r.Now()
	st := &UpgradeStats{}
	if ok, err := hasLookupIndex(ctx, be); err != nil || ok {
		st.Already = ok
		return st, err
	}
	var keys []string
	err := be.List(ctx, format.SegmentPrefix, func(oi remote.ObjectInfo) error {
		if _, err := format.SegmentIDFromKey(oi.Key); err == nil {
			keys = append(keys, oi.Key)
			if prog != nil {
				prog.TotalFiles.Add(1)
				prog.TotalBytes.Add(oi.Size)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list index segments on %s: %w", be.Location(), err)
	}
	touched, err := r.writeSegmentEntries(ctx, be, be, keys, st, prog)
	if err != nil {
		return nil, err
	}
	shards := slices.Sorted(maps.Keys(touched))
	if _, err := lookupidx.Compact(ctx, be, shards, r.transfers(), lookupidx.Policy{}); err != nil {
		return nil, err
	}
	if err := enableLookupIndex(ctx, be, true); err != nil {
		return nil, err
	}
	st.Seconds = r.Now().Sub(start).Seconds()
	return st, nil
}

// writeSegmentEntries writes to dst the lookup entries of the index
// segments at keys on src, runBatch entries at a time, counting in st (and
// prog, if set), and returns the shards it wrote to. A segment gone (a gc
// merged it) or damaged is skipped with a warning: verify names it.
func (r *Repo) writeSegmentEntries(ctx context.Context, src, dst remote.Backend, keys []string, st *UpgradeStats, prog *Progress) (map[string]bool, error) {
	touched := map[string]bool{}
	var entries []format.RunEntry
	flush := func() error {
		if len(entries) == 0 {
			return nil
		}
		// Runs in shards, no marker: readers take none of it until the
		// format key and the markers are written, last.
		shards, w, err := lookupidx.Write(ctx, dst, entries, r.transfers(), lookupidx.Layout{})
		for _, s := range shards {
			touched[s] = true
		}
		r.lookupReader(dst).Forget(shards...)
		st.Runs += w.Runs
		st.Bytes += w.Bytes
		entries = entries[:0]
		return err
	}
	for _, key := range keys {
		seg, id, err := getSegment(ctx, src, key)
		if err != nil {
			var ce *CorruptError
			if errors.Is(err, remote.ErrNotFound) || errors.Is(err, ErrBadSegment) || errors.As(err, &ce) {
				r.warn(fmt.Errorf("skipped %w", err))
				continue
			}
			return nil, err
		}
		es := lookupidx.FromSegment(id, 0, seg) // into shards, which keep no segment size
		st.Segments++
		st.Entries += len(es)
		entries = append(entries, es...)
		if prog != nil {
			prog.Files.Add(1)
		}
		if len(entries) >= runBatch {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	return touched, flush()
}
