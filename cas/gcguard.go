package cas

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/cas/gc"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/remote"
)

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
	return r.guardGC(ctx, be, func() (map[digest.Digest]bool, error) { return r.closureOf(ctx, objs) })
}

// guardGC is GuardGC for the packs need returns; need is asked only
// when a plan or a finished sweep makes it matter.
func (r *Repo) guardGC(ctx context.Context, be remote.Backend, needed func() (map[digest.Digest]bool, error)) error {
	if be == nil {
		be = r.Backend
	}
	st, err := gc.ReadState(ctx, be)
	if err != nil {
		return err
	}
	swept, err := r.forgetRecords(ctx, be, st.Done)
	if err != nil || (len(st.Plans) == 0 && !swept) {
		return err
	}
	need, err := needed()
	if err != nil {
		if errors.Is(err, ErrNotFound) && swept {
			return fmt.Errorf("%w: %w", errCollected, err)
		}
		return fmt.Errorf("gc guard: %w", err)
	}
	if swept {
		if err := r.restorePacks(ctx, be, need); err != nil {
			return err
		}
	}
	hit := map[digest.Digest]bool{}
	var hitPlans []string
	sweeping := false
	for _, p := range st.Plans {
		if slices.ContainsFunc(p.Packs, func(id digest.Digest) bool { return need[id] }) {
			hitPlans = append(hitPlans, p.ID)
			sweeping = sweeping || st.Sweeping[p.ID]
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
		keep := &gc.Keep{Created: r.Now().UTC().Truncate(time.Millisecond), Packs: gc.SortedDigests(hit)}
		if err := gc.PutJSON(ctx, be, gc.KeepPrefix+gc.NewID(r.Now()), keep); err != nil {
			return fmt.Errorf("gc guard: write keep marker: %w", err)
		}
		// A sweep that began before the marker landed may not have seen
		// it; one that ended meanwhile has deleted what it deleted.
		again, err := gc.ReadState(ctx, be)
		if err != nil {
			return err
		}
		for _, id := range hitPlans {
			sweeping = sweeping || again.Sweeping[id]
		}
		if !sweeping {
			if swept, err := r.forgetRecords(ctx, be, again.Done); err != nil || !swept {
				return err
			}
			return r.restorePacks(ctx, be, need)
		}
	}
	return r.afterSweep(ctx, be, hitPlans, need)
}

// errCollected: a gc deleted data that a push relied on.
var errCollected = errors.New("a gc deleted data this push relied on: push again")

// afterSweep waits for the sweeps of plans to end, then makes sure the
// packs of need are on be. It waits while a sweep's claim is live (a
// running gc renews it, docs/FORMAT.md §10), and says so; a claim that
// has run out is a dead gc's, which only another gc finishes: then it
// stops at once and says so.
func (r *Repo) afterSweep(ctx context.Context, be remote.Backend, plans []string, need map[digest.Digest]bool) error {
	lease := gc.SweepLease(DefaultGrace)
	// A claim that cannot be read counts from when the wait began.
	began := r.Now()
	said := false
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		st, err := gc.ReadState(ctx, be)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(plans, func(id string) bool { return st.Sweeping[id] }) {
			if _, err := r.forgetRecords(ctx, be, st.Done); err != nil {
				return err
			}
			break
		}
		// The latest claim among the sweeps still under way.
		var plan string
		started := time.Time{}
		for _, id := range plans {
			if !st.Sweeping[id] {
				continue
			}
			var m gc.SweepMarker
			at := began
			if err := gc.GetJSON(ctx, be, gc.SweepPrefix+id, &m); err == nil && !m.Started.IsZero() {
				at = m.Started
			}
			if plan == "" || at.After(started) {
				plan, started = id, at
			}
		}
		if r.Now().After(started.Add(lease)) {
			return fmt.Errorf("%w: a gc that began sweeping plan %s on %s at %s died while deleting what this push needs (its claim ran out at %s): run gc on that store to finish its work, then push again",
				ErrGCBusy, plan, be.Location(), started.Format(time.RFC3339), started.Add(lease).Format(time.RFC3339))
		}
		if !said {
			said = true
			r.warn(fmt.Errorf("waiting for the gc sweeping plan %s on %s, which may delete what this push needs (it began at %s; a gc that died holds it until %s)",
				plan, be.Location(), started.Format(time.RFC3339), started.Add(lease).Format(time.RFC3339)))
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
	missing, err := r.missingPacks(ctx, be, need)
	if err != nil {
		return err
	}
	if len(missing) == 0 {
		return nil
	}
	if be == r.Backend {
		return fmt.Errorf("%w (pack %s)", errCollected, missing[0].Short())
	}
	for _, id := range missing {
		if _, err := r.Backend.Stat(ctx, format.PackKey(id)); err != nil {
			return fmt.Errorf("%w (pack %s, which the local store lacks too)", errCollected, id.Short())
		}
	}
	if _, err := r.uploadAll(ctx, be, nil); err != nil {
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
	err := be.List(ctx, gc.DonePrefix, func(oi remote.ObjectInfo) error {
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
		seen, err := r.Index.HasRecord(mark)
		if err != nil {
			return false, err
		}
		if seen {
			continue
		}
		var done gc.Done
		err = gc.GetJSON(ctx, be, key, &done)
		switch {
		case errors.Is(err, remote.ErrNotFound) || errors.Is(err, ErrInvalidObject):
			// Gone since the listing, or nothing a gc wrote: nothing to act on.
		case err != nil:
			return false, err // read it again next time: a sweep's deletions must not go unseen
		}
		marks = append(marks, mark)
		for _, id := range done.Packs {
			if known, err := r.Index.HasPack(id); known || err != nil {
				stale = true // when unsure, rebuild
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
