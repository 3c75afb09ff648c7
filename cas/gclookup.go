package cas

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/cas-ml/cas/cas/format"
	lookupidx "github.com/cas-ml/cas/cas/lookup"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
	"github.com/cas-ml/cas/remote"
)

// A sweep keeps a remote's lookup index (docs/FORMAT.md §7a) in step with
// the segments it rewrites: the blobs of live orphan packs it adopts get
// entries before the segment naming them is written, and once packs are
// deleted the entries naming them are dropped from their shards: a cost
// that follows the garbage, not the bucket.

// gcLookupAdd writes lookup entries for the blobs of live orphans a sweep
// adopts (packs no segment named: no run names them either). Their
// segment is not written yet: the entries name none (the zero digest).
func (r *Repo) gcLookupAdd(ctx context.Context, be remote.Backend, adopted map[digest.Digest][]index.Blob, live map[digest.Digest]bool) error {
	if be == r.Backend {
		return nil // the local store has no lookup index
	}
	var es []format.RunEntry
	for p, blobs := range adopted {
		if !live[p] {
			continue
		}
		for _, b := range blobs {
			es = append(es, format.RunEntry{ID: b.ID, Kind: b.Type, Blob: b})
		}
	}
	if len(es) == 0 {
		return nil
	}
	rd := r.lookupReader(be)
	rd.Forget(format.WideShard) // the wide area as it is now: flat or not
	if ok, err := hasLookupIndexBy(ctx, rd, be); err != nil || !ok {
		return err
	}
	if _, err := r.lookupIndexOn(ctx, be); err != nil { // its version
		return err
	}
	// Laid out as an upload's: a gc compacts nothing, so a wide run beside
	// the sharded marker would stay until an upload splits it.
	lay, _, err := r.lookupLayout(ctx, be, rd)
	if err != nil {
		return err
	}
	_, _, err = lookupidx.Write(ctx, be, es, r.transfers(), lay)
	rd.Forget(format.WideShard)
	if err != nil {
		return fmt.Errorf("gc: write lookup entries: %w", err)
	}
	return nil
}

// noteGone records the lookup shard of a blob held in a pack a sweep
// deletes.
func (m *gcMarks) noteGone(id digest.Digest) {
	if m.goneShards == nil {
		m.goneShards = map[string]bool{}
	}
	m.goneShards[format.LookupShard(id)] = true
	m.goneShards[format.WideShard] = true // which may hold it too
}

// noteRewrite remembers, for purgeLookup, the packs a sweep deletes and
// the shards of the blobs they held (as the segments said).
func (s *gcStore) noteRewrite(m *gcMarks, del map[digest.Digest]bool) {
	if s.be == s.r.Backend || len(del) == 0 {
		return
	}
	if s.gone == nil {
		s.gone, s.shards = map[digest.Digest]bool{}, map[string]bool{}
	}
	for p := range del {
		s.gone[p] = true
	}
	for sh := range m.goneShards {
		s.shards[sh] = true
	}
}

// purgeLookup drops, from the shards noteRewrite found, the entries of
// the packs deleted.
func (s *gcStore) purgeLookup(ctx context.Context) error {
	if len(s.shards) == 0 {
		return nil
	}
	rd := lookupidx.NewReader(s.be, 1)
	if ok, err := hasLookupIndexBy(ctx, rd, s.be); err != nil || !ok {
		return err
	}
	shards := slices.Sorted(maps.Keys(s.shards))
	// On a flat bucket no shard holds a run: the wide area alone holds
	// the entries. (A split meanwhile may carry some of them into the
	// shards, as a compaction that read before may: readers take an entry
	// naming a deleted pack as a reason to look elsewhere.)
	if flat, err := rd.Flat(ctx); err != nil {
		return err
	} else if flat {
		shards = []string{format.WideShard}
	}
	if _, err := lookupidx.Purge(ctx, s.be, shards, s.gone, s.r.transfers()); err != nil {
		return fmt.Errorf("gc: drop lookup entries of deleted packs: %w", err)
	}
	s.gone, s.shards = nil, nil
	return nil
}
