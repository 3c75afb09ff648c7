package gc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cas-ml/cas/clock"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/remote"
)

// Garbage collection runs in two phases, one collection apart, so that a
// push on another machine never loses an object it relied on:
//
//  1. Mark. Everything reachable from refs (with their history), pins
//     (with their roots), the uploads a local store still owes its
//     remotes, and the manifests they name is live. Packs that
//     hold nothing live and are older than the grace period are written
//     down in a plan, gc/plans/ID. Nothing is deleted.
//  2. Sweep, at a later collection, once the plan is older than the grace
//     period. gc claims the plan (gc/sweeps/ID, claim.go), reads the keep
//     markers (gc/keeps/…) that pushes left for condemned packs they rely
//     on, marks again from the refs and pins of that moment, and deletes
//     the plan's packs that are still unreferenced, rewriting the index
//     segments that named them. It then records what it deleted in
//     gc/done/ID and removes the plan.
//
// A push, before it writes a ref or pin, looks for plans (cas.GuardGC):
// if one condemns a pack the push needs, it leaves a keep marker and
// checks that no sweep of that plan has begun; if one has, it waits for
// the sweep to end and stores again whatever was deleted. A push that
// wrote its ref before the sweep is safe because the sweep marks again.
// The one assumption is that no push takes longer than the grace period
// between reading the store and writing its ref.

// DefaultGrace is how old an unreferenced pack must be before gc plans
// to delete it, and how old a plan must be before gc carries it out.
const DefaultGrace = 24 * time.Hour

// NoGrace, as Options.Grace, deletes unreferenced packs at once, in one
// collection: only safe when nothing else writes to the store.
const NoGrace = time.Duration(-1)

// Errors of a collection.
var (
	// ErrMissing: gc stopped because refs, pins or runs name data the
	// store lacks, so what that data keeps cannot be told.
	ErrMissing = errors.New("gc stops")
	// ErrBusy: another gc is sweeping the same store.
	ErrBusy = errors.New("another gc is running on this store")
)

// MissingError says that refs, pins or runs name objects the store lacks,
// so that what they keep cannot be told: collecting now could delete it.
// It wraps ErrMissing.
type MissingError struct {
	Objects  int
	Location string
	First    string // the first one found missing
}

func (e *MissingError) Error() string {
	return fmt.Sprintf("gc stops: %d objects that refs, pins, runs or pending uploads name are not on %s (first: %s), so gc cannot tell what they keep",
		e.Objects, e.Location, e.First)
}

func (e *MissingError) Unwrap() error { return ErrMissing }

// Options tune a collection.
type Options struct {
	// Grace is the least age of a pack gc deletes, and of a plan it
	// carries out. Zero means DefaultGrace; use NoGrace for none.
	Grace time.Duration
	// DryRun reports what would be planned and freed; nothing is written.
	DryRun bool
	// StepHook, set by tests, is called at each step of a sweep; an error
	// stops the sweep there, as a kill would (a sweep leaves nothing to
	// undo).
	StepHook func(step string) error
}

// Report says what a collection found, planned and freed.
type Report struct {
	Location string  `json:"location"`
	DryRun   bool    `json:"dry_run,omitempty"`
	Grace    float64 `json:"grace_seconds"`
	Roots    int     `json:"roots"`
	// PendingUploads counts the roots that are uploads the local store
	// owes a remote: kept until they are done.
	PendingUploads int   `json:"pending_uploads,omitempty"`
	Packs          int   `json:"packs"`
	LivePacks      int   `json:"live_packs"`
	LiveBytes      int64 `json:"live_bytes"`
	// Young counts unreferenced packs spared for being younger than the
	// grace period.
	Young      int   `json:"young_packs"`
	YoungBytes int64 `json:"young_bytes"`
	// Planned is what this collection condemned: a later one deletes it,
	// from SweepAfter on, unless something references it by then.
	Planned    Count      `json:"planned"`
	Plan       string     `json:"plan,omitempty"`
	SweepAfter *time.Time `json:"sweep_after,omitempty"`
	// Pending is what earlier plans condemned that is not due yet.
	Pending Count `json:"pending"`
	// Freed is what this collection deleted (or would, with DryRun).
	Freed Count `json:"freed"`
	// Spared counts condemned packs that something references again.
	Spared int `json:"spared"`
	// Retained counts packs the backend refused to delete (Object Lock).
	Retained int `json:"retained,omitempty"`
	// Segments counts index segments rewritten (replaced by one new one).
	Segments int `json:"segments_rewritten"`
}

// Count is a number of packs and their bytes.
type Count struct {
	Packs int   `json:"packs"`
	Bytes int64 `json:"bytes"`
}

// Store is the narrow view of one backend a collection needs. The
// repository provides it (cas.Repo.GC); its Mark is the rule of what is
// reachable.
type Store interface {
	// Backend is where the collection reads and deletes.
	Backend() remote.Backend
	// Clock says what time it is.
	Clock() clock.Clock
	// Mark finds, on the backend as it is now, every pack and which of
	// them hold something reachable.
	Mark(ctx context.Context) (*Marks, error)
	// Changed tells the store that packs or index segments were deleted
	// or replaced, so that what it cached of them is forgotten.
	Changed(ctx context.Context) error
	// Connections bounds the deletions in flight.
	Connections() int
}

// Marks is what a mark found on a backend.
type Marks struct {
	// Packs are the packs on the backend.
	Packs map[digest.Digest]remote.ObjectInfo
	// Live packs hold something reachable; Unreadable ones hold what
	// cannot be told: neither is ever deleted.
	Live, Unreadable map[digest.Digest]bool
	// Roots counts the refs', pins' and runs' objects marked from, and
	// the objects of uploads owed to remotes (PendingUploads of them).
	Roots          int
	PendingUploads int
	// Segments counts the index segments on the backend.
	Segments int
	// Rewrite replaces the index segments that name a pack of del (every
	// segment, with all) by one segment holding what they said of the
	// packs that stay, and returns the keys of the segments replaced
	// (which the caller deletes).
	Rewrite func(ctx context.Context, del map[digest.Digest]bool, all bool) ([]string, error)
}

// CompactAbove is how many index segments gc lets accumulate before it
// merges them into one.
const CompactAbove = 16

// Collect collects garbage on s: see the comment at the top of this
// file for the two phases.
func Collect(ctx context.Context, s Store, opts Options) (*Report, error) {
	be := s.Backend()
	switch {
	case opts.Grace == 0:
		opts.Grace = DefaultGrace
	case opts.Grace < 0:
		opts.Grace = 0
	}
	c := &collection{s: s, be: be, opts: opts, now: s.Clock().Now(),
		rep: &Report{Location: be.Location(), DryRun: opts.DryRun, Grace: opts.Grace.Seconds()}}
	if err := c.run(ctx); err != nil {
		return c.rep, err
	}
	return c.rep, nil
}

// collection is one run of Collect.
type collection struct {
	s    Store
	be   remote.Backend
	opts Options // Grace is the effective one
	now  time.Time
	rep  *Report
}

func (c *collection) run(ctx context.Context) error {
	st, err := ReadState(ctx, c.be)
	if err != nil {
		return err
	}
	if !c.opts.DryRun {
		if err := c.dropOrphanSweeps(ctx, st); err != nil {
			return err
		}
	}
	// A plan whose sweep has begun is due, however young: its sweep may
	// have deleted packs and not yet the segments naming them, and is
	// finished before anything is planned anew (a gc without grace
	// plans and sweeps at once, so its plan is as young as its claim).
	// The claim tells a live gc from a dead one.
	var due, pending []*Plan
	for _, p := range st.Plans {
		if st.Sweeping[p.ID] || !p.Created.After(c.now.Add(-c.opts.Grace)) {
			due = append(due, p)
		} else {
			pending = append(pending, p)
		}
	}
	var m *Marks
	if len(due) > 0 {
		if m, err = c.sweep(ctx, due); err != nil {
			return err
		}
	}
	compact := !c.opts.DryRun && len(st.Plans) == len(due)
	if m == nil || compact && m.Segments > CompactAbove {
		// What a sweep marked serves the new plan too (packs written
		// since are not in it, so not condemned), unless the segments
		// are to be merged, which takes a mark of its own.
		if m, err = c.s.Mark(ctx); err != nil {
			return err
		}
	}
	c.rep.Roots, c.rep.PendingUploads, c.rep.Packs = m.Roots, m.PendingUploads, len(m.Packs)
	if m.Segments > CompactAbove && compact {
		if err := c.compact(ctx, m); err != nil {
			return err
		}
	}
	plan := c.plan(m, pending)
	if len(plan.Packs) == 0 {
		return nil
	}
	if c.opts.DryRun {
		if c.opts.Grace == 0 {
			c.rep.Freed.Packs += len(plan.Packs)
			c.rep.Freed.Bytes += plan.Bytes
		}
		return nil
	}
	plan.ID = NewID(c.now)
	if err := PutJSON(ctx, c.be, PlansPrefix+plan.ID, plan); err != nil {
		return fmt.Errorf("gc: write plan: %w", err)
	}
	c.rep.Plan = PlansPrefix + plan.ID
	after := plan.Created.Add(c.opts.Grace)
	c.rep.SweepAfter = &after
	if c.opts.Grace == 0 {
		// No grace: carry the plan out now.
		if _, err := c.sweep(ctx, []*Plan{plan}); err != nil {
			return err
		}
		c.rep.Plan, c.rep.SweepAfter = "", nil
	}
	return nil
}

// dropOrphanSweeps deletes the sweep markers without their plan: a sweep
// that died after its last deletion but one left nothing to claim.
func (c *collection) dropOrphanSweeps(ctx context.Context, st *State) error {
	for id := range st.Sweeping {
		if !slices.ContainsFunc(st.Plans, func(p *Plan) bool { return p.ID == id }) {
			if err := c.be.Delete(ctx, SweepPrefix+id); err != nil && !errors.Is(err, remote.ErrNotFound) {
				return fmt.Errorf("gc: delete %s%s: %w", SweepPrefix, id, err)
			}
			delete(st.Sweeping, id)
		}
	}
	return nil
}

// compact merges the index segments, when no plan is outstanding, so
// that no sweep can delete a pack the merged segment names (a plan waits
// a grace period). Many small segments cost a new reader one request
// each.
func (c *collection) compact(ctx context.Context, m *Marks) error {
	quiet, err := ReadState(ctx, c.be)
	if err != nil || len(quiet.Plans) > 0 || len(quiet.Sweeping) > 0 {
		return err
	}
	old, err := m.Rewrite(ctx, nil, true)
	if err != nil {
		return err
	}
	// A reader that listed a deleted segment lists again; what it held is
	// in the new one.
	if err := c.deleteSegments(ctx, old); err != nil {
		return err
	}
	c.rep.Segments += len(old)
	if len(old) > 0 {
		return c.s.Changed(ctx)
	}
	return nil
}

func (c *collection) deleteSegments(ctx context.Context, keys []string) error {
	for _, key := range keys {
		if err := c.be.Delete(ctx, key); err != nil && !errors.Is(err, remote.ErrNotFound) && !errors.Is(err, remote.ErrAccessDenied) {
			return fmt.Errorf("gc: delete index segment %s: %w", key, err)
		}
	}
	return nil
}

// plan sorts the packs the mark found: live, young, condemned by an
// earlier plan (pending), or condemned now; it returns the new plan.
func (c *collection) plan(m *Marks, pending []*Plan) *Plan {
	condemned := map[digest.Digest]bool{}
	for _, p := range pending {
		for _, id := range p.Packs {
			if oi, ok := m.Packs[id]; ok && !condemned[id] {
				condemned[id] = true
				c.rep.Pending.Packs++
				c.rep.Pending.Bytes += oi.Size
			}
		}
	}
	plan := &Plan{Created: c.now.UTC().Truncate(time.Millisecond)}
	for _, id := range SortedDigests(m.Packs) {
		oi := m.Packs[id]
		switch {
		case m.Live[id]:
			c.rep.LivePacks++
			c.rep.LiveBytes += oi.Size
		case m.Unreadable[id] || condemned[id]:
		case c.opts.Grace > 0 && oi.ModTime.After(c.now.Add(-c.opts.Grace)):
			c.rep.Young++
			c.rep.YoungBytes += oi.Size
		default:
			plan.Packs = append(plan.Packs, id)
			plan.Bytes += oi.Size
		}
	}
	c.rep.Planned = Count{Packs: len(plan.Packs), Bytes: plan.Bytes}
	return plan
}
