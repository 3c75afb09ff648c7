package cas

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/cas/gc"
	"github.com/cas-ml/cas/clock"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
	"github.com/cas-ml/cas/remote"
)

// Garbage collection is package gc's two-phase protocol; the repository
// gives it a Store whose Mark is the rule of what is reachable (gcmark.go)
// and guards its own writes against it (gcguard.go).

// The gc package's names, as cas callers know them.
type (
	// GCOptions tune a garbage collection.
	GCOptions = gc.Options
	// GCReport says what a garbage collection found, planned and freed.
	GCReport = gc.Report
)

const (
	// DefaultGrace is how old an unreferenced pack must be before gc
	// plans to delete it, and a plan before gc carries it out.
	DefaultGrace = gc.DefaultGrace
	// NoGrace, as GCOptions.Grace, deletes unreferenced packs at once.
	NoGrace = gc.NoGrace
)

var (
	// ErrGCMissing: gc stopped because refs, pins or runs name data the
	// store lacks.
	ErrGCMissing = gc.ErrMissing
	// ErrGCBusy: another gc is sweeping the same store.
	ErrGCBusy = gc.ErrBusy
)

// GC collects garbage on be (the local store when be is nil): see
// package gc for the two phases. Run on a remote, it reads that remote
// alone; nothing local is trusted or changed. What it keeps is what
// refs (with their history) and pins name, with the whole closure of
// every manifest among them (Keeps), and, on the local store, what the
// store still owes its remotes (PendingUploads): no caller can make it
// forget that.
func (r *Repo) GC(ctx context.Context, be remote.Backend, opts GCOptions) (*GCReport, error) {
	if be == nil {
		be = r.Backend
	}
	s := &gcStore{r: r, be: be}
	defer s.close()
	return gc.Collect(ctx, s, opts)
}

// gcStore is the repository as package gc sees it: one backend, marked
// from what it alone holds.
type gcStore struct {
	r     *Repo
	be    remote.Backend
	marks []*gcMarks // to release when the collection ends
	// What a sweep deleted, for the lookup index (purgeLookup).
	gone   map[digest.Digest]bool
	shards map[string]bool
}

func (s *gcStore) close() {
	for _, m := range s.marks {
		m.close()
	}
}

func (s *gcStore) Backend() remote.Backend { return s.be }
func (s *gcStore) Clock() clock.Clock      { return s.r.clk() }
func (s *gcStore) Connections() int        { return s.r.transfers() }

func (s *gcStore) Mark(ctx context.Context) (*gc.Marks, error) {
	// On the store's own backend, what it owes its remotes is kept too
	// (read at each mark: a sweep marks again).
	var owed []Object
	if s.be == s.r.Backend {
		var err error
		if owed, err = s.r.pendingRoots(); err != nil {
			return nil, err
		}
	}
	m, err := gcMark(ctx, s.be, owed)
	if err != nil {
		return nil, err
	}
	s.marks = append(s.marks, m)
	return &gc.Marks{Packs: m.packs, Live: m.live, Unreadable: m.unreadable, Roots: m.roots, PendingUploads: len(owed), Segments: len(m.segments),
		Rewrite: func(ctx context.Context, del map[digest.Digest]bool, all bool) ([]string, error) {
			old, err := s.r.gcRewriteSegments(ctx, s.be, m, del, all)
			if err == nil {
				s.noteRewrite(m, del)
			}
			return old, err
		}}, nil
}

// Changed: the local index may hold what deleted packs and segments
// said; a remote's is read afresh by each reader.
func (s *gcStore) Changed(ctx context.Context) error {
	if s.be != s.r.Backend {
		return s.purgeLookup(ctx)
	}
	if _, _, err := s.r.RebuildIndex(ctx); err != nil {
		return fmt.Errorf("gc: rebuild the local index: %w", err)
	}
	return nil
}

// gcMarks is what a mark found on a backend. What it holds in memory
// is one entry per pack (and the blobs of orphan packs): the blobs of the
// store's segments are in a Spill, the trees marked in a DigestSet.
type gcMarks struct {
	view           *Repo // the backend alone, with an index from its segments and orphan packs
	idx            *index.Spill
	packs          map[digest.Digest]remote.ObjectInfo
	live           map[digest.Digest]bool // packs holding something reachable
	unreadable     map[digest.Digest]bool // packs whose contents are unknown: never deleted
	orphans        map[digest.Digest][]index.Blob
	segments       []string
	segPacks       map[string][]digest.Digest // the packs each segment names
	roots, missing int
	firstMissing   string
	goneShards     map[string]bool // lookup shards of blobs in packs a sweep deletes
}

// close releases the view's index.
func (m *gcMarks) close() { m.idx.Close() }

// gcMark marks every pack reachable from be's refs and pins, and from
// owed (the objects of the uploads the local store owes its remotes, when
// be is that store's backend).
func gcMark(ctx context.Context, be remote.Backend, owed []Object) (*gcMarks, error) {
	m, err := gcView(ctx, be)
	if err != nil {
		return nil, err
	}
	roots, err := gcRoots(ctx, m.view)
	if err == nil {
		roots = append(roots, owed...)
		m.roots = len(roots)
		err = m.markFrom(ctx, roots)
	}
	if err == nil && m.missing > 0 {
		// What a missing tree or chunk list would have kept cannot be
		// told: collecting now could delete it.
		err = &gc.MissingError{Objects: m.missing, Location: be.Location(), First: m.firstMissing}
	}
	if err != nil {
		m.close()
		return nil, err
	}
	return m, nil
}

// gcView reads be alone: its index segments into a fresh index, its
// packs, and the trailers of the packs no segment names (orphans).
func gcView(ctx context.Context, be remote.Backend) (*gcMarks, error) {
	idx := index.NewSpill()
	view := newView(be, idx, nil)
	m := &gcMarks{view: view, idx: idx, packs: map[digest.Digest]remote.ObjectInfo{}, live: map[digest.Digest]bool{},
		unreadable: map[digest.Digest]bool{}, orphans: map[digest.Digest][]index.Blob{}}
	if err := m.load(ctx, be); err != nil {
		idx.Close()
		return nil, err
	}
	return m, nil
}

func (m *gcMarks) load(ctx context.Context, be remote.Backend) error {
	view := m.view
	err := be.List(ctx, format.SegmentPrefix, func(oi remote.ObjectInfo) error {
		if _, err := digest.ParseHex(strings.TrimPrefix(oi.Key, format.SegmentPrefix)); err == nil {
			m.segments = append(m.segments, oi.Key)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("gc: list index segments on %s: %w", be.Location(), err)
	}
	m.segPacks = make(map[string][]digest.Digest, len(m.segments))
	for _, key := range m.segments {
		fs, err := fetchSegment(ctx, be, key)
		if err != nil {
			return fmt.Errorf("gc: %w: gc stops", err)
		}
		packs, err := indexSegment(view.Index, fs, true)
		fs.close()
		if err != nil {
			return err
		}
		m.segPacks[key] = packs
	}
	err = be.List(ctx, format.PackPrefix, func(oi remote.ObjectInfo) error {
		if id, err := format.PackIDFromKey(oi.Key); err == nil {
			m.packs[id] = oi
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("gc: list packs on %s: %w", be.Location(), err)
	}
	// A sweep that died after deleting packs and before deleting the
	// segments that named them left segments naming packs that are gone:
	// where a blob is also in a pack that is there (a later push stored
	// it again), the index gives that copy, and the mark (located) takes
	// a gone pack for nothing. (A pack a segment names and the listing
	// lacks can only be deleted: packs are written before the segments
	// that name them, and the segments were read before the packs were
	// listed.)
	m.idx.Prefer = func(old, new index.Blob) index.Blob {
		if !m.there(old.Pack) && m.there(new.Pack) {
			return new
		}
		return old
	}
	for _, id := range gc.SortedDigests(m.packs) {
		if known, _ := view.Index.HasPack(id); known {
			continue
		}
		blobs, err := view.readPackTrailer(ctx, id, m.packs[id].Size)
		if err != nil {
			m.unreadable[id] = true
			continue
		}
		m.orphans[id] = blobs
		_ = view.Index.AddBlobs(id, blobs)
	}
	return m.idx.Compact()
}

// there reports whether pack p is on the backend, as the mark listed it.
func (m *gcMarks) there(p digest.Digest) bool {
	_, ok := m.packs[p]
	return ok
}

// located returns where the index says blob id is, if that pack is on
// the backend.
func (m *gcMarks) located(id digest.Digest) (index.Blob, bool) {
	b, ok, _ := m.view.Index.Blob(id)
	return b, ok && m.there(b.Pack)
}

// markFrom marks what roots keep: every object's packs and, for a
// manifest, its whole closure (Keeps). A part the store lacks of a
// manifest a ref or pin marked as one is missing as a tree would be:
// what it keeps cannot be told.
func (m *gcMarks) markFrom(ctx context.Context, roots []Object) error {
	seenTree := index.NewDigestSet()
	defer seenTree.Close()
	expanded := map[digest.Digest]bool{}
	for len(roots) > 0 {
		o := roots[0]
		roots = roots[1:]
		if err := m.mark(ctx, o.Digest, o.Kind, o.Size, seenTree); err != nil {
			return err
		}
		if o.Kind == KindDir || expanded[o.Digest] {
			continue
		}
		expanded[o.Digest] = true
		// A file no ref or pin marked a manifest is one only by its looks
		// (a manifest of another store, pushed as data): what of it this
		// store holds is kept, what it lacks stops nothing.
		marked := o.Type == TypeManifest
		kept, err := m.view.Keeps(ctx, &o)
		if err != nil {
			return fmt.Errorf("gc: %w", err)
		}
		for _, k := range kept {
			switch {
			case k.Err == nil:
				roots = append(roots, k.Object)
			case marked:
				m.missed(fmt.Sprintf("%s %s of manifest %s", k.Part, k.Part.Digest.Short(), k.Part.Of.Short()))
			}
		}
	}
	return nil
}

// mark marks the packs holding object d and, for a tree, everything
// below it (each tree once).
func (m *gcMarks) mark(ctx context.Context, d digest.Digest, kind Kind, size int64, seenTree *index.DigestSet) error {
	view := m.view
	if kind != KindDir {
		chunks, err := view.fileChunks(ctx, d, size)
		if err != nil {
			return err
		}
		for _, c := range chunks {
			if ok, err := m.markCopy(ctx, c); err != nil {
				return err
			} else if !ok {
				m.missed(fmt.Sprintf("chunk %s of file %s", c.Short(), d.Short()))
			}
		}
		return nil
	}
	if seen, err := seenTree.Has(d); err != nil || seen {
		return err
	}
	if err := seenTree.Add(d); err != nil {
		return err
	}
	if ok, err := m.markCopy(ctx, d); err != nil {
		return err
	} else if !ok {
		m.missed("tree " + d.Short())
		return nil
	}
	t, err := view.ReadTree(ctx, d)
	if err != nil {
		return fmt.Errorf("gc: tree %s: %w: gc stops, as it cannot tell what the tree keeps", d.Short(), err)
	}
	for _, e := range t.Entries {
		if err := m.mark(ctx, e.Digest, e.Kind, e.Size, seenTree); err != nil {
			return err
		}
	}
	return nil
}

// markCopy marks live the pack of a sound copy of blob id, and reports
// whether the backend holds one. Where the segments name copies in
// several packs on the backend (a chunk found damaged and stored again by
// a push, or stored twice by concurrent pushes), the copies are read and
// checked in turn, the one the index gives first: the first sound one is
// kept, and a pack holding only other copies may go. When none reads
// sound, every copy is kept: gc cannot tell which to keep. A blob with
// one copy is not read: whatever it is, it is the only one.
func (m *gcMarks) markCopy(ctx context.Context, id digest.Digest) (bool, error) {
	b, ok := m.located(id)
	if !ok {
		return false, nil
	}
	copies := []index.Blob{b}
	for _, alt := range m.view.alternatives(id) {
		if alt.Pack != b.Pack && m.there(alt.Pack) && !slices.Contains(copies, alt) {
			copies = append(copies, alt)
		}
	}
	if len(copies) == 1 {
		m.live[b.Pack] = true
		return true, nil
	}
	for _, c := range copies {
		_, err := m.view.readBlobAt(ctx, c, nil)
		if err == nil {
			m.live[c.Pack] = true
			return true, nil
		}
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
	}
	for _, c := range copies {
		m.live[c.Pack] = true
	}
	return true, nil
}

// missed counts an object a root needs that the store lacks.
func (m *gcMarks) missed(what string) {
	if m.missing == 0 {
		m.firstMissing = what
	}
	m.missing++
}

// gcRoots lists what the refs (targets and history) and pins (targets and
// roots) of view's backend point at.
func gcRoots(ctx context.Context, view *Repo) ([]Object, error) {
	refs, err := view.Refs(ctx)
	if err != nil {
		return nil, fmt.Errorf("gc: %w: gc stops, as it cannot tell what the refs keep", err)
	}
	pins, err := view.Pins(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("gc: %w: gc stops, as it cannot tell what the pins keep", err)
	}
	var roots []Object
	for _, ref := range refs {
		roots = append(roots, Object{Digest: ref.Target, Kind: ref.Kind, Size: ref.Size, Name: ref.File, Type: ref.Type})
		for _, d := range ref.Previous {
			if o, err := view.objectOf(ctx, d, ""); err == nil {
				roots = append(roots, *o)
			} else {
				// Not in the store: the mark counts it missing and gc stops.
				roots = append(roots, Object{Digest: d, Kind: KindFile, Size: 1})
			}
		}
	}
	for _, p := range pins {
		roots = append(roots, p.Object())
		for _, o := range p.Roots {
			roots = append(roots, Object{Digest: o.Digest, Kind: o.Kind, Size: o.Size})
		}
	}
	return roots, nil
}

// gcRewriteSegments writes one index segment holding what the segments
// naming deleted packs (all segments, with all) say of the packs that
// stay, plus the blobs of live packs that no segment names (left by an
// interrupted push, then reused), and returns the keys of the segments it
// replaces. Entries naming packs that are gone are dropped.
//
// The segments are read again as they stream, not kept from the mark,
// and what the new segment holds is gathered in runs on disk, then
// encoded as it streams: what the rewrite holds in memory is the blobs of
// one pack at a time (and of the orphan packs), whatever the store holds.
func (r *Repo) gcRewriteSegments(ctx context.Context, be remote.Backend, m *gcMarks, del map[digest.Digest]bool, all bool) ([]string, error) {
	stays := func(b index.Blob) bool {
		_, there := m.packs[b.Pack]
		return there && !del[b.Pack]
	}
	// The segments to replace name a pack that goes (or is gone already:
	// an earlier sweep died before it replaced them); the mark said which
	// packs each names, so only those are read again.
	var old []string
	for _, key := range m.segments {
		if all || slices.ContainsFunc(m.segPacks[key], func(p digest.Digest) bool { return !stays(index.Blob{Pack: p}) }) {
			old = append(old, key)
		}
	}
	// A live orphan's blobs are vouched for only once read whole and
	// checked, as a push adopts orphans: its trailer alone proves nothing.
	adopted := map[digest.Digest][]index.Blob{}
	vouched := map[digest.Digest]bool{} // the blobs of adopted orphans
	for _, id := range gc.SortedDigests(m.orphans) {
		if !m.live[id] {
			continue
		}
		var good []index.Blob
		err := m.view.readPack(ctx, format.PackKey(id), func(b index.Blob, _ []byte, berr error) error {
			if berr == nil {
				good = append(good, b)
				vouched[b.ID] = true
			}
			return nil
		})
		if err != nil {
			good = nil // unreadable: named by no segment, as before
		}
		adopted[id] = good
	}
	// A file stays listed while every chunk of it is in a pack that stays,
	// where the index looks first (a live file's chunks are all in live
	// packs: the mark looked there), and, in a live orphan, was vouched for.
	survives := func(id digest.Digest) (bool, error) {
		b, ok, err := m.view.Index.Blob(id)
		if err != nil || !ok || !stays(b) {
			return false, err
		}
		if _, orphan := m.orphans[b.Pack]; orphan && m.live[b.Pack] {
			return vouched[id], nil
		}
		return true, nil
	}
	seg := newSegmentSpool()
	defer seg.close()
	for _, key := range old {
		err := scanSegment(ctx, be, key, format.SegmentVisitor{
			Blob: func(b index.Blob) error {
				if !stays(b) {
					if del[b.Pack] {
						m.noteGone(b.ID)
					}
					return nil
				}
				return seg.addBlob(b)
			},
			File: seg.addFile,
		})
		if err != nil {
			return nil, fmt.Errorf("gc: %w", err)
		}
	}
	for _, id := range gc.SortedDigests(adopted) {
		for _, b := range adopted[id] {
			if stays(b) {
				if err := seg.addBlob(b); err != nil {
					return nil, err
				}
			}
		}
	}
	// The lookup index places adopted blobs before a segment does.
	if err := r.gcLookupAdd(ctx, be, adopted, m.live); err != nil {
		return nil, err
	}
	key, err := seg.store(ctx, be, survives)
	if err != nil || key == "" {
		return old, err
	}
	return slices.DeleteFunc(old, func(k string) bool { return k == key }), nil
}
