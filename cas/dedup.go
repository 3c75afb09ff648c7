package cas

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/cas-ml/cas/cas/format"
	lookupidx "github.com/cas-ml/cas/cas/lookup"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
	"github.com/cas-ml/cas/internal/par"
	"github.com/cas-ml/cas/remote"
)

// A remote may hold the blobs of a local pack in packs of its own: another
// machine pushed the same data. An upload then skips the pack (that is
// deduplication against the bucket), and whatever checks that a remote
// holds a closure, or guards it from a gc there, must follow the data to
// the packs that hold it on the remote. These helpers do that through the
// remote's lookup index, never trusting it further than they check: every
// pack it names is checked to exist.

// blobsOn returns, for each of packs (local pack → its blobs), the blobs
// be already holds, where it holds them. The lookup index only suggests:
// each pack it names is read on be (its trailer: two ranged reads), and a
// blob counts only where the trailer lists it at the place the entry says,
// with its type and raw length. (The blobs' bytes are not read, and a
// bucket that writes a pack can name it by its own trailer: what the
// trailer lists is taken on the bucket's word. A reader checks every blob
// against its ID, and `cas verify --remote` reads them all.)
func (r *Repo) blobsOn(ctx context.Context, be remote.Backend, packs map[digest.Digest][]index.Blob) (map[digest.Digest]map[digest.Digest]index.Blob, error) {
	var ids []digest.Digest
	for _, bs := range packs {
		for _, b := range bs {
			ids = append(ids, b.ID)
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	found, err := r.lookupReader(be).Lookup(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("look up on %s: %w", be.Location(), err)
	}
	// Every pack an entry names, read once: what its trailer lists.
	named := map[digest.Digest]map[digest.Digest]index.Blob{}
	for _, es := range found {
		for _, e := range es {
			if e.Kind != format.RunFile {
				named[e.Blob.Pack] = nil
			}
		}
	}
	var mu sync.Mutex
	err = par.ForEach(ctx, slices.Collect(maps.Keys(named)), r.transfers(), func(ctx context.Context, p digest.Digest) error {
		listed, err := trailerOn(ctx, be, p)
		if err != nil {
			return err
		}
		mu.Lock()
		named[p] = listed
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	on := map[digest.Digest]map[digest.Digest]index.Blob{}
	for local, bs := range packs {
		for _, b := range bs {
			i := slices.IndexFunc(found[b.ID], func(e format.RunEntry) bool {
				rec, ok := named[e.Blob.Pack][b.ID]
				return ok && e.Kind != format.RunFile && rec == e.Blob && rec.Type == b.Type && rec.RawLen == b.RawLen
			})
			if i < 0 {
				continue
			}
			if on[local] == nil {
				on[local] = map[digest.Digest]index.Blob{}
			}
			on[local][b.ID] = found[b.ID][i].Blob
		}
	}
	return on, nil
}

// trailerOn returns what the trailer of pack p on be lists, by blob ID:
// nothing when be lacks p or its trailer cannot be read as one (damaged
// or forged: nothing is counted as held there).
func trailerOn(ctx context.Context, be remote.Backend, p digest.Digest) (map[digest.Digest]index.Blob, error) {
	oi, err := be.Stat(ctx, format.PackKey(p))
	if errors.Is(err, remote.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pack %s on %s: %w", p.Short(), be.Location(), err)
	}
	view := newView(be, index.NewMemory(), nil)
	blobs, err := view.readPackTrailer(ctx, p, oi.Size)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var ce *CorruptError
		if errors.Is(err, ErrBadPack) || errors.As(err, &ce) || errors.Is(err, remote.ErrNotFound) || errors.Is(err, format.ErrBadPack) {
			return nil, nil
		}
		return nil, fmt.Errorf("pack %s on %s: %w", p.Short(), be.Location(), err)
	}
	listed := make(map[digest.Digest]index.Blob, len(blobs))
	for _, b := range blobs {
		listed[b.ID] = b
	}
	return listed, nil
}

// coverOn returns, for those of packs whose every blob be holds in packs
// of its own, those packs of be.
func (r *Repo) coverOn(ctx context.Context, be remote.Backend, packs map[digest.Digest][]index.Blob) (map[digest.Digest][]digest.Digest, error) {
	on, err := r.blobsOn(ctx, be, packs)
	if err != nil {
		return nil, err
	}
	cover := map[digest.Digest][]digest.Digest{}
	for local, bs := range packs {
		if len(bs) == 0 || len(on[local]) != len(uniqueIDs(bs)) {
			continue
		}
		holders := map[digest.Digest]bool{}
		for _, b := range on[local] {
			holders[b.Pack] = true
		}
		cover[local] = slices.Collect(maps.Keys(holders))
	}
	return cover, nil
}

func uniqueIDs(bs []index.Blob) map[digest.Digest]bool {
	ids := make(map[digest.Digest]bool, len(bs))
	for _, b := range bs {
		ids[b.ID] = true
	}
	return ids
}

// packsOn returns the packs that hold on be the data of the local packs:
// each one be holds under its own name, else, where be keeps a lookup
// index, the packs it places all its blobs in. missing lists (sorted) the
// local packs neither way finds. The local store has no lookup index:
// there, a pack is either present or missing.
func (r *Repo) packsOn(ctx context.Context, be remote.Backend, packs map[digest.Digest]bool) (map[digest.Digest]bool, []digest.Digest, error) {
	missing, err := r.missingPacks(ctx, be, packs)
	if err != nil {
		return nil, nil, err
	}
	on := maps.Clone(packs)
	for _, m := range missing {
		delete(on, m)
	}
	if len(missing) == 0 || be == r.Backend {
		return on, missing, nil
	}
	if ok, err := r.knownLookupIndex(ctx, be); err != nil || !ok {
		return on, missing, err
	}
	blobs := map[digest.Digest][]index.Blob{}
	for _, m := range missing {
		oi, err := r.Backend.Stat(ctx, format.PackKey(m))
		if err != nil {
			continue // not here either: missing
		}
		bs, err := r.readPackTrailer(ctx, m, oi.Size)
		if err != nil {
			return nil, nil, err
		}
		blobs[m] = bs
	}
	cover, err := r.coverOn(ctx, be, blobs)
	if err != nil {
		return nil, nil, err
	}
	var still []digest.Digest
	for _, m := range missing {
		if c, ok := cover[m]; ok {
			for _, p := range c {
				on[p] = true
			}
		} else {
			still = append(still, m)
		}
	}
	return on, still, nil
}

// samplesPerPack is how many blobs of a pack an upload asks the remote
// about before it asks about all of them: new data costs a few lookups a
// pack, data the remote holds a lookup a blob, and an index read of a few
// KiB each.
const samplesPerPack = 4

// onRemote returns, for those of packs (missing on be by name) that share
// blobs with be, the blobs be holds already (blobsOn): a sample of each
// pack is looked up first, and only packs with a sampled blob on be are
// looked at whole.
func (r *Repo) onRemote(ctx context.Context, be remote.Backend, packs map[digest.Digest][]index.Blob) (map[digest.Digest]map[digest.Digest]index.Blob, error) {
	var ids []digest.Digest
	sample := map[digest.Digest][]digest.Digest{}
	for p, bs := range packs {
		for i := 0; i < len(bs) && len(sample[p]) < samplesPerPack; i += max(1, len(bs)/samplesPerPack) {
			sample[p] = append(sample[p], bs[i].ID)
			ids = append(ids, bs[i].ID)
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	found, err := r.lookupReader(be).Lookup(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("look up on %s: %w", be.Location(), err)
	}
	hit := map[digest.Digest][]index.Blob{}
	for p, s := range sample {
		if slices.ContainsFunc(s, func(id digest.Digest) bool { return len(found[id]) > 0 }) {
			hit[p] = packs[p]
		}
	}
	return r.blobsOn(ctx, be, hit)
}

// lookupReader is the Repo's reader of be's lookup index, shared by the
// lookups of one process so that each shard is listed once.
func (r *Repo) lookupReader(be remote.Backend) *lookupidx.Reader {
	if v, ok := r.readers.Load(be.Location()); ok {
		return v.(*lookupidx.Reader)
	}
	rd := lookupidx.NewReader(be, r.transfers())
	rd.Warn = r.warn
	v, _ := r.readers.LoadOrStore(be.Location(), rd)
	return v.(*lookupidx.Reader)
}
