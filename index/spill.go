package index

import (
	"fmt"
	"slices"
	"sync"

	"github.com/cas-ml/cas/digest"
)

// Spill is an Index for one process's own reading of a store (verify's
// view, gc's mark): it answers as Memory does, but keeps blob locations
// and file chunk lists in sorted runs on disk (see runStore), so that its
// memory stays bounded whatever the number of blobs and files. What stays
// in memory is what Memory keeps beside them, one entry per segment, pack
// or mark: none of them grows with the number of files of a store that
// reads its own segments.
//
// Prefer, as for Memory, picks between two copies of a blob; Spill asks it
// when the blob is looked up. Call Compact once the index is loaded: it
// leaves one run per kind, so that every lookup reads once. Close
// releases the run files.
type Spill struct {
	*Memory // segments, packs, damage, records, remote marks, stat cache

	smu   sync.RWMutex
	blobs *runStore // blob ID → blobOp records
	files *runStore // file digest → chunk list
}

var _ Index = (*Spill)(nil)

// Blob records in a Spill's runs: an op byte, then for an add the Blob
// without its ID (encodeValue).
const (
	blobAdd    byte = 0
	blobForget byte = 1
)

// spillBuffer is how many bytes of entries a Spill buffers per kind
// before writing them to a run.
const spillBuffer = 4 << 20

// NewSpill returns an empty Spill.
func NewSpill() *Spill { return newSpill(spillBuffer) }

func newSpill(buf int) *Spill {
	return &Spill{Memory: NewMemory(), blobs: newRunStore(buf), files: newRunStore(buf)}
}

// Blob implements Index.
func (s *Spill) Blob(id digest.Digest) (Blob, bool, error) {
	b, _, ok, err := s.lookup(id, false)
	return b, ok, err
}

// Alternatives returns the other copies of a blob that segments named,
// beside the one Blob returns, as Memory's does.
func (s *Spill) Alternatives(id digest.Digest) []Blob {
	_, alts, _, _ := s.lookup(id, true)
	return alts
}

// lookup replays the records of id (replay).
func (s *Spill) lookup(id digest.Digest, withAlts bool) (cur Blob, alts []Blob, ok bool, err error) {
	s.smu.RLock()
	recs, err := s.blobs.get(id)
	s.smu.RUnlock()
	if err != nil {
		return Blob{}, nil, false, err
	}
	return s.replay(id, recs, withAlts)
}

// replay applies the records of id as Memory.AddBlobs and ForgetBlobs
// would have: the first copy stays unless Prefer picks a later one (in
// another pack), a later record in the same pack replaces it; the others
// are alternatives, listed when withAlts.
func (s *Spill) replay(id digest.Digest, recs [][]byte, withAlts bool) (cur Blob, alts []Blob, ok bool, err error) {
	for _, rec := range recs {
		if len(rec) == 0 {
			return Blob{}, nil, false, errBadRun
		}
		if rec[0] == blobForget {
			cur, ok = Blob{}, false
			continue
		}
		b, err := decodeBlobValue(id, rec[1:])
		if err != nil {
			return Blob{}, nil, false, err
		}
		switch {
		case !ok, cur.Pack == b.Pack:
			cur, ok = b, true
		default:
			keep, other := cur, b
			if s.Prefer != nil && s.Prefer(cur, b) == b {
				keep, other = b, cur
			}
			cur = keep
			if withAlts && !slices.Contains(alts, other) {
				alts = append(alts, other)
			}
		}
	}
	return cur, alts, ok, nil
}

// AddBlobs implements Index.
func (s *Spill) AddBlobs(pack digest.Digest, blobs []Blob) error {
	return s.addBlobs(pack, blobs, true)
}

// AddRemoteBlobs implements Index.
func (s *Spill) AddRemoteBlobs(pack digest.Digest, blobs []Blob, marks []digest.Digest) error {
	if err := s.MarkRemote(marks); err != nil {
		return err
	}
	return s.addBlobs(pack, blobs, false)
}

// addBlobs records blobs and their pack, clearing their remote marks
// when unmark.
func (s *Spill) addBlobs(pack digest.Digest, blobs []Blob, unmark bool) error {
	s.smu.Lock()
	for _, b := range blobs {
		v := make([]byte, 1, 1+blobValueLen)
		v[0] = blobAdd
		if err := s.blobs.add(b.ID, append(v, b.encodeValue()...)); err != nil {
			s.smu.Unlock()
			return err
		}
	}
	s.smu.Unlock()
	m := s.Memory
	m.mu.Lock()
	defer m.mu.Unlock()
	m.packs[pack] = true
	if unmark && len(m.remote) > 0 {
		for _, b := range blobs {
			delete(m.remote, b.ID)
		}
		delete(m.remote, pack)
	}
	return nil
}

// ForgetBlobs implements Index.
func (s *Spill) ForgetBlobs(ids []digest.Digest) error {
	s.smu.Lock()
	defer s.smu.Unlock()
	for _, id := range ids {
		if err := s.blobs.add(id, []byte{blobForget}); err != nil {
			return err
		}
	}
	return nil
}

// Blobs implements Index, in order of blob ID.
func (s *Spill) Blobs(fn func(Blob) error) error {
	s.smu.RLock()
	defer s.smu.RUnlock()
	return s.blobs.each(func(id digest.Digest, recs [][]byte) error {
		cur, _, ok, err := s.replay(id, recs, false)
		if err != nil || !ok {
			return err
		}
		return fn(cur)
	})
}

// FileChunks implements Index.
func (s *Spill) FileChunks(file digest.Digest) ([]digest.Digest, bool, error) {
	s.smu.RLock()
	empty := s.files.empty()
	var recs [][]byte
	var err error
	if !empty {
		recs, err = s.files.get(file)
	}
	s.smu.RUnlock()
	if err != nil || len(recs) == 0 {
		return nil, false, err
	}
	chunks, err := decodeChunkList(recs[len(recs)-1])
	return chunks, err == nil, err
}

// AddFiles implements Index.
func (s *Spill) AddFiles(files map[digest.Digest][]digest.Digest) error {
	return s.addFiles(files, true)
}

// AddRemoteFiles implements Index.
func (s *Spill) AddRemoteFiles(files map[digest.Digest][]digest.Digest) error {
	ids := make([]digest.Digest, 0, len(files))
	for f := range files {
		ids = append(ids, f)
	}
	if err := s.MarkRemote(ids); err != nil {
		return err
	}
	return s.addFiles(files, false)
}

// addFiles records chunk lists, clearing their remote marks when unmark.
func (s *Spill) addFiles(files map[digest.Digest][]digest.Digest, unmark bool) error {
	s.smu.Lock()
	for f, chunks := range files {
		v := make([]byte, 0, len(chunks)*digest.Size)
		for _, c := range chunks {
			v = append(v, c[:]...)
		}
		if err := s.files.add(f, v); err != nil {
			s.smu.Unlock()
			return err
		}
	}
	s.smu.Unlock()
	m := s.Memory
	m.mu.Lock()
	defer m.mu.Unlock()
	if unmark && len(m.remote) > 0 {
		for f := range files {
			delete(m.remote, f)
		}
	}
	return nil
}

// Files implements Index, in order of file digest.
func (s *Spill) Files(fn func(digest.Digest) error) error {
	s.smu.RLock()
	defer s.smu.RUnlock()
	return s.files.each(func(f digest.Digest, _ [][]byte) error { return fn(f) })
}

func decodeChunkList(v []byte) ([]digest.Digest, error) {
	if len(v)%digest.Size != 0 {
		return nil, fmt.Errorf("%w: a chunk list of %d bytes", ErrCorrupt, len(v))
	}
	out := make([]digest.Digest, len(v)/digest.Size)
	for i := range out {
		copy(out[i][:], v[i*digest.Size:])
	}
	return out, nil
}

// Compact leaves the blobs and the files in one run each, so that every
// lookup reads once: call it when the index is loaded.
func (s *Spill) Compact() error {
	s.smu.Lock()
	defer s.smu.Unlock()
	if err := s.blobs.compact(); err != nil {
		return err
	}
	return s.files.compact()
}

// Reset implements Index.
func (s *Spill) Reset() error {
	s.smu.Lock()
	s.blobs.close()
	s.files.close()
	s.smu.Unlock()
	return s.Memory.Reset()
}

// Close implements Index: it releases the run files.
func (s *Spill) Close() error {
	s.smu.Lock()
	defer s.smu.Unlock()
	s.blobs.close()
	s.files.close()
	return nil
}

// DigestSet is a set of digests that keeps what it holds in sorted runs
// on disk (see runStore): its memory stays bounded whatever it holds. It
// is exact: Has never says yes for a digest not added. Safe for
// concurrent use.
type DigestSet struct {
	mu sync.RWMutex
	s  *runStore
}

// NewDigestSet returns an empty set.
func NewDigestSet() *DigestSet { return &DigestSet{s: newRunStore(4 << 20)} }

// Add adds d.
func (x *DigestSet) Add(d digest.Digest) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.s.add(d, nil)
}

// Has reports whether d was added.
func (x *DigestSet) Has(d digest.Digest) (bool, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	v, err := x.s.get(d)
	return len(v) > 0, err
}

// Each calls fn for every digest in the set, once each, in byte order.
func (x *DigestSet) Each(fn func(digest.Digest) error) error {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.s.each(func(d digest.Digest, _ [][]byte) error { return fn(d) })
}

// Close releases the set's run files.
func (x *DigestSet) Close() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.s.close()
}

// DigestMultimap maps digests to byte strings, any number per digest,
// kept in sorted runs on disk (see runStore): its memory stays bounded
// whatever it holds. Safe for concurrent use.
type DigestMultimap struct {
	mu sync.RWMutex
	s  *runStore
}

// NewDigestMultimap returns an empty map.
func NewDigestMultimap() *DigestMultimap { return &DigestMultimap{s: newRunStore(4 << 20)} }

// Add adds v (kept, not copied) to the values of k.
func (x *DigestMultimap) Add(k digest.Digest, v []byte) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.s.add(k, v)
}

// Get returns the values of k, in the order added.
func (x *DigestMultimap) Get(k digest.Digest) ([][]byte, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.s.get(k)
}

// Each calls fn for every digest, in byte order, with its values in the
// order added; they are fn's to keep.
func (x *DigestMultimap) Each(fn func(k digest.Digest, vals [][]byte) error) error {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.s.each(fn)
}

// Close releases the map's run files.
func (x *DigestMultimap) Close() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.s.close()
}
