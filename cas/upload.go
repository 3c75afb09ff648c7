package cas

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/cas-ml/cas/cas/format"
	lookupidx "github.com/cas-ml/cas/cas/lookup"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/internal/par"
	"github.com/cas-ml/cas/remote"
)

// runBatch is how many lookup entries an upload gathers before writing
// them as runs: about 30 MiB of entries, a few thousand runs at most.
const runBatch = 1 << 18

// Upload copies to dst what the store's own index segments name and dst
// was not given yet, segment by segment: its packs (those dst lacks),
// then, where dst keeps a lookup index, the runs of its entries, then
// the segment, so that nothing on dst ever names an object not yet there;
// refs go last (SetRefOn). What went up is marked in the local index, so
// an upload costs requests for what is new, not for everything dst holds.
func (r *Repo) Upload(ctx context.Context, dst remote.Backend, prog *Progress) (*TransferStats, error) {
	start := r.Now()
	st := &TransferStats{}
	runs, err := r.lookupIndexOn(ctx, dst)
	if err != nil {
		return nil, err
	}
	var todo []digest.Digest
	err = r.Index.StoreSegments(func(d digest.Digest) error {
		if up, err := r.uploaded(dst, format.SegmentKey(d)); err != nil || up {
			return err
		}
		todo = append(todo, d)
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(todo, func(a, b digest.Digest) int { return bytes.Compare(a[:], b[:]) })
	for len(todo) > 0 {
		n, err := r.uploadBatch(ctx, dst, todo, runs, st, prog)
		if err != nil {
			return nil, err
		}
		todo = todo[n:]
	}
	st.Seconds = r.Now().Sub(start).Seconds()
	return st, nil
}

// uploadBatch uploads the first segments of todo, up to runBatch lookup
// entries' worth, and returns how many it took.
func (r *Repo) uploadBatch(ctx context.Context, dst remote.Backend, todo []digest.Digest, runs bool, st *TransferStats, prog *Progress) (int, error) {
	var (
		segs    []remote.ObjectInfo
		entries []format.RunEntry
		packs   = map[digest.Digest]bool{}
		n       int
	)
	for n < len(todo) && len(entries) < runBatch {
		id := todo[n]
		n++
		key := format.SegmentKey(id)
		seg, _, err := getSegment(ctx, r.Backend, key)
		if err != nil {
			var ce *CorruptError
			if errors.Is(err, remote.ErrNotFound) || errors.Is(err, ErrBadSegment) || errors.As(err, &ce) {
				r.warn(fmt.Errorf("not uploaded: %w", err))
				continue
			}
			return 0, err
		}
		oi, err := r.Backend.Stat(ctx, key)
		if err != nil {
			return 0, err
		}
		segs = append(segs, oi)
		for _, b := range seg.Blobs {
			packs[b.Pack] = true
		}
		if runs {
			entries = append(entries, lookupidx.FromSegment(id, seg)...)
		}
	}
	if err := r.uploadPacks(ctx, dst, packs, st, prog); err != nil {
		return 0, err
	}
	if len(entries) > 0 {
		shards, w, err := lookupidx.Write(ctx, dst, entries, r.transfers())
		if err != nil {
			return 0, err
		}
		// Compaction as the upload goes, within a budget that follows
		// what it wrote: the lookup index stays a run or two per shard.
		pol := lookupidx.Policy{Budget: 4*w.Bytes + 4<<20}
		if _, err := lookupidx.Compact(ctx, dst, shards, r.transfers(), pol); err != nil {
			return 0, err
		}
	}
	if err := r.copyAll(ctx, r.Backend, dst, segs, st, prog); err != nil {
		return 0, err
	}
	for _, oi := range segs {
		if err := r.markUploaded(dst, oi.Key); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// uploadPacks copies those of packs that dst lacks (or holds with another
// size: cut short or damaged), asking about several at once.
func (r *Repo) uploadPacks(ctx context.Context, dst remote.Backend, packs map[digest.Digest]bool, st *TransferStats, prog *Progress) error {
	var check []digest.Digest
	for p := range packs {
		if up, err := r.uploaded(dst, format.PackKey(p)); err != nil {
			return err
		} else if !up {
			check = append(check, p)
		}
	}
	slices.SortFunc(check, func(a, b digest.Digest) int { return bytes.Compare(a[:], b[:]) })
	todo := make([]remote.ObjectInfo, len(check))
	keep := make([]bool, len(check))
	idx := make([]int, len(check))
	for i := range idx {
		idx[i] = i
	}
	err := par.ForEach(ctx, idx, r.transfers(), func(ctx context.Context, i int) error {
		key := format.PackKey(check[i])
		local, err := r.Backend.Stat(ctx, key)
		if err != nil {
			return fmt.Errorf("pack %s: %w", check[i].Short(), err)
		}
		have, err := dst.Stat(ctx, key)
		switch {
		case err == nil && have.Size == local.Size:
			return nil
		case err == nil:
			if err := dst.Delete(ctx, key); err != nil && !errors.Is(err, remote.ErrNotFound) {
				return fmt.Errorf("replace %s on %s, of %d bytes where %d belong: %w", key, dst.Location(), have.Size, local.Size, err)
			}
		case !errors.Is(err, remote.ErrNotFound):
			return fmt.Errorf("pack %s on %s: %w", check[i].Short(), dst.Location(), err)
		}
		todo[i], keep[i] = local, true
		return nil
	})
	if err != nil {
		return err
	}
	var copies []remote.ObjectInfo
	for i, oi := range todo {
		if keep[i] {
			copies = append(copies, oi)
		} else {
			st.Skipped++
		}
	}
	if err := r.copyAll(ctx, r.Backend, dst, copies, st, prog); err != nil {
		return err
	}
	for _, p := range check {
		if err := r.markUploaded(dst, format.PackKey(p)); err != nil {
			return err
		}
	}
	return nil
}

// uploadMark is the index record saying key went up to dst.
func uploadMark(dst remote.Backend, key string) digest.Digest {
	return digest.Of([]byte("uploaded\x00" + dst.Location() + "\x00" + key))
}

func (r *Repo) uploaded(dst remote.Backend, key string) (bool, error) {
	return r.Index.HasRecord(uploadMark(dst, key))
}

func (r *Repo) markUploaded(dst remote.Backend, key string) error {
	return r.Index.MarkRecord(uploadMark(dst, key))
}

// lookupFormat is the content of format.LookupFormatKey.
type lookupFormat struct {
	Version     int `json:"version"`
	ShardDigits int `json:"shard_digits"`
}

// lookupIndexOn reports whether dst keeps a lookup index that an upload
// must extend. An empty dst starts one; a dst written by an older cas,
// with segments and no lookup index, gets none until `cas remote
// upgrade` builds it from them (reads from it load every segment).
func (r *Repo) lookupIndexOn(ctx context.Context, dst remote.Backend) (bool, error) {
	if ok, err := hasLookupIndex(ctx, dst); err != nil || ok {
		return ok, err
	}
	empty := true
	err := dst.List(ctx, format.SegmentPrefix, func(remote.ObjectInfo) error { empty = false; return errStop })
	if err != nil && !errors.Is(err, errStop) {
		return false, fmt.Errorf("list %s on %s: %w", format.SegmentPrefix, dst.Location(), err)
	}
	if !empty {
		r.warn(fmt.Errorf("%s has no lookup index: reading from it loads all its index segments (`cas remote upgrade` builds one)", dst.Location()))
		return false, nil
	}
	return true, enableLookupIndex(ctx, dst)
}

// enableLookupIndex writes format.LookupFormatKey on be.
func enableLookupIndex(ctx context.Context, be remote.Backend) error {
	b, _ := json.MarshalIndent(lookupFormat{Version: 1, ShardDigits: format.LookupShardDigits}, "", "  ")
	b = append(b, '\n')
	err := be.Put(ctx, format.LookupFormatKey, bytes.NewReader(b), int64(len(b)), remote.PutOptions{IfNoneMatch: true})
	if err != nil && !errors.Is(err, remote.ErrExists) {
		return fmt.Errorf("start the lookup index on %s: %w", be.Location(), err)
	}
	return nil
}
