package cas

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/cas/ingest"
	lookupidx "github.com/cas-ml/cas/cas/lookup"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
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
	type upSeg struct {
		id  digest.Digest
		oi  remote.ObjectInfo
		seg *format.Segment
	}
	var (
		segs  []upSeg
		packs = map[digest.Digest][]index.Blob{}
		n     int
		count int
	)
	for n < len(todo) && count < runBatch {
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
		segs = append(segs, upSeg{id, oi, seg})
		for _, b := range seg.Blobs {
			packs[b.Pack] = append(packs[b.Pack], b)
		}
		count += len(seg.Blobs) + len(seg.Files)
	}
	placed, err := r.uploadPacks(ctx, dst, packs, runs, st, prog)
	if err != nil {
		return 0, err
	}
	// A segment naming a pack that did not go up whole goes up as dst
	// holds it: each blob where dst had it already or where the upload
	// put it. Every segment places all it named: a closure pushed here is
	// placed by its own segments, whatever others left half-done.
	var (
		entries []format.RunEntry
		whole   []remote.ObjectInfo
		cut     [][]byte
	)
	for _, u := range segs {
		if !slices.ContainsFunc(u.seg.Blobs, func(b index.Blob) bool { return placed[b.Pack] != nil }) {
			whole = append(whole, u.oi)
			if runs {
				entries = append(entries, lookupidx.FromSegment(u.id, u.oi.Size, u.seg)...)
			}
			continue
		}
		kept := &format.Segment{Files: u.seg.Files}
		for _, b := range u.seg.Blobs {
			pl := placed[b.Pack]
			if pl == nil {
				kept.Blobs = append(kept.Blobs, b)
			} else if h, ok := pl.held[b.ID]; ok {
				kept.Blobs = append(kept.Blobs, h)
			} else if m, ok := pl.moved[b.ID]; ok {
				kept.Blobs = append(kept.Blobs, m)
			}
		}
		if len(kept.Blobs)+len(kept.Files) == 0 {
			continue
		}
		data := kept.Encode()
		cut = append(cut, data)
		if runs {
			entries = append(entries, lookupidx.FromSegment(digest.Of(data), int64(len(data)), kept)...)
		}
	}
	if len(entries) > 0 {
		// A wide run while no shard holds one: a reader then reads one
		// area, not two; an upload into the shards moves the wide area
		// there too (its compaction splits it). That compaction lists the
		// wide area afresh, whatever this upload's listing showed: a wide
		// run another machine wrote since (its compaction blind to our
		// sharded marker, written after its listing) is split here.
		lay, v2, err := r.lookupLayout(ctx, dst, r.lookupReader(dst))
		if err != nil {
			return 0, err
		}
		shards, w, err := lookupidx.Write(ctx, dst, entries, r.transfers(), lay)
		if err != nil {
			return 0, err
		}
		if v2 && !slices.Contains(shards, format.WideShard) {
			shards = append(shards, format.WideShard)
		}
		// Compaction as the upload goes, within a budget that follows
		// what it wrote: the lookup index stays a run or two per shard.
		pol := lookupidx.Policy{Budget: 4*w.Bytes + 4<<20}
		_, err = lookupidx.Compact(ctx, dst, shards, r.transfers(), pol)
		r.lookupReader(dst).Forget(append(shards, format.WideShard)...) // its markers too
		if err != nil {
			return 0, err
		}
	}
	if err := r.copyAll(ctx, r.Backend, dst, whole, st, prog); err != nil {
		return 0, err
	}
	for _, data := range cut {
		if err := putOnce(ctx, dst, format.SegmentKey(digest.Of(data)), data); err != nil {
			return 0, fmt.Errorf("upload an index segment to %s: %w", dst.Location(), err)
		}
		st.Objects++
		st.Bytes += int64(len(data))
	}
	for _, u := range segs {
		if err := r.markUploaded(dst, u.oi.Key); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// placement is how a local pack went up to a remote that holds some or
// all of its blobs in packs of its own (held, where it holds them): moved
// are the others, repacked into a pack of their own.
type placement struct {
	held, moved map[digest.Digest]index.Blob
}

// uploadPacks copies those of packs (pack → its blobs) that dst lacks (or
// holds with another size: cut short or damaged), asking about several at
// once. Where dst keeps a lookup index (runs), a pack sharing blobs with
// dst does not go up whole: only the blobs dst lacks go, repacked, and the
// pack's placement says where they went.
func (r *Repo) uploadPacks(ctx context.Context, dst remote.Backend, packs map[digest.Digest][]index.Blob, runs bool, st *TransferStats, prog *Progress) (map[digest.Digest]*placement, error) {
	var check []digest.Digest
	placed := map[digest.Digest]*placement{}
	for p := range packs {
		if up, err := r.uploaded(dst, format.PackKey(p)); err != nil {
			return nil, err
		} else if up {
			continue
		}
		check = append(check, p)
	}
	slices.SortFunc(check, func(a, b digest.Digest) int { return bytes.Compare(a[:], b[:]) })
	absent, sizes, err := r.absentOn(ctx, dst, check)
	if err != nil {
		return nil, err
	}
	var shared map[digest.Digest]map[digest.Digest]index.Blob
	if runs && len(absent) > 0 {
		ask := map[digest.Digest][]index.Blob{}
		for _, p := range absent {
			ask[p] = packs[p]
		}
		if shared, err = r.onRemote(ctx, dst, ask); err != nil {
			return nil, err
		}
	}
	var copies []remote.ObjectInfo
	for _, p := range absent {
		if len(shared[p]) == 0 {
			copies = append(copies, remote.ObjectInfo{Key: format.PackKey(p), Size: sizes[p]})
			continue
		}
		pl, err := r.repackFor(ctx, dst, p, packs[p], shared[p], st)
		if err != nil {
			return nil, err
		}
		placed[p] = pl
	}
	st.Skipped += int64(len(check) - len(absent))
	if err := r.copyAll(ctx, r.Backend, dst, copies, st, prog); err != nil {
		return nil, err
	}
	for _, p := range check {
		if placed[p] != nil {
			continue // asked again next time: the segment carries where its blobs went
		}
		if err := r.markUploaded(dst, format.PackKey(p)); err != nil {
			return nil, err
		}
	}
	return placed, nil
}

// absentOn returns those of packs that dst lacks, or holds with another
// size (deleted there, to be copied again), with their local sizes.
func (r *Repo) absentOn(ctx context.Context, dst remote.Backend, packs []digest.Digest) ([]digest.Digest, map[digest.Digest]int64, error) {
	absent := make([]bool, len(packs))
	size := make([]int64, len(packs))
	idx := make([]int, len(packs))
	for i := range idx {
		idx[i] = i
	}
	err := par.ForEach(ctx, idx, r.transfers(), func(ctx context.Context, i int) error {
		key := format.PackKey(packs[i])
		local, err := r.Backend.Stat(ctx, key)
		if err != nil {
			return fmt.Errorf("pack %s: %w", packs[i].Short(), err)
		}
		size[i] = local.Size
		have, err := dst.Stat(ctx, key)
		switch {
		case err == nil && have.Size == local.Size:
			return nil
		case err == nil:
			if err := dst.Delete(ctx, key); err != nil && !errors.Is(err, remote.ErrNotFound) {
				return fmt.Errorf("replace %s on %s, of %d bytes where %d belong: %w", key, dst.Location(), have.Size, local.Size, err)
			}
		case !errors.Is(err, remote.ErrNotFound):
			return fmt.Errorf("pack %s on %s: %w", packs[i].Short(), dst.Location(), err)
		}
		absent[i] = true
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	var out []digest.Digest
	sizes := map[digest.Digest]int64{}
	for i, p := range packs {
		if absent[i] {
			out = append(out, p)
			sizes[p] = size[i]
		}
	}
	return out, sizes, nil
}

// repackFor puts on dst, as a pack of their own, the blobs of local pack
// p that dst lacks (have lists those it holds), and says where they went.
func (r *Repo) repackFor(ctx context.Context, dst remote.Backend, p digest.Digest, blobs []index.Blob, have map[digest.Digest]index.Blob, st *TransferStats) (*placement, error) {
	pl := &placement{held: have, moved: map[digest.Digest]index.Blob{}}
	pb := format.NewPackBuilder()
	seen := map[digest.Digest]bool{}
	for _, b := range blobs {
		if _, ok := have[b.ID]; ok || seen[b.ID] {
			continue
		}
		seen[b.ID] = true
		stored := make([]byte, b.Length)
		if err := r.packs.readAt(ctx, p, stored, int64(b.Offset)); err != nil {
			return nil, packReadError(b, err)
		}
		if _, err := decodeBlob(b, stored, nil); err != nil {
			return nil, err // damaged here: never sent on
		}
		pb.Add(b, stored)
	}
	if pb.Empty() {
		return pl, nil
	}
	data, id, moved := pb.Finish()
	if err := putOnce(ctx, dst, format.PackKey(id), data); err != nil {
		return nil, fmt.Errorf("upload a pack to %s: %w", dst.Location(), err)
	}
	st.Objects++
	st.Bytes += int64(len(data))
	for _, b := range moved {
		pl.moved[b.ID] = b
	}
	return pl, nil
}

// mirrorPack copies pack oi, just written by a push, to dst, unless dst
// keeps a lookup index that places blobs of it in packs dst holds: then
// the pack is left to Upload, which copies only what dst lacks.
func (r *Repo) mirrorPack(ctx context.Context, dst remote.Backend, oi remote.ObjectInfo) error {
	runs, err := r.lookupIndexOn(ctx, dst)
	if err != nil {
		return err
	}
	if runs {
		id, err := format.PackIDFromKey(oi.Key)
		if err != nil {
			return err
		}
		blobs, err := r.readPackTrailer(ctx, id, oi.Size)
		if err != nil {
			return err
		}
		shared, err := r.onRemote(ctx, dst, map[digest.Digest][]index.Blob{id: blobs})
		if err != nil {
			return err
		}
		if len(shared[id]) > 0 {
			return ingest.ErrNotCopied // Upload sends only what dst lacks
		}
	}
	if err := copyObject(ctx, r.Backend, dst, oi); err != nil {
		return err
	}
	return r.markUploaded(dst, oi.Key)
}

// uploadMark is the index record saying key went up to dst: dst by its
// location and the ID its lookup index was started with, so that another
// bucket at the same location (deleted and made again, another endpoint)
// is not taken for this one.
func (r *Repo) uploadMark(dst remote.Backend, key string) digest.Digest {
	id := ""
	if v, ok := r.bucketIDs.Load(dst.Location()); ok {
		id = v.(string)
	}
	return digest.Of([]byte("uploaded\x00" + dst.Location() + "\x00" + id + "\x00" + key))
}

func (r *Repo) uploaded(dst remote.Backend, key string) (bool, error) {
	return r.Index.HasRecord(r.uploadMark(dst, key))
}

func (r *Repo) markUploaded(dst remote.Backend, key string) error {
	return r.Index.MarkRecord(r.uploadMark(dst, key))
}

// lookupFormat is the content of format.LookupFormatKey.
type lookupFormat struct {
	Version     int    `json:"version"`
	ShardDigits int    `json:"shard_digits"`
	ID          string `json:"id,omitempty"` // random, written once: tells buckets apart
}

// lookupVersion is the version of the lookup index this cas starts: 2,
// with a wide area (docs/FORMAT.md §7a). It extends one of version 1 as
// version 1 (shards only), which older cas read in full.
const lookupVersion = 2

// parseLookupFormat reads a lookup index's format record and checks it
// is one this cas writes to: version 1 or 2, 3 hex digits a shard, and an
// ID of 12 hex digits (it keys what was uploaded to the bucket). A bucket
// laid out otherwise would lose, to its readers, the entries written.
func parseLookupFormat(data []byte) (lookupFormat, error) {
	var f lookupFormat
	if err := json.Unmarshal(data, &f); err != nil {
		return f, fmt.Errorf("not a lookup index format record: %w", err)
	}
	if f.Version < 1 || f.Version > lookupVersion || f.ShardDigits != format.LookupShardDigits {
		return f, fmt.Errorf("lookup index version %d with %d shard digits: this cas writes versions 1 to %d with %d", f.Version, f.ShardDigits, lookupVersion, format.LookupShardDigits)
	}
	if _, err := hex.DecodeString(f.ID); err != nil || len(f.ID) != 12 {
		return f, fmt.Errorf("lookup index ID %q is not 12 hex digits", f.ID)
	}
	return f, nil
}

// lookupIndexOn reports whether dst keeps a lookup index that an upload
// must extend. An empty dst starts one; a dst written by an older cas,
// with segments and no lookup index, gets none until `cas remote
// upgrade` builds it from them (reads from it load every segment).
func (r *Repo) lookupIndexOn(ctx context.Context, dst remote.Backend) (bool, error) {
	if v, ok := r.lookupOn.Load(dst.Location()); ok {
		return v.(bool), nil
	}
	ok, err := r.startLookupIndex(ctx, dst)
	if err == nil {
		r.lookupOn.Store(dst.Location(), ok)
	}
	return ok, err
}

// knownLookupIndex is hasLookupIndex, answered from what an upload in
// this process learned when it can be: a closure check right after an
// upload costs no request for it.
func (r *Repo) knownLookupIndex(ctx context.Context, be remote.Backend) (bool, error) {
	if v, ok := r.lookupOn.Load(be.Location()); ok {
		return v.(bool), nil
	}
	return hasLookupIndex(ctx, be)
}

func (r *Repo) startLookupIndex(ctx context.Context, dst remote.Backend) (bool, error) {
	data, err := remote.ReadSmall(ctx, dst, format.LookupFormatKey)
	if err == nil {
		f, err := parseLookupFormat(data)
		if err != nil {
			return false, fmt.Errorf("%s on %s: %w", format.LookupFormatKey, dst.Location(), err)
		}
		r.bucketIDs.Store(dst.Location(), f.ID)
		r.lookupVers.Store(dst.Location(), f.Version)
		return true, nil
	}
	if !errors.Is(err, remote.ErrNotFound) {
		return false, fmt.Errorf("read %s on %s: %w", format.LookupFormatKey, dst.Location(), err)
	}
	empty := true
	err = dst.List(ctx, format.SegmentPrefix, func(remote.ObjectInfo) error { empty = false; return errStop })
	if err != nil && !errors.Is(err, errStop) {
		return false, fmt.Errorf("list %s on %s: %w", format.SegmentPrefix, dst.Location(), err)
	}
	if !empty {
		r.warn(fmt.Errorf("%s has no lookup index: reading from it loads all its index segments (`cas remote upgrade` builds one)", dst.Location()))
		return false, nil
	}
	if err := enableLookupIndex(ctx, dst, false); err != nil {
		return false, err
	}
	return r.startLookupIndex(ctx, dst) // its ID: ours, or that of a machine that started it first
}

// lookupLayout says how entries written to dst, whose lookup index
// lookupIndexOn found, are laid out: with the sharded marker before a run
// in a shard, and in a wide run only where the index is of version 2 (v2)
// and rd's listing of the wide area says no shard holds a run yet: a
// wide run beside the sharded marker costs every reader both areas.
func (r *Repo) lookupLayout(ctx context.Context, dst remote.Backend, rd *lookupidx.Reader) (lay lookupidx.Layout, v2 bool, err error) {
	v, _ := r.lookupVers.Load(dst.Location())
	v2 = v == lookupVersion
	lay = lookupidx.Layout{Mark: true}
	if v2 {
		lay.Wide, err = rd.Flat(ctx)
	}
	return lay, v2, err
}

// enableLookupIndex writes format.LookupFormatKey on be, then the markers
// that tell readers so in the listing of the wide area they make anyway
// (sharded: runs are in shards already, as an upgrade leaves them). When
// another machine wrote the format key first, the markers are its to
// write: it may be a cas that writes version 1, whose runs go to shards
// with no marker, and that a reader finding the index marker would never
// look at.
func enableLookupIndex(ctx context.Context, be remote.Backend, sharded bool) error {
	b, _ := json.MarshalIndent(lookupFormat{Version: lookupVersion, ShardDigits: format.LookupShardDigits, ID: randHex()}, "", "  ")
	b = append(b, '\n')
	err := be.Put(ctx, format.LookupFormatKey, bytes.NewReader(b), int64(len(b)), remote.PutOptions{IfNoneMatch: true})
	if errors.Is(err, remote.ErrExists) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("start the lookup index on %s: %w", be.Location(), err)
	}
	if sharded {
		if err := lookupidx.MarkSharded(ctx, be); err != nil {
			return fmt.Errorf("start the lookup index on %s: %w", be.Location(), err)
		}
	}
	if err := lookupidx.MarkIndexed(ctx, be); err != nil {
		return fmt.Errorf("start the lookup index on %s: %w", be.Location(), err)
	}
	return nil
}
