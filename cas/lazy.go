package cas

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/cas-ml/cas/cas/format"
	lookupidx "github.com/cas-ml/cas/cas/lookup"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
	"github.com/cas-ml/cas/remote"
)

// lazyRemote is how a store reads a remote whose lookup index covers its
// segments (format.LookupFormatKey): instead of loading every segment
// when the remote is attached, reads look the IDs they miss up, and what
// they learn goes into the index marked as the remote's (as a loaded
// segment's content would): reads use it, a push never counts it stored.
type lazyRemote struct {
	be     remote.Backend
	reader *lookupidx.Reader

	mu      sync.Mutex
	missing map[digest.Digest]bool // looked up and not found
	learned map[digest.Digest]bool // blobs and files the lookup index placed
	hits    map[digest.Digest]int  // lookups answered, by segment
	loaded  map[digest.Digest]bool // segments loaded whole
	big     map[digest.Digest]bool // segments found too big to load at the first lookup
	synced  bool                   // every segment loaded (or being): the lookup index is out of the way

	syncMu  sync.Mutex // held by syncLazy while it works
	syncErr error      // what it ended with
}

func newLazyRemote(be remote.Backend, reader *lookupidx.Reader) *lazyRemote {
	return &lazyRemote{be: be, reader: reader,
		missing: map[digest.Digest]bool{}, learned: map[digest.Digest]bool{}, big: map[digest.Digest]bool{}, hits: map[digest.Digest]int{}, loaded: map[digest.Digest]bool{}}
}

// emptyFile is the digest of the empty file.
var emptyFile = digest.Of(nil)

// segmentAfter is how many lookups one segment answers before it is
// loaded whole: a restore of many files pushed together then costs one
// segment, not one lookup per file, while one file costs no segment.
const segmentAfter = 4

// hasLookupIndex reports whether be keeps a lookup index covering its
// segments, with a Reader of its own.
func hasLookupIndex(ctx context.Context, be remote.Backend) (bool, error) {
	return hasLookupIndexBy(ctx, lookupidx.NewReader(be, 1), be)
}

// hasLookupIndexBy is hasLookupIndex through rd, which keeps the listing
// of the wide area it makes for its lookups: the markers there say so in
// that one request; without them (an index of version 1, or a crash
// before the marker) the format key does.
func hasLookupIndexBy(ctx context.Context, rd *lookupidx.Reader, be remote.Backend) (bool, error) {
	if ok, err := rd.Probe(ctx); err != nil || ok {
		if err != nil {
			return false, fmt.Errorf("check the lookup index on %s: %w", be.Location(), err)
		}
		return true, nil
	}
	_, err := be.Stat(ctx, format.LookupFormatKey)
	if err == nil {
		return true, nil
	}
	if isNotFound(err) {
		return false, nil
	}
	return false, fmt.Errorf("check %s on %s: %w", format.LookupFormatKey, be.Location(), err)
}

func isNotFound(err error) bool { return err != nil && errors.Is(err, remote.ErrNotFound) }

// locate returns where blob id is; on a read path, an ID the index lacks
// is looked up on the remote (lazy mode).
func (r *Repo) locate(ctx context.Context, id digest.Digest) (index.Blob, bool, error) {
	b, ok, err := r.Index.Blob(id)
	if err != nil || ok || r.lazy == nil {
		return b, ok, err
	}
	r.awaitSync()
	if b, ok, err := r.Index.Blob(id); err != nil || ok {
		return b, ok, err
	}
	if err := r.need(ctx, id); err != nil {
		return index.Blob{}, false, err
	}
	return r.Index.Blob(id)
}

// chunksOf returns the chunk list of a multi-chunk file (ok false for a
// file of one chunk), looking it up on the remote like locate.
func (r *Repo) chunksOf(ctx context.Context, file digest.Digest) ([]digest.Digest, bool, error) {
	chunks, ok, err := r.Index.FileChunks(file)
	if err != nil || ok || r.lazy == nil {
		return chunks, ok, err
	}
	r.awaitSync()
	if chunks, ok, err := r.Index.FileChunks(file); err != nil || ok {
		return chunks, ok, err
	}
	if _, known, err := r.Index.Blob(file); err != nil || known {
		return nil, false, err // one chunk, known
	}
	if err := r.need(ctx, file); err != nil {
		return nil, false, err
	}
	return r.Index.FileChunks(file)
}

// need makes the index know id, as a blob or a file, if the lazy remote
// does: it looks id up and, when the lookup index has nothing, loads every
// segment of the remote (once), for the lookup index may lack what an
// older cas uploaded.
func (r *Repo) need(ctx context.Context, id digest.Digest) error {
	if id == emptyFile {
		return nil // stored nowhere: its digest says it all
	}
	if err := r.lookUp(ctx, id); err != nil {
		return err
	}
	if known, err := r.knows(id); err != nil || known {
		return err
	}
	_, err := r.syncLazy(ctx)
	return err
}

// knows reports whether the index knows id as a blob or a file.
func (r *Repo) knows(id digest.Digest) (bool, error) {
	if _, ok, err := r.Index.Blob(id); err != nil || ok {
		return ok, err
	}
	_, ok, err := r.Index.FileChunks(id)
	return ok, err
}

// lookUp asks the remote's lookup index about ids and records what it
// answers; a segment that answered segmentAfter lookups is loaded whole.
func (r *Repo) lookUp(ctx context.Context, ids ...digest.Digest) error {
	lz := r.lazy
	lz.mu.Lock()
	todo := ids[:0:0]
	for _, id := range ids {
		if !lz.missing[id] {
			todo = append(todo, id)
		}
	}
	synced := lz.synced
	lz.mu.Unlock()
	if len(todo) == 0 || synced {
		return nil
	}
	found, err := lz.reader.Lookup(ctx, todo)
	if err != nil {
		return fmt.Errorf("look up on %s: %w", lz.be.Location(), err)
	}
	seg := &format.Segment{Files: map[digest.Digest][]digest.Digest{}}
	var load []digest.Digest
	segs := map[digest.Digest]format.RunEntry{}
	lz.mu.Lock()
	for _, id := range todo {
		es := found[id]
		if len(es) == 0 {
			lz.missing[id] = true
		}
		for _, e := range es {
			if e.Kind == format.RunFile {
				seg.Files[e.ID] = e.Chunks
			} else {
				seg.Blobs = append(seg.Blobs, e.Blob)
			}
			lz.learned[e.ID] = true
		}
		if len(es) > 0 {
			segs[es[0].Segment] = es[0]
		}
	}
	// A segment counts once per lookup: the chunks of one big file are
	// one question, the files of a tree many. A small one is loaded at
	// once (it likely answers the next questions: the rest of the path,
	// the file's chunks); a larger one once it has answered a few. An
	// entry of a wide run says how large its segment is; one of a shard's
	// run does not, and the read that tries is bounded.
	var small []digest.Digest
	for s, e := range segs {
		lz.hits[s]++
		if e.Wide && (e.SegmentSize == 0 || e.SegmentSize > smallLoad) {
			lz.big[s] = true
		}
		switch {
		case lz.loaded[s] || s.IsZero():
		case lz.hits[s] >= segmentAfter:
			lz.loaded[s] = true
			load = append(load, s)
		case !lz.big[s]:
			lz.loaded[s] = true
			small = append(small, s)
		}
	}
	lz.mu.Unlock()
	if err := indexSegmentFrom(r.Index, seg, false); err != nil {
		return err
	}
	for _, s := range small {
		if ok, err := r.loadSmallSegment(ctx, lz.be, s); err != nil || !ok {
			lz.mu.Lock()
			lz.big[s], lz.loaded[s] = true, false
			lz.mu.Unlock()
			if err != nil && !isNotFound(err) {
				r.warn(fmt.Errorf("load index segment %s: %w", s.Short(), err))
			}
		}
	}
	for _, s := range load {
		if err := r.loadSegmentFrom(ctx, lz.be, format.SegmentKey(s)); err != nil && !isNotFound(err) {
			r.warn(fmt.Errorf("load index segment %s: %w", s.Short(), err))
		}
	}
	return nil
}

// smallLoad is the largest segment a lookup loads at its first answer:
// the read is bounded by it whatever the segment's size.
const smallLoad = 128 << 10

// loadSmallSegment loads segment s of be into the index if it is at most
// smallLoad bytes, with one bounded read; it reports whether it did.
func (r *Repo) loadSmallSegment(ctx context.Context, be remote.Backend, s digest.Digest) (bool, error) {
	rc, err := be.Get(ctx, format.SegmentKey(s), 0, smallLoad+1)
	if err != nil {
		return false, err
	}
	data, err := io.ReadAll(io.LimitReader(rc, smallLoad+1))
	rc.Close()
	if err != nil || len(data) > smallLoad {
		return false, err
	}
	if digest.Of(data) != s {
		return false, &CorruptError{What: "index segment", ID: s}
	}
	seg, err := format.DecodeSegment(data)
	if err != nil {
		return false, err
	}
	if err := indexSegmentFrom(r.Index, seg, false); err != nil {
		return false, err
	}
	return true, r.Index.MarkSegment(s)
}

// syncLazy loads every segment of the lazy remote: what a read does when
// the lookup index led it astray (an entry naming a pack a gc deleted).
// It reports whether it did anything.
//
// It holds syncMu while it works, and a read that finds the index lacking
// an ID waits on it (awaitSync): reads running beside the sync must not
// see the index between its forgetting and its loading.
func (r *Repo) syncLazy(ctx context.Context) (bool, error) {
	lz := r.lazy
	if lz == nil {
		return false, nil
	}
	lz.syncMu.Lock()
	defer lz.syncMu.Unlock()
	lz.mu.Lock()
	done := lz.synced
	lz.synced = true
	var learned []digest.Digest
	for id := range lz.learned {
		learned = append(learned, id)
	}
	lz.mu.Unlock()
	if done {
		return lz.syncErr == nil, lz.syncErr // synced already: a read may try again
	}
	lz.syncErr = r.forgetAndSync(ctx, learned)
	return true, lz.syncErr
}

// awaitSync waits for a sync of the lazy remote that is under way.
func (r *Repo) awaitSync() {
	if lz := r.lazy; lz != nil {
		lz.syncMu.Lock()
		lz.syncMu.Unlock() //nolint:staticcheck // an empty critical section: waiting is the point
	}
}

func (r *Repo) forgetAndSync(ctx context.Context, learned []digest.Digest) error {
	lz := r.lazy
	// What the lookup index said goes, so that the segments' word is
	// taken instead (where the store's own segments do not place them).
	var theirs []digest.Digest
	for _, id := range learned {
		if remote, err := r.Index.Remote(id); err != nil {
			return err
		} else if remote {
			theirs = append(theirs, id)
		}
	}
	if err := r.Index.ForgetBlobs(theirs); err != nil {
		return err
	}
	if err := r.syncSegments(ctx, lz.be, false, false); err != nil {
		return err
	}
	// A segment a lookup loaded whole is marked loaded, so the sync passed
	// it over, yet what it placed that a lookup placed too was forgotten
	// just now: load it again.
	lz.mu.Lock()
	var again []digest.Digest
	for s, ok := range lz.loaded {
		if ok {
			again = append(again, s)
		}
	}
	lz.mu.Unlock()
	for _, s := range again {
		if err := r.loadSegmentFrom(ctx, lz.be, format.SegmentKey(s)); err != nil && !isNotFound(err) {
			r.warn(fmt.Errorf("load index segment %s: %w", s.Short(), err))
		}
	}
	return nil
}

// fromLookup reports whether id's place came from the lazy remote's lookup
// index: a read of it that fails says nothing about the data's copies.
func (r *Repo) fromLookup(id digest.Digest) bool {
	lz := r.lazy
	if lz == nil {
		return false
	}
	lz.mu.Lock()
	defer lz.mu.Unlock()
	return lz.learned[id] && !lz.synced
}

// lookUpMissing looks up, in one batch, those of ids the index lacks (lazy
// mode only): the chunks of one file cost one round of requests.
func (r *Repo) lookUpMissing(ctx context.Context, ids []digest.Digest) error {
	if r.lazy == nil || len(ids) < 2 {
		return nil
	}
	var todo []digest.Digest
	for _, id := range ids {
		if _, ok, err := r.Index.Blob(id); err != nil {
			return err
		} else if !ok {
			todo = append(todo, id)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	return r.lookUp(ctx, todo...)
}

// retryLazy reports whether a read that failed with err should run again:
// it failed on damage or a missing object, and the store reads a lazy
// remote whose every segment it has now loaded (syncLazy), replacing what
// the lookup index said (a stale or forged entry) with what the segments
// say.
func (r *Repo) retryLazy(ctx context.Context, err error) bool {
	var ce *CorruptError
	if err == nil || r.lazy == nil || ctx.Err() != nil || !errors.As(err, &ce) && !isNotFound(err) {
		return false
	}
	did, serr := r.syncLazy(ctx)
	if serr != nil {
		r.warn(serr)
	}
	return did && serr == nil
}
