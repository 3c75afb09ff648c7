package lookup

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/internal/par"
	"github.com/cas-ml/cas/remote"
)

// wholeRun is the size up to which a run is read whole rather than by
// its fan-out table and buckets: one request instead of two.
const wholeRun = 32 << 10

// Reader looks IDs up in a remote's lookup index. It keeps what it read
// of each shard (the listing, fan-out tables, small runs whole) for its
// lifetime, and lists a shard again when a run it listed is gone (merged
// by a compaction meanwhile).
type Reader struct {
	be   remote.Backend
	conc int
	// Warn, if set, is told of a run skipped as damaged (it fails its
	// checks): lookups go on without it, as if its entries were absent,
	// and the reader falls back on the segments for what it held.
	Warn func(error)

	mu     sync.Mutex
	shards map[string]*shardCache
}

type shardCache struct {
	name    string
	runs    []run
	footers map[string]*format.RunFooter
	whole   map[string][]format.RunEntry
	// Of the wide area: the markers its listing showed.
	indexed, sharded bool
}

// skipsShards reports whether a wide area's listing says no shard holds
// a run: the index is of version 2 and not yet sharded.
func (sc *shardCache) skipsShards() bool { return sc.indexed && !sc.sharded }

// NewReader returns a Reader of be's lookup index making up to conc
// requests at once.
func NewReader(be remote.Backend, conc int) *Reader {
	return &Reader{be: be, conc: max(conc, 1), shards: map[string]*shardCache{}}
}

// Probe lists the wide area (once: lookups use what it found) and
// reports whether its markers say be keeps a lookup index. When they do
// not, LookupFormatKey may still (a lookup index of version 1, or one
// whose marker a crash left unwritten): the caller checks it.
func (r *Reader) Probe(ctx context.Context) (bool, error) {
	sc, err := r.shard(ctx, format.WideShard)
	if err != nil {
		return false, err
	}
	return sc.indexed || sc.sharded, nil
}

// Flat reports whether the wide area's listing (made once, as by Probe)
// says no shard holds a run: an index of version 2 whose uploads all went
// to wide runs so far.
func (r *Reader) Flat(ctx context.Context) (bool, error) {
	sc, err := r.shard(ctx, format.WideShard)
	if err != nil {
		return false, err
	}
	return sc.skipsShards(), nil
}

// Lookup returns the entries found for each of ids (those with none are
// absent from the map). An ID may have several entries: a blob stored
// twice, or a file listed by two segments. Entries found in a wide run
// say so (Wide).
func (r *Reader) Lookup(ctx context.Context, ids []digest.Digest) (map[digest.Digest][]format.RunEntry, error) {
	wide, err := r.shard(ctx, format.WideShard)
	if err != nil {
		return nil, err
	}
	byShard := map[string][]digest.Digest{}
	for _, id := range ids {
		s := format.LookupShard(id)
		if !slices.Contains(byShard[s], id) {
			byShard[s] = append(byShard[s], id)
			byShard[format.WideShard] = append(byShard[format.WideShard], id)
		}
	}
	shards := []string{format.WideShard}
	if !wide.skipsShards() {
		shards = slices.Sorted(maps.Keys(byShard))
	}
	out := map[digest.Digest][]format.RunEntry{}
	if err := r.lookupShards(ctx, shards, byShard, out); err != nil {
		return nil, err
	}
	if wide.skipsShards() {
		// A wide run split meanwhile (its listing was done again) leaves
		// its entries in the shards.
		if again, err := r.shard(ctx, format.WideShard); err != nil || again.skipsShards() {
			return out, err
		}
		delete(byShard, format.WideShard)
		shards = slices.Sorted(maps.Keys(byShard))
		if err := r.lookupShards(ctx, shards, byShard, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// lookupShards looks the IDs of byShard up in shards, adding what it
// finds to out.
func (r *Reader) lookupShards(ctx context.Context, shards []string, byShard map[string][]digest.Digest, out map[digest.Digest][]format.RunEntry) error {
	var mu sync.Mutex
	return par.ForEach(ctx, shards, r.conc, func(ctx context.Context, s string) error {
		found, err := r.lookupShard(ctx, s, byShard[s])
		if errors.Is(err, remote.ErrNotFound) {
			r.forget(s) // compacted meanwhile: list it again
			found, err = r.lookupShard(ctx, s, byShard[s])
		}
		if errors.Is(err, remote.ErrNotFound) {
			// Gone again (compacted again, or a listing that lags behind
			// deletes): what its runs did not answer is a gap, which the
			// caller fills from the segments, not a reason to fail.
			err = nil
		}
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, e := range found {
			e.Wide = s == format.WideShard
			out[e.ID] = append(out[e.ID], e)
		}
		return nil
	})
}

// Forget drops what the Reader knows of shards, written to meanwhile: the
// next lookup in one lists it again.
func (r *Reader) Forget(shards ...string) {
	for _, s := range shards {
		r.forget(s)
	}
}

func (r *Reader) forget(shard string) {
	r.mu.Lock()
	delete(r.shards, shard)
	r.mu.Unlock()
}

// shard returns what is known of shard, listing it the first time.
func (r *Reader) shard(ctx context.Context, shard string) (*shardCache, error) {
	r.mu.Lock()
	sc := r.shards[shard]
	r.mu.Unlock()
	if sc != nil {
		return sc, nil
	}
	sc = &shardCache{name: shard, footers: map[string]*format.RunFooter{}, whole: map[string][]format.RunEntry{}}
	var err error
	if shard == format.WideShard {
		sc.runs, sc.indexed, sc.sharded, err = listWide(ctx, r.be)
	} else {
		sc.runs, err = listShard(ctx, r.be, shard)
	}
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.shards[shard] = sc
	r.mu.Unlock()
	return sc, nil
}

// lookupShard looks ids (all of shard) up in every run of the shard. A
// listed run found gone is passed over, the others still read: it then
// returns what they hold with an error that is remote.ErrNotFound.
func (r *Reader) lookupShard(ctx context.Context, shard string, ids []digest.Digest) ([]format.RunEntry, error) {
	sc, err := r.shard(ctx, shard)
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	var found []format.RunEntry
	var gone error
	err = par.ForEach(ctx, sc.runs, r.conc, func(ctx context.Context, rn run) error {
		es, err := r.lookupRun(ctx, sc, rn, ids)
		if errors.Is(err, format.ErrBadRun) {
			if r.Warn != nil {
				r.Warn(fmt.Errorf("skipped a damaged lookup run: %w", err))
			}
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		if errors.Is(err, remote.ErrNotFound) {
			gone = err // merged meanwhile
			return nil
		}
		found = append(found, es...)
		return err
	})
	if err == nil {
		err = gone
	}
	return found, err
}

// lookupRun returns the entries of run rn for ids.
func (r *Reader) lookupRun(ctx context.Context, sc *shardCache, rn run, ids []digest.Digest) ([]format.RunEntry, error) {
	if rn.size <= wholeRun {
		r.mu.Lock()
		es, ok := sc.whole[rn.key]
		r.mu.Unlock()
		if !ok {
			data, err := readRange(ctx, r.be, rn.key, 0, rn.size)
			if err != nil {
				return nil, fmt.Errorf("read lookup run %s: %w", rn.key, err)
			}
			if es, err = decodeNamed(sc.name, rn.key, data); err != nil {
				return nil, err
			}
			r.mu.Lock()
			sc.whole[rn.key] = es
			r.mu.Unlock()
		}
		return matching(es, ids), nil
	}
	f, err := r.footer(ctx, sc, rn)
	if err != nil {
		return nil, err
	}
	var found []format.RunEntry
	done := map[int64]bool{}
	for _, id := range ids {
		off, end := f.Bucket(id)
		if off == end || done[off] {
			continue
		}
		done[off] = true
		b, err := readRange(ctx, r.be, rn.key, off, end-off)
		if err != nil {
			return nil, fmt.Errorf("read lookup run %s: %w", rn.key, err)
		}
		es, err := f.DecodeBucket(b, id)
		if err != nil {
			return nil, fmt.Errorf("lookup run %s: %w", rn.key, err)
		}
		found = append(found, matching(es, ids)...)
	}
	return found, nil
}

// footer returns the fan-out table of run rn, reading it the first time.
func (r *Reader) footer(ctx context.Context, sc *shardCache, rn run) (*format.RunFooter, error) {
	r.mu.Lock()
	f := sc.footers[rn.key]
	r.mu.Unlock()
	if f != nil {
		return f, nil
	}
	flen := int64(format.RunFooterLenIn(sc.name))
	if rn.size < flen {
		return nil, fmt.Errorf("lookup run %s: %w: %d bytes", rn.key, format.ErrBadRun, rn.size)
	}
	tail, err := readRange(ctx, r.be, rn.key, rn.size-flen, flen)
	if err != nil {
		return nil, fmt.Errorf("read lookup run %s: %w", rn.key, err)
	}
	if f, err = format.DecodeRunFooterIn(sc.name, tail, rn.size); err != nil {
		return nil, fmt.Errorf("lookup run %s: %w", rn.key, err)
	}
	r.mu.Lock()
	sc.footers[rn.key] = f
	r.mu.Unlock()
	return f, nil
}

// matching returns the entries of es (sorted by ID) whose ID is one of ids.
func matching(es []format.RunEntry, ids []digest.Digest) []format.RunEntry {
	var out []format.RunEntry
	for _, id := range ids {
		i, _ := slices.BinarySearchFunc(es, id, func(e format.RunEntry, id digest.Digest) int {
			return compareID(e.ID, id)
		})
		for ; i < len(es) && es[i].ID == id; i++ {
			out = append(out, es[i])
		}
	}
	return out
}

func compareID(a, b digest.Digest) int {
	for i := range a {
		if a[i] != b[i] {
			return int(a[i]) - int(b[i])
		}
	}
	return 0
}
