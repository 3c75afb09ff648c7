package index

import (
	"slices"
	"strings"
	"sync"

	"github.com/cas-ml/cas/digest"
)

// Memory is an Index held in memory only.
type Memory struct {
	// Prefer, if set, picks between two locations of one blob (two
	// segments naming copies in two packs); by default the first stays.
	// Two records of a blob in one pack: the later stays.
	Prefer func(old, new Blob) Blob

	mu        sync.RWMutex
	blobs     map[digest.Digest]Blob
	files     map[digest.Digest][]digest.Digest
	segments  map[digest.Digest]bool
	storeSegs map[digest.Digest]bool
	damaged   map[digest.Digest]digest.Digest // blob → pack of its damaged copy
	alts      map[digest.Digest][]Blob
	records   map[digest.Digest]bool // outlive Reset
	remote    map[digest.Digest]bool
	packs     map[digest.Digest]bool
	stat      map[string][]StatEntry
}

var _ Index = (*Memory)(nil)

// NewMemory returns an empty in-memory index.
func NewMemory() *Memory {
	m := &Memory{}
	_ = m.Reset()
	return m
}

// Reset implements Index.
func (m *Memory) Reset() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.blobs = map[digest.Digest]Blob{}
	m.files = map[digest.Digest][]digest.Digest{}
	m.segments = map[digest.Digest]bool{}
	m.remote = map[digest.Digest]bool{}
	m.storeSegs = map[digest.Digest]bool{}
	if m.damaged == nil { // marks outlive a reset
		m.damaged = map[digest.Digest]digest.Digest{}
		m.records = map[digest.Digest]bool{}
	}
	m.alts = map[digest.Digest][]Blob{}
	m.packs = map[digest.Digest]bool{}
	m.stat = map[string][]StatEntry{}
	return nil
}

// Blob implements Index.
func (m *Memory) Blob(id digest.Digest) (Blob, bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	b, ok := m.blobs[id]
	return b, ok, nil
}

// AddBlobs implements Index.
func (m *Memory) AddBlobs(pack digest.Digest, blobs []Blob) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.addBlobsLocked(pack, blobs, true)
	return nil
}

// AddRemoteBlobs implements Index.
func (m *Memory) AddRemoteBlobs(pack digest.Digest, blobs []Blob, marks []digest.Digest) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range marks {
		m.remote[id] = true
	}
	m.addBlobsLocked(pack, blobs, false)
	return nil
}

// addBlobsLocked records blobs and their pack, clearing their remote
// marks when unmark; the caller holds m.mu.
func (m *Memory) addBlobsLocked(pack digest.Digest, blobs []Blob, unmark bool) {
	for _, b := range blobs {
		if unmark {
			delete(m.remote, b.ID)
		}
		old, ok := m.blobs[b.ID]
		switch {
		case !ok, old.Pack == b.Pack:
			// A later record of a blob in the same pack replaces the
			// earlier, as in Badger: a pull's segment, written from what
			// it checked, over what a bucket's segment said before.
			m.blobs[b.ID] = b
		default:
			keep, other := old, b
			if m.Prefer != nil && m.Prefer(old, b) == b {
				keep, other = b, old
			}
			m.blobs[b.ID] = keep
			if !slices.Contains(m.alts[b.ID], other) {
				m.alts[b.ID] = append(m.alts[b.ID], other)
			}
		}
	}
	m.packs[pack] = true
	if unmark {
		delete(m.remote, pack)
	}
}

// FileChunks implements Index.
func (m *Memory) FileChunks(file digest.Digest) ([]digest.Digest, bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	c, ok := m.files[file]
	return c, ok, nil
}

// AddFiles implements Index.
func (m *Memory) AddFiles(files map[digest.Digest][]digest.Digest) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for f, c := range files {
		m.files[f] = slices.Clone(c)
		delete(m.remote, f)
	}
	return nil
}

// AddRemoteFiles implements Index.
func (m *Memory) AddRemoteFiles(files map[digest.Digest][]digest.Digest) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for f, c := range files {
		m.remote[f] = true
		m.files[f] = slices.Clone(c)
	}
	return nil
}

// Files implements Index.
func (m *Memory) Files(fn func(digest.Digest) error) error {
	m.mu.RLock()
	fs := make([]digest.Digest, 0, len(m.files))
	for f := range m.files {
		fs = append(fs, f)
	}
	m.mu.RUnlock()
	for _, f := range fs {
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}

// HasSegment implements Index.
func (m *Memory) HasSegment(seg digest.Digest) (bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.segments[seg], nil
}

// MarkSegment implements Index.
func (m *Memory) MarkSegment(seg digest.Digest) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.segments[seg] = true
	return nil
}

// ForgetBlobs implements Index.
func (m *Memory) ForgetBlobs(ids []digest.Digest) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range ids {
		delete(m.blobs, id)
	}
	return nil
}

// Alternatives returns the other copies of a blob that segments named,
// beside the one Blob returns: a reader tries them when that one is
// damaged or gone.
func (m *Memory) Alternatives(id digest.Digest) []Blob {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return slices.Clone(m.alts[id])
}

// MarkDamaged implements Index.
func (m *Memory) MarkDamaged(blobs []Blob) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, b := range blobs {
		m.damaged[b.ID] = b.Pack
	}
	return nil
}

// Damaged implements Index.
func (m *Memory) Damaged(id digest.Digest) (digest.Digest, bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	p, ok := m.damaged[id]
	return p, ok, nil
}

// MarkRemote implements Index.
func (m *Memory) MarkRemote(ids []digest.Digest) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range ids {
		m.remote[id] = true
	}
	return nil
}

// Remote implements Index.
func (m *Memory) Remote(id digest.Digest) (bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.remote[id], nil
}

// AnyRemote implements Index.
func (m *Memory) AnyRemote() (bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.remote) > 0, nil
}

// MarkRecord implements Index.
func (m *Memory) MarkRecord(rec digest.Digest) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.records[rec] = true
	return nil
}

// HasRecord implements Index.
func (m *Memory) HasRecord(rec digest.Digest) (bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.records[rec], nil
}

// AnyDamaged implements Index.
func (m *Memory) AnyDamaged() (bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.damaged) > 0, nil
}

// MarkStoreSegment implements Index.
func (m *Memory) MarkStoreSegment(seg digest.Digest) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.segments[seg] = true
	m.storeSegs[seg] = true
	return nil
}

// StoreSegments implements Index.
func (m *Memory) StoreSegments(fn func(digest.Digest) error) error {
	m.mu.RLock()
	ss := make([]digest.Digest, 0, len(m.storeSegs))
	for s := range m.storeSegs {
		ss = append(ss, s)
	}
	m.mu.RUnlock()
	for _, s := range ss {
		if err := fn(s); err != nil {
			return err
		}
	}
	return nil
}

// HasPack implements Index.
func (m *Memory) HasPack(pack digest.Digest) (bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.packs[pack], nil
}

// Packs implements Index.
func (m *Memory) Packs(fn func(digest.Digest) error) error {
	m.mu.RLock()
	ps := make([]digest.Digest, 0, len(m.packs))
	for p := range m.packs {
		ps = append(ps, p)
	}
	m.mu.RUnlock()
	for _, p := range ps {
		if err := fn(p); err != nil {
			return err
		}
	}
	return nil
}

// Blobs implements Index.
func (m *Memory) Blobs(fn func(Blob) error) error {
	m.mu.RLock()
	bs := make([]Blob, 0, len(m.blobs))
	for _, b := range m.blobs {
		bs = append(bs, b)
	}
	m.mu.RUnlock()
	for _, b := range bs {
		if err := fn(b); err != nil {
			return err
		}
	}
	return nil
}

// StatDir implements Index.
func (m *Memory) StatDir(root, dir string) (map[string]StatEntry, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := map[string]StatEntry{}
	for _, e := range m.stat[root+"\x00"+dir] {
		out[e.Name] = e
	}
	return out, nil
}

// PutStatDir implements Index.
func (m *Memory) PutStatDir(root, dir string, entries []StatEntry, subdirs []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	prefix := root + "\x00" + dir
	if dir != "" {
		prefix += "/"
	}
	for k := range m.stat {
		rest, ok := strings.CutPrefix(k, prefix)
		if !ok || rest == "" || rest[0] == 0 {
			continue
		}
		name, _, _ := strings.Cut(rest, "/")
		if _, current := slices.BinarySearch(subdirs, name); !current {
			delete(m.stat, k)
		}
	}
	if len(entries) == 0 {
		delete(m.stat, root+"\x00"+dir)
	} else {
		m.stat[root+"\x00"+dir] = slices.Clone(entries)
	}
	return nil
}

// Persistent implements Index.
func (m *Memory) Persistent() bool { return false }

// Close implements Index.
func (m *Memory) Close() error { return nil }
