package cas

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
	"github.com/cas-ml/cas/remote"
)

// Garbage collection runs in two phases, one `cas gc` apart, so that a
// push on another machine never loses an object it relied on:
//
//  1. Mark. Everything reachable from refs (with their history), pins
//     (with their roots) and the manifests they name is live. Packs that
//     hold nothing live and are older than the grace period are written
//     down in a plan, gc/plans/ID. Nothing is deleted.
//  2. Sweep, at a later gc, once the plan is older than the grace period.
//     gc writes gc/sweeps/ID, reads the keep markers (gc/keeps/…) that
//     pushes left for condemned packs they rely on, marks again from the
//     refs and pins of that moment, and deletes the plan's packs that are
//     still unreferenced, rewriting the index segments that named them.
//     It then records what it deleted in gc/done/ID and removes the plan.
//
// A push, before it writes a ref or pin, looks for plans (GuardGC): if
// one condemns a pack the push needs, it leaves a keep marker and checks
// that no sweep of that plan has begun; if one has, it waits for the
// sweep to end and stores again whatever was deleted. A push that wrote
// its ref before the sweep is safe because the sweep marks again. The
// one assumption is that no push takes longer than the grace period
// between reading the store and writing its ref.
//
// Keys under gc/ (docs/FORMAT.md): plans/ID, sweeps/ID, keeps/ID and
// done/ID, JSON; IDs sort by time.
const (
	gcPrefix      = "gc/"
	gcPlansPrefix = gcPrefix + "plans/"
	gcSweepPrefix = gcPrefix + "sweeps/"
	gcKeepPrefix  = gcPrefix + "keeps/"
	gcDonePrefix  = gcPrefix + "done/"
)

// DefaultGrace is how old an unreferenced pack must be before GC plans
// to delete it, and how old a plan must be before GC carries it out.
const DefaultGrace = 24 * time.Hour

// gcPlan lists the packs a mark phase found unreferenced and old; the
// sweep of a later GC deletes those still unreferenced.
type gcPlan struct {
	ID      string          `json:"id"`
	Created time.Time       `json:"created"`
	Packs   []digest.Digest `json:"packs"`
	Bytes   int64           `json:"bytes"`
}

// gcKeep is a push's note that it relies on condemned packs.
type gcKeep struct {
	Created time.Time       `json:"created"`
	Packs   []digest.Digest `json:"packs"`
}

// gcDone records what a sweep deleted, so that every index that cached
// those packs' blobs learns to forget them.
type gcDone struct {
	ID      string          `json:"id"`
	Created time.Time       `json:"created"`
	Packs   []digest.Digest `json:"packs"`
}

// GCOptions tune a garbage collection.
type GCOptions struct {
	// stepHook, set by tests, is called at each step of a sweep; an error
	// stops the sweep there, as a kill would (a sweep leaves nothing to
	// undo).
	stepHook func(step string) error

	// Grace is the least age of a pack GC deletes, and of a plan it
	// carries out. Zero means DefaultGrace; use NoGrace for none.
	Grace time.Duration
	// DryRun reports what would be planned and freed; nothing is written.
	DryRun bool
}

// NoGrace, as GCOptions.Grace, deletes unreferenced packs at once, in one
// GC: only safe when nothing else writes to the store.
const NoGrace = time.Duration(-1)

// GCReport says what a GC found, planned and freed.
type GCReport struct {
	Location  string  `json:"location"`
	DryRun    bool    `json:"dry_run,omitempty"`
	Grace     float64 `json:"grace_seconds"`
	Roots     int     `json:"roots"`
	Packs     int     `json:"packs"`
	LivePacks int     `json:"live_packs"`
	LiveBytes int64   `json:"live_bytes"`
	// Young counts unreferenced packs spared for being younger than the
	// grace period.
	Young      int   `json:"young_packs"`
	YoungBytes int64 `json:"young_bytes"`
	// Planned is what this GC condemned: a later GC deletes it, from
	// SweepAfter on, unless something references it by then.
	Planned    GCCount    `json:"planned"`
	Plan       string     `json:"plan,omitempty"`
	SweepAfter *time.Time `json:"sweep_after,omitempty"`
	// Pending is what earlier plans condemned that is not due yet.
	Pending GCCount `json:"pending"`
	// Freed is what this GC deleted (or would, with DryRun).
	Freed GCCount `json:"freed"`
	// Spared counts condemned packs that something references again.
	Spared int `json:"spared"`
	// Retained counts packs the backend refused to delete (Object Lock).
	Retained int `json:"retained,omitempty"`
	// Segments counts index segments rewritten (replaced by one new one).
	Segments int `json:"segments_rewritten"`
}

// GCCount is a number of packs and their bytes.
type GCCount struct {
	Packs int   `json:"packs"`
	Bytes int64 `json:"bytes"`
}

// GC collects garbage on be (the local store when be is nil): see the
// comment at the top of this file for the two phases. Run on a remote,
// it reads that remote alone; nothing local is trusted or changed.
func (r *Repo) GC(ctx context.Context, be remote.Backend, opts GCOptions) (*GCReport, error) {
	if be == nil {
		be = r.Backend
	}
	grace := opts.Grace
	switch {
	case grace == 0:
		grace = DefaultGrace
	case grace < 0:
		grace = 0
	}
	opts.Grace = grace // the effective one, from here on
	now := r.Now()
	rep := &GCReport{Location: be.Location(), DryRun: opts.DryRun, Grace: grace.Seconds()}
	st, err := readGCState(ctx, be)
	if err != nil {
		return nil, err
	}
	if !opts.DryRun {
		// A sweep marker without its plan is a sweep that died after its
		// last deletion but one: nothing is left to claim.
		for id := range st.sweeping {
			if !slices.ContainsFunc(st.plans, func(p *gcPlan) bool { return p.ID == id }) {
				if err := be.Delete(ctx, gcSweepPrefix+id); err != nil && !errors.Is(err, remote.ErrNotFound) {
					return nil, fmt.Errorf("gc: delete %s%s: %w", gcSweepPrefix, id, err)
				}
				delete(st.sweeping, id)
			}
		}
	}
	var due, pending []*gcPlan
	for _, p := range st.plans {
		if !p.Created.After(now.Add(-grace)) {
			due = append(due, p)
		} else {
			pending = append(pending, p)
		}
	}
	if len(due) > 0 {
		if err := r.gcSweep(ctx, be, due, opts, rep); err != nil {
			return rep, err
		}
	}
	m, err := gcMark(ctx, be)
	if err != nil {
		return rep, err
	}
	rep.Roots, rep.Packs = m.roots, len(m.packs)
	if len(m.segments) > compactAbove && !opts.DryRun && len(st.plans) == len(due) {
		// Many small segments cost a new reader one request each: merge
		// them, when no plan is outstanding, so that no sweep can delete a
		// pack the merged segment names (a plan waits a grace period).
		if quiet, err := readGCState(ctx, be); err != nil {
			return rep, err
		} else if len(quiet.plans) == 0 && len(quiet.sweeping) == 0 {
			n, err := r.gcCompact(ctx, be, m)
			if err != nil {
				return rep, err
			}
			rep.Segments += n
			if be == r.Backend && n > 0 {
				if _, _, err := r.RebuildIndex(ctx); err != nil {
					return rep, fmt.Errorf("gc: rebuild the local index: %w", err)
				}
			}
		}
	}
	condemned := map[digest.Digest]bool{}
	for _, p := range pending {
		for _, id := range p.Packs {
			if oi, ok := m.packs[id]; ok && !condemned[id] {
				condemned[id] = true
				rep.Pending.Packs++
				rep.Pending.Bytes += oi.Size
			}
		}
	}
	plan := &gcPlan{Created: now.UTC().Truncate(time.Millisecond)}
	for _, id := range sortedDigests(m.packs) {
		oi := m.packs[id]
		switch {
		case m.live[id]:
			rep.LivePacks++
			rep.LiveBytes += oi.Size
		case m.unreadable[id] || condemned[id]:
		case grace > 0 && oi.ModTime.After(now.Add(-grace)):
			rep.Young++
			rep.YoungBytes += oi.Size
		default:
			plan.Packs = append(plan.Packs, id)
			plan.Bytes += oi.Size
		}
	}
	rep.Planned = GCCount{Packs: len(plan.Packs), Bytes: plan.Bytes}
	if len(plan.Packs) == 0 {
		return rep, nil
	}
	if opts.DryRun {
		if grace == 0 {
			rep.Freed.Packs += len(plan.Packs)
			rep.Freed.Bytes += plan.Bytes
		}
		return rep, nil
	}
	plan.ID = newGCID(now)
	if err := putJSON(ctx, be, gcPlansPrefix+plan.ID, plan); err != nil {
		return rep, fmt.Errorf("gc: write plan: %w", err)
	}
	rep.Plan = gcPlansPrefix + plan.ID
	after := plan.Created.Add(grace)
	rep.SweepAfter = &after
	if grace == 0 {
		// No grace: carry the plan out now.
		if err := r.gcSweep(ctx, be, []*gcPlan{plan}, opts, rep); err != nil {
			return rep, err
		}
		rep.Plan, rep.SweepAfter = "", nil
	}
	return rep, nil
}

// gcSweep carries out due plans (phase 2). If another gc takes over one
// of its claims meanwhile, it stops at its next step, leaves the records
// of that plan to the other gc and returns ErrGCBusy (gcclaim.go).
func (r *Repo) gcSweep(ctx context.Context, be remote.Backend, plans []*gcPlan, opts GCOptions, rep *GCReport) (err error) {
	var claims *sweepClaims
	parent := ctx
	stopRenew := func() {}
	if !opts.DryRun {
		// From here on, a push that needs a condemned pack waits for the
		// sweep to end instead of leaving a keep marker.
		claims, plans, err = r.claimSweeps(ctx, be, plans, sweepLease(opts.Grace))
		if err != nil {
			return err
		}
		if len(plans) == 0 {
			return nil
		}
		ctx, stopRenew = claims.renew(ctx, sweepLease(opts.Grace))
		defer stopRenew()
		defer func() {
			// A step cut short by the loss of a claim reports the loss.
			if lost := claims.lostErr(); err != nil && lost != nil {
				err = lost
			}
		}()
	}
	gcStep := func(step string) error {
		if err := claims.lostErr(); err != nil {
			return err
		}
		if opts.stepHook != nil {
			return opts.stepHook(step)
		}
		return nil
	}
	if err := gcStep("sweep started"); err != nil {
		return err
	}
	st, err := readGCState(ctx, be)
	if err != nil {
		return err
	}
	m, err := gcMark(ctx, be)
	if err != nil {
		return err
	}
	del := map[digest.Digest]bool{}
	for _, p := range plans {
		for _, id := range p.Packs {
			if _, ok := m.packs[id]; !ok || del[id] {
				continue // gone already
			}
			if m.live[id] || st.kept[id] || m.unreadable[id] {
				rep.Spared++
				continue
			}
			del[id] = true
		}
	}
	// Where retention is possible, settle it first: a retained pack stays,
	// and so must its index entries. (On a versioned bucket a Delete of a
	// retained object "succeeds" by hiding it behind a delete marker, so
	// the answer of Delete cannot be trusted for it.)
	if len(del) > 0 {
		if lock, ok := be.(remote.Retainer); ok {
			if err := lock.CheckRetention(ctx); err == nil {
				for _, id := range sortedDigests(del) {
					until, err := lock.RetainedUntil(ctx, packKey(id))
					if err != nil && !errors.Is(err, remote.ErrNotFound) {
						return fmt.Errorf("gc: retention of pack %s: %w", id.Short(), err)
					}
					if until.After(r.Now()) {
						delete(del, id)
						rep.Retained++
					}
				}
			} else if !errors.Is(err, remote.ErrNoObjectLock) {
				return fmt.Errorf("gc: %w", err)
			}
		}
	}
	var freed int64
	for id := range del {
		freed += m.packs[id].Size
	}
	if opts.DryRun {
		rep.Freed.Packs += len(del)
		rep.Freed.Bytes += freed
		return nil
	}
	// The index first: a new segment keeps what the rewritten ones said
	// of packs that stay, so no reader loses a live blob.
	// With many segments, the rewrite merges them all.
	oldSegs, err := r.gcRewriteSegments(ctx, be, m, del, len(m.segments) > compactAbove)
	if err != nil {
		return err
	}
	rep.Segments = len(oldSegs)
	if err := gcStep("segment written"); err != nil {
		return err
	}
	// Record the deletions before making them: an index that reads the
	// record forgets those packs, deleted yet or not.
	done := &gcDone{ID: newGCID(r.Now()), Created: r.Now().UTC().Truncate(time.Millisecond), Packs: sortedDigests(del)}
	if len(del) > 0 {
		if err := putJSON(ctx, be, gcDonePrefix+done.ID, done); err != nil {
			return fmt.Errorf("gc: record deletions: %w", err)
		}
	}
	if err := gcStep("deletions recorded"); err != nil {
		return err
	}
	var deleted, retained, bytesFreed atomic.Int64
	err = forEach(ctx, done.Packs, r.transfers(), func(ctx context.Context, id digest.Digest) error {
		if err := gcStep("pack deleted"); err != nil {
			return err
		}
		err := be.Delete(ctx, packKey(id))
		switch {
		case err == nil:
			deleted.Add(1)
			bytesFreed.Add(m.packs[id].Size)
		case errors.Is(err, remote.ErrNotFound):
		case errors.Is(err, remote.ErrAccessDenied):
			// Refused although not retained: the pack stays, unnamed by the
			// new segment; the next gc adopts it (a live orphan) or plans it.
			retained.Add(1)
		default:
			return fmt.Errorf("gc: delete pack %s: %w", id.Short(), err)
		}
		return nil
	})
	rep.Freed.Packs += int(deleted.Load())
	rep.Freed.Bytes += bytesFreed.Load()
	rep.Retained += int(retained.Load())
	if err != nil {
		return err
	}
	if err := gcStep("packs deleted"); err != nil {
		return err
	}
	for _, key := range oldSegs {
		if err := be.Delete(ctx, key); err != nil && !errors.Is(err, remote.ErrNotFound) && !errors.Is(err, remote.ErrAccessDenied) {
			return fmt.Errorf("gc: delete index segment %s: %w", key, err)
		}
	}
	if err := gcStep("segments deleted"); err != nil {
		return err
	}
	stopRenew() // no renewal may land after the release
	// The parent context from here on: a claim lost now cancels ctx, and
	// the plans still held are cleaned up all the same.
	released, err := claims.release(parent)
	if err != nil {
		return err
	}
	var cleanup []string
	if claims.lostErr() == nil {
		// The gc that took a plan over may not have read these yet.
		cleanup = append(cleanup, st.keepKeys...)
	}
	for _, p := range plans {
		if released[p.ID] {
			cleanup = append(cleanup, gcPlansPrefix+p.ID, gcSweepPrefix+p.ID)
		}
	}
	for _, key := range cleanup {
		if err := be.Delete(parent, key); err != nil && !errors.Is(err, remote.ErrNotFound) {
			return fmt.Errorf("gc: delete %s: %w", key, err)
		}
	}
	if be == r.Backend && (len(del) > 0 || len(oldSegs) > 0) {
		// The index may hold what the deleted packs and segments said.
		if _, _, err := r.RebuildIndex(parent); err != nil {
			return fmt.Errorf("gc: rebuild the local index: %w", err)
		}
	}
	return claims.lostErr()
}

// gcRewriteSegments writes one index segment holding what the segments
// naming deleted packs (all segments, with all) say of the packs that
// stay, plus the blobs of live packs that no segment names (left by an
// interrupted push, then reused), and returns the keys of the segments it
// replaces. Entries naming packs that are gone are dropped.
func (r *Repo) gcRewriteSegments(ctx context.Context, be remote.Backend, m *gcMarks, del map[digest.Digest]bool, all bool) ([]string, error) {
	var old []string
	seg := &segment{Files: map[digest.Digest][]digest.Digest{}}
	seen := map[digest.Digest]bool{}
	add := func(b index.Blob) {
		if _, there := m.packs[b.Pack]; there && !del[b.Pack] && !seen[b.ID] {
			seen[b.ID] = true
			seg.Blobs = append(seg.Blobs, b)
		}
	}
	for _, key := range m.segments {
		s := m.segmentContent[key]
		affected := all
		for _, b := range s.Blobs {
			// A pack gone already: an earlier sweep died before it
			// replaced this segment.
			if _, there := m.packs[b.Pack]; del[b.Pack] || !there {
				affected = true
				break
			}
		}
		if !affected {
			continue
		}
		old = append(old, key)
		for _, b := range s.Blobs {
			add(b)
		}
		for f, chunks := range s.Files {
			seg.Files[f] = chunks
		}
	}
	for _, id := range sortedDigests(m.orphans) {
		if m.live[id] {
			for _, b := range m.orphans[id] {
				add(b)
			}
		}
	}
	// A file stays listed while every chunk of it is in some pack that
	// stays, wherever the index would look first.
	survives := map[digest.Digest]bool{}
	keep := func(b index.Blob) {
		if _, there := m.packs[b.Pack]; there && !del[b.Pack] {
			survives[b.ID] = true
		}
	}
	for _, key := range m.segments {
		for _, b := range m.segmentContent[key].Blobs {
			keep(b)
		}
	}
	for _, blobs := range m.orphans {
		for _, b := range blobs {
			keep(b)
		}
	}
	for f, chunks := range seg.Files {
		if slices.ContainsFunc(chunks, func(c digest.Digest) bool { return !survives[c] }) {
			delete(seg.Files, f)
		}
	}
	if len(seg.Blobs) == 0 && len(seg.Files) == 0 {
		return old, nil
	}
	data := seg.encode()
	key := segmentPrefix + digest.Of(data).Hex()
	err := be.Put(ctx, key, bytes.NewReader(data), int64(len(data)), remote.PutOptions{IfNoneMatch: true})
	if err != nil && !errors.Is(err, remote.ErrExists) {
		return nil, fmt.Errorf("gc: write index segment: %w", err)
	}
	if be == r.Backend {
		if err := r.syncKeys(key); err != nil {
			return nil, err
		}
	}
	return slices.DeleteFunc(old, func(k string) bool { return k == key }), nil
}

// ErrGCMissing: gc stopped because refs or pins name data the store
// lacks.
var ErrGCMissing = errors.New("cas: gc stops")

// ErrGCBusy: another gc is sweeping the same store.
var ErrGCBusy = errors.New("cas: another gc is running on this store")

// compactAbove is how many index segments GC lets accumulate before it
// merges them into one.
const compactAbove = 16

// gcCompact merges every index segment into one and deletes the others.
// A reader that listed a deleted one lists again (syncIndexFrom); what it
// held is in the new one.
func (r *Repo) gcCompact(ctx context.Context, be remote.Backend, m *gcMarks) (int, error) {
	old, err := r.gcRewriteSegments(ctx, be, m, nil, true)
	if err != nil {
		return 0, err
	}
	for _, key := range old {
		if err := be.Delete(ctx, key); err != nil && !errors.Is(err, remote.ErrNotFound) && !errors.Is(err, remote.ErrAccessDenied) {
			return 0, fmt.Errorf("gc: delete index segment %s: %w", key, err)
		}
	}
	return len(old), nil
}

// gcMarks is what a mark found on a backend.
type gcMarks struct {
	view           *Repo // the backend alone, with an index from its segments and orphan packs
	packs          map[digest.Digest]remote.ObjectInfo
	live           map[digest.Digest]bool // packs holding something reachable
	unreadable     map[digest.Digest]bool // packs whose contents are unknown: never deleted
	orphans        map[digest.Digest][]index.Blob
	segments       []string
	segmentContent map[string]*segment
	roots, missing int
	firstMissing   string
}

// gcMark marks every pack reachable from be's refs and pins.
func gcMark(ctx context.Context, be remote.Backend) (*gcMarks, error) {
	view := &Repo{Backend: be, Index: index.NewMemory(), packs: newPackFiles(be)}
	m := &gcMarks{view: view, packs: map[digest.Digest]remote.ObjectInfo{}, live: map[digest.Digest]bool{},
		unreadable: map[digest.Digest]bool{}, orphans: map[digest.Digest][]index.Blob{}, segmentContent: map[string]*segment{}}
	err := be.List(ctx, segmentPrefix, func(oi remote.ObjectInfo) error {
		if _, err := digest.ParseHex(strings.TrimPrefix(oi.Key, segmentPrefix)); err == nil {
			m.segments = append(m.segments, oi.Key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("gc: list index segments on %s: %w", be.Location(), err)
	}
	for _, key := range m.segments {
		s, _, err := readSegment(ctx, be, key)
		if err != nil {
			return nil, fmt.Errorf("gc: %w: gc stops (cas verify)", err)
		}
		m.segmentContent[key] = s
		if err := indexSegment(view.Index, s); err != nil {
			return nil, err
		}
	}
	err = be.List(ctx, packPrefix, func(oi remote.ObjectInfo) error {
		if id, err := packIDFromKey(oi.Key); err == nil {
			m.packs[id] = oi
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("gc: list packs on %s: %w", be.Location(), err)
	}
	for _, id := range sortedDigests(m.packs) {
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
	roots, err := gcRoots(ctx, view)
	if err != nil {
		return nil, err
	}
	m.roots = len(roots)
	seenTree := map[digest.Digest]bool{}
	var mark func(d digest.Digest, kind Kind, size int64) error
	mark = func(d digest.Digest, kind Kind, size int64) error {
		if kind != KindDir {
			chunks, err := view.fileChunks(d, size)
			if err != nil {
				return err
			}
			for _, c := range chunks {
				if b, ok, _ := view.Index.Blob(c); ok {
					m.live[b.Pack] = true
				} else {
					m.missed(fmt.Sprintf("chunk %s of file %s", c.Short(), d.Short()))
				}
			}
			return nil
		}
		if seenTree[d] {
			return nil
		}
		seenTree[d] = true
		b, ok, _ := view.Index.Blob(d)
		if !ok {
			m.missed("tree " + d.Short())
			return nil
		}
		m.live[b.Pack] = true
		t, err := view.ReadTree(ctx, d)
		if err != nil {
			return fmt.Errorf("gc: tree %s: %w: gc stops, as it cannot tell what the tree keeps (cas verify)", d.Short(), err)
		}
		for _, e := range t.Entries {
			if err := mark(e.Digest, e.Kind, e.Size); err != nil {
				return err
			}
		}
		return nil
	}
	expanded := map[digest.Digest]bool{}
	for len(roots) > 0 {
		o := roots[0]
		roots = roots[1:]
		if err := mark(o.Digest, o.Kind, o.Size); err != nil {
			return nil, err
		}
		if o.Kind == KindDir || expanded[o.Digest] {
			continue
		}
		expanded[o.Digest] = true
		// A manifest keeps its whole closure. A part the store lacks is
		// missing as a tree would be: what it keeps cannot be told.
		kept, err := view.Keeps(ctx, &o)
		if err != nil {
			return nil, fmt.Errorf("gc: %w", err)
		}
		for _, k := range kept {
			if k.Err != nil {
				m.missed(fmt.Sprintf("%s %s of manifest %s", k.Part, k.Part.Digest.Short(), k.Part.Of.Short()))
				continue
			}
			roots = append(roots, k.Object)
		}
	}
	if m.missing > 0 {
		// What a missing tree or chunk list would have kept cannot be
		// told: collecting now could delete it.
		return nil, fmt.Errorf("%w: %d objects that refs, pins or runs name are not on %s (first: %s), so gc cannot tell what they keep; `cas verify` says which, `cas pull REF` brings data from a remote",
			ErrGCMissing, m.missing, be.Location(), m.firstMissing)
	}
	return m, nil
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

// gcState is what gc/ holds on a backend.
type gcState struct {
	plans    []*gcPlan
	sweeping map[string]bool
	kept     map[digest.Digest]bool
	keepKeys []string
	done     []string // keys of gc/done records
}

func readGCState(ctx context.Context, be remote.Backend) (*gcState, error) {
	st := &gcState{sweeping: map[string]bool{}, kept: map[digest.Digest]bool{}}
	var plans, keeps []string
	err := be.List(ctx, gcPrefix, func(oi remote.ObjectInfo) error {
		switch {
		case strings.HasPrefix(oi.Key, gcPlansPrefix):
			plans = append(plans, oi.Key)
		case strings.HasPrefix(oi.Key, gcSweepPrefix):
			st.sweeping[strings.TrimPrefix(oi.Key, gcSweepPrefix)] = true
		case strings.HasPrefix(oi.Key, gcKeepPrefix):
			keeps = append(keeps, oi.Key)
		case strings.HasPrefix(oi.Key, gcDonePrefix):
			st.done = append(st.done, oi.Key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s on %s: %w", gcPrefix, be.Location(), err)
	}
	for _, key := range plans {
		var p gcPlan
		if err := getJSON(ctx, be, key, &p); errors.Is(err, remote.ErrNotFound) {
			continue // carried out meanwhile
		} else if err != nil {
			return nil, err
		}
		p.ID = strings.TrimPrefix(key, gcPlansPrefix)
		st.plans = append(st.plans, &p)
	}
	for _, key := range keeps {
		var k gcKeep
		if err := getJSON(ctx, be, key, &k); errors.Is(err, remote.ErrNotFound) {
			continue
		} else if err != nil {
			return nil, err
		}
		st.keepKeys = append(st.keepKeys, key)
		for _, id := range k.Packs {
			st.kept[id] = true
		}
	}
	return st, nil
}

// GuardGC makes sure that no GC on be deletes a pack that objs need, as
// far as the local index knows them; call it just before writing a ref
// or pin on be that names objs. On a store where gc never ran it costs one
// listing of gc/.
//
// A sweep that ended since the index was loaded may have deleted what the
// caller relied on (the index cached it): GuardGC finds its record, and
// checks that every needed pack is still there, uploading again from the
// local store what a remote lost. Where a plan condemns a needed pack,
// GuardGC leaves a keep marker that the plan's sweep will honour, unless
// that sweep has begun: then it waits for the sweep to end and does the
// same check.
func (r *Repo) GuardGC(ctx context.Context, be remote.Backend, objs ...Object) error {
	if be == nil {
		be = r.Backend
	}
	st, err := readGCState(ctx, be)
	if err != nil {
		return err
	}
	swept, err := r.forgetRecords(ctx, be, st.done)
	if err != nil || (len(st.plans) == 0 && !swept) {
		return err
	}
	need := map[digest.Digest]bool{}
	for _, o := range objs {
		if err := r.closurePacks(ctx, &o, need); err != nil {
			if errors.Is(err, ErrNotFound) && swept {
				return fmt.Errorf("%w: %w", errCollected, err)
			}
			return fmt.Errorf("gc guard: %w", err)
		}
	}
	if swept {
		if err := r.restorePacks(ctx, be, need); err != nil {
			return err
		}
	}
	hit := map[digest.Digest]bool{}
	var hitPlans []string
	sweeping := false
	for _, p := range st.plans {
		if slices.ContainsFunc(p.Packs, func(id digest.Digest) bool { return need[id] }) {
			hitPlans = append(hitPlans, p.ID)
			sweeping = sweeping || st.sweeping[p.ID]
			for _, id := range p.Packs {
				if need[id] {
					hit[id] = true
				}
			}
		}
	}
	if len(hit) == 0 {
		return nil
	}
	if !sweeping {
		keep := &gcKeep{Created: r.Now().UTC().Truncate(time.Millisecond), Packs: sortedDigests(hit)}
		if err := putJSON(ctx, be, gcKeepPrefix+newGCID(r.Now()), keep); err != nil {
			return fmt.Errorf("gc guard: write keep marker: %w", err)
		}
		// A sweep that began before the marker landed may not have seen
		// it; one that ended meanwhile has deleted what it deleted.
		again, err := readGCState(ctx, be)
		if err != nil {
			return err
		}
		for _, id := range hitPlans {
			sweeping = sweeping || again.sweeping[id]
		}
		if !sweeping {
			if swept, err := r.forgetRecords(ctx, be, again.done); err != nil || !swept {
				return err
			}
			return r.restorePacks(ctx, be, need)
		}
	}
	return r.afterSweep(ctx, be, hitPlans, need)
}

// errCollected: a gc deleted data that a push relied on.
var errCollected = errors.New("cas: a gc deleted data this push relied on: push again")

// afterSweep waits for the sweeps of plans to end, then makes sure the
// packs of need are on be.
func (r *Repo) afterSweep(ctx context.Context, be remote.Backend, plans []string, need map[digest.Digest]bool) error {
	deadline := r.Now().Add(sweepLease(DefaultGrace))
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		st, err := readGCState(ctx, be)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(plans, func(id string) bool { return st.sweeping[id] }) {
			if _, err := r.forgetRecords(ctx, be, st.done); err != nil {
				return err
			}
			break
		}
		if r.Now().After(deadline) {
			return fmt.Errorf("%w: a gc on %s is still deleting what this push needs after %s: push again later", ErrGCBusy, be.Location(), sweepLease(DefaultGrace))
		}
		if err := r.clk().Sleep(ctx, wait); err != nil {
			return err
		}
	}
	return r.restorePacks(ctx, be, need)
}

// restorePacks checks that every pack of need is on be. On a remote, what
// a gc took is uploaded again from the local store, with the index
// segments the remote lacks (Upload: packs, then segments, so the remote
// stays consistent); on the local store, or without a local copy, the
// push must be run again.
func (r *Repo) restorePacks(ctx context.Context, be remote.Backend, need map[digest.Digest]bool) error {
	var missing []digest.Digest
	for _, id := range sortedDigests(need) {
		if _, err := be.Stat(ctx, packKey(id)); errors.Is(err, remote.ErrNotFound) {
			missing = append(missing, id)
		} else if err != nil {
			return err
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if be == r.Backend {
		return fmt.Errorf("%w (pack %s)", errCollected, missing[0].Short())
	}
	for _, id := range missing {
		if _, err := r.Backend.Stat(ctx, packKey(id)); err != nil {
			return fmt.Errorf("%w (pack %s, which the local store lacks too)", errCollected, id.Short())
		}
	}
	if _, err := r.Upload(ctx, be, nil); err != nil {
		return fmt.Errorf("upload again what a gc on %s deleted: %w", be.Location(), err)
	}
	return nil
}

// forgetCollected makes the index forget the packs that GCs on be
// deleted since it last looked: it rebuilds the index if it knew any.
func (r *Repo) forgetCollected(ctx context.Context, be remote.Backend) error {
	if empty, err := r.indexEmpty(); err != nil || empty {
		// Nothing cached to forget (a new store costs no request); the
		// records are read the next time.
		return err
	}
	var keys []string
	err := be.List(ctx, gcDonePrefix, func(oi remote.ObjectInfo) error {
		keys = append(keys, oi.Key)
		return nil
	})
	if err != nil {
		return err
	}
	_, err = r.forgetRecords(ctx, be, keys)
	return err
}

// forgetRecords reads the gc/done records among keys that the index has
// not seen, rebuilds the index if it knew a pack they list, and marks
// them seen. It reports whether there was any such record: a sweep ended
// since the index last looked.
func (r *Repo) forgetRecords(ctx context.Context, be remote.Backend, keys []string) (bool, error) {
	stale := false
	var marks []digest.Digest
	for _, key := range keys {
		mark := digest.Of([]byte(be.Location() + "\x00" + key))
		if seen, err := r.Index.HasRecord(mark); err != nil || seen {
			continue
		}
		marks = append(marks, mark)
		var done gcDone
		if err := getJSON(ctx, be, key, &done); err != nil {
			continue
		}
		for _, id := range done.Packs {
			if known, _ := r.Index.HasPack(id); known {
				stale = true
			}
		}
	}
	if stale {
		if _, _, err := r.RebuildIndex(ctx); err != nil {
			return false, err
		}
		// The rebuild read the store's own segments; the remote's (be's,
		// and the one reads fall back to) are loaded again.
		for _, other := range []remote.Backend{be, r.remote} {
			if other != nil && other != r.Backend {
				if err := r.syncSegments(ctx, other, false, true); err != nil {
					return false, err
				}
			}
		}
	}
	for _, mark := range marks {
		if err := r.Index.MarkRecord(mark); err != nil {
			return false, err
		}
	}
	return len(marks) > 0, nil
}

var errStop = errors.New("stop")

// indexEmpty reports whether the index knows no pack at all.
func (r *Repo) indexEmpty() (bool, error) {
	err := r.Index.Packs(func(digest.Digest) error { return errStop })
	if errors.Is(err, errStop) {
		return false, nil
	}
	return err == nil, err
}

func newGCID(now time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("20060102T150405.000Z") + "-" + hex.EncodeToString(b[:])
}

// putJSON writes v at key only if key is absent (ErrExists otherwise).
func putJSON(ctx context.Context, be remote.Backend, key string, v any) error {
	return writeJSON(ctx, be, key, v, remote.PutOptions{IfNoneMatch: true})
}

// putJSONOver writes v at key whether or not it exists.
func putJSONOver(ctx context.Context, be remote.Backend, key string, v any) error {
	return writeJSON(ctx, be, key, v, remote.PutOptions{})
}

func writeJSON(ctx context.Context, be remote.Backend, key string, v any, opts remote.PutOptions) error {
	b, _ := json.MarshalIndent(v, "", "  ")
	b = append(b, '\n')
	if err := be.Put(ctx, key, bytes.NewReader(b), int64(len(b)), opts); err != nil {
		return err
	}
	// On local disk, a record is durable before gc acts on it.
	if s, ok := be.(syncer); ok {
		return s.SyncKeys(key)
	}
	return nil
}

func getJSON(ctx context.Context, be remote.Backend, key string, v any) error {
	b, err := readSmall(ctx, be, key)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return &InvalidError{What: "gc record", Name: key + " on " + be.Location(), Reason: "not JSON of its kind: " + err.Error()}
	}
	return nil
}

func sortedDigests[V any](m map[digest.Digest]V) []digest.Digest {
	return slices.SortedFunc(maps.Keys(m), func(a, b digest.Digest) int { return bytes.Compare(a[:], b[:]) })
}
