package gc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/internal/par"
	"github.com/cas-ml/cas/remote"
)

// sweep carries out due plans (phase 2). If another gc takes over one of
// its claims meanwhile, it stops at its next step, leaves the records of
// that plan to the other gc and returns ErrBusy (claim.go).
//
// It returns the mark it made, without the packs it deleted; nil if it
// made none (no plan was left to carry out).
func (c *collection) sweep(ctx context.Context, plans []*Plan) (_ *Marks, err error) {
	var claims *sweepClaims
	parent := ctx
	stopRenew := func() {}
	if !c.opts.DryRun {
		// From here on, a push that needs a condemned pack waits for the
		// sweep to end instead of leaving a keep marker.
		claims, plans, err = claimSweeps(ctx, c.be, c.s.Clock(), plans, SweepLease(c.opts.Grace))
		if err != nil || len(plans) == 0 {
			return nil, err
		}
		ctx, stopRenew = claims.renew(ctx, SweepLease(c.opts.Grace))
		defer stopRenew()
		defer func() {
			// A step cut short by the loss of a claim reports the loss.
			if lost := claims.lostErr(); err != nil && lost != nil {
				err = lost
			}
		}()
	}
	step := func(name string) error {
		if err := claims.lostErr(); err != nil {
			return err
		}
		if c.opts.StepHook != nil {
			return c.opts.StepHook(name)
		}
		return nil
	}
	if err := step("sweep started"); err != nil {
		return nil, err
	}
	st, err := ReadState(ctx, c.be)
	if err != nil {
		return nil, err
	}
	m, err := c.s.Mark(ctx)
	if err != nil {
		return nil, err
	}
	del, err := c.condemned(ctx, plans, m, st)
	if err != nil || c.opts.DryRun {
		return m, err
	}
	// The index first: a new segment keeps what the rewritten ones said
	// of packs that stay, so no reader loses a live blob. Only the
	// segments that name a condemned pack are rewritten: a sweep costs
	// what it deletes (merging many segments is compact's work).
	oldSegs, err := m.Rewrite(ctx, del, false)
	if err != nil {
		return nil, err
	}
	c.rep.Segments = len(oldSegs)
	if err := step("segment written"); err != nil {
		return nil, err
	}
	if err := c.deletePacks(ctx, m, del, step); err != nil {
		return nil, err
	}
	if err := c.deleteSegments(ctx, oldSegs); err != nil {
		return nil, err
	}
	if err := step("segments deleted"); err != nil {
		return nil, err
	}
	stopRenew() // no renewal may land after the release
	// The parent context from here on: a claim lost now cancels ctx, and
	// the plans still held are cleaned up all the same.
	if err := c.cleanup(parent, claims, plans, st); err != nil {
		return nil, err
	}
	if len(del) > 0 || len(oldSegs) > 0 {
		// The store may cache what the deleted packs and segments said.
		if err := c.s.Changed(parent); err != nil {
			return nil, err
		}
	}
	if err := claims.lostErr(); err != nil {
		return nil, err
	}
	for id := range del {
		delete(m.Packs, id)
	}
	if len(oldSegs) > 0 {
		m.Segments += 1 - len(oldSegs) // at most one new segment replaced them
	}
	return m, nil
}

// condemned returns the packs of plans a sweep deletes: those still on
// the backend that nothing marks live again, no keep marker names, and
// the backend does not retain. It counts the others in the report, and
// with DryRun what would be freed.
func (c *collection) condemned(ctx context.Context, plans []*Plan, m *Marks, st *State) (map[digest.Digest]bool, error) {
	del := map[digest.Digest]bool{}
	for _, p := range plans {
		for _, id := range p.Packs {
			if _, ok := m.Packs[id]; !ok || del[id] {
				continue // gone already
			}
			if m.Live[id] || st.Kept[id] || m.Unreadable[id] {
				c.rep.Spared++
				continue
			}
			del[id] = true
		}
	}
	if err := c.spareRetained(ctx, m, del); err != nil {
		return nil, err
	}
	if c.opts.DryRun {
		c.rep.Freed.Packs += len(del)
		for id := range del {
			c.rep.Freed.Bytes += m.Packs[id].Size
		}
	}
	return del, nil
}

// spareRetained takes out of del the packs the backend retains: where
// retention is possible it is settled first, since a retained pack stays
// and so must its index entries. (On a versioned bucket a Delete of a
// retained object "succeeds" by hiding it behind a delete marker, so the
// answer of Delete cannot be trusted for it.)
func (c *collection) spareRetained(ctx context.Context, m *Marks, del map[digest.Digest]bool) error {
	lock, ok := c.be.(remote.Retainer)
	if len(del) == 0 || !ok {
		return nil
	}
	if err := lock.CheckRetention(ctx); errors.Is(err, remote.ErrNoObjectLock) {
		return nil
	} else if err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	now := c.s.Clock().Now()
	var mu sync.Mutex
	var retained []digest.Digest
	err := par.ForEach(ctx, SortedDigests(del), c.s.Connections(), func(ctx context.Context, id digest.Digest) error {
		until, err := lock.RetainedUntil(ctx, m.Packs[id].Key)
		if err != nil && !errors.Is(err, remote.ErrNotFound) {
			return fmt.Errorf("gc: retention of pack %s: %w", id.Short(), err)
		}
		if until.After(now) {
			mu.Lock()
			retained = append(retained, id)
			mu.Unlock()
		}
		return nil
	})
	for _, id := range retained {
		delete(del, id)
	}
	c.rep.Retained += len(retained)
	return err
}

// deletePacks records the deletions, then makes them: an index that
// reads the record forgets those packs, deleted yet or not.
func (c *collection) deletePacks(ctx context.Context, m *Marks, del map[digest.Digest]bool, step func(string) error) error {
	now := c.s.Clock().Now()
	done := &Done{ID: NewID(now), Created: now.UTC().Truncate(time.Millisecond), Packs: SortedDigests(del)}
	if len(del) > 0 {
		if err := PutJSON(ctx, c.be, DonePrefix+done.ID, done); err != nil {
			return fmt.Errorf("gc: record deletions: %w", err)
		}
	}
	if err := step("deletions recorded"); err != nil {
		return err
	}
	var deleted, retained, bytesFreed atomic.Int64
	err := par.ForEach(ctx, done.Packs, c.s.Connections(), func(ctx context.Context, id digest.Digest) error {
		if err := step("pack deleted"); err != nil {
			return err
		}
		err := c.be.Delete(ctx, m.Packs[id].Key)
		switch {
		case err == nil:
			deleted.Add(1)
			bytesFreed.Add(m.Packs[id].Size)
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
	c.rep.Freed.Packs += int(deleted.Load())
	c.rep.Freed.Bytes += bytesFreed.Load()
	c.rep.Retained += int(retained.Load())
	if err != nil {
		return err
	}
	return step("packs deleted")
}

// cleanup releases the claims still held and deletes the records of the
// plans released, and the keep markers read, unless a claim was lost: the
// gc that took a plan over may not have read them yet.
func (c *collection) cleanup(ctx context.Context, claims *sweepClaims, plans []*Plan, st *State) error {
	released, err := claims.release(ctx)
	if err != nil {
		return err
	}
	var keys []string
	if claims.lostErr() == nil {
		keys = append(keys, st.KeepKeys...)
	}
	for _, p := range plans {
		if released[p.ID] {
			keys = append(keys, PlansPrefix+p.ID, SweepPrefix+p.ID)
		}
	}
	for _, key := range keys {
		if err := c.be.Delete(ctx, key); err != nil && !errors.Is(err, remote.ErrNotFound) {
			return fmt.Errorf("gc: delete %s: %w", key, err)
		}
	}
	return nil
}
