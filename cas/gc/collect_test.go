package gc

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cas-ml/cas/clock"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/remote"
)

// fakeStore marks what it is told: live and unreadable packs by name,
// every other pack on the backend unreferenced.
type fakeStore struct {
	be               *remote.Mem
	clk              *clock.Fake
	live, unreadable map[digest.Digest]bool
	rewrites         [][]digest.Digest
	changed          int
}

func (s *fakeStore) Backend() remote.Backend { return s.be }
func (s *fakeStore) Clock() clock.Clock      { return s.clk }
func (s *fakeStore) Connections() int        { return 2 }
func (s *fakeStore) Changed(context.Context) error {
	s.changed++
	return nil
}

func (s *fakeStore) Mark(ctx context.Context) (*Marks, error) {
	m := &Marks{Packs: map[digest.Digest]remote.ObjectInfo{}, Live: s.live, Unreadable: s.unreadable}
	err := s.be.List(ctx, "packs/", func(oi remote.ObjectInfo) error {
		m.Packs[digest.Of([]byte(oi.Key))] = oi
		return nil
	})
	m.Rewrite = func(_ context.Context, del map[digest.Digest]bool, _ bool) ([]string, error) {
		s.rewrites = append(s.rewrites, SortedDigests(del))
		return nil, nil
	}
	return m, err
}

// put stores a pack named key; its ID, for the fake, is the key's digest.
func (s *fakeStore) put(t *testing.T, key string) digest.Digest {
	t.Helper()
	if err := s.be.Put(t.Context(), key, strings.NewReader(key), int64(len(key)), remote.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	return digest.Of([]byte(key))
}

func (s *fakeStore) has(t *testing.T, key string) bool {
	_, err := s.be.Stat(t.Context(), key)
	return err == nil
}

// TestCollectTwoPhases: a first collection plans the old unreferenced
// pack and deletes nothing; one a grace period later deletes it, records
// the deletion and removes the plan. Live, unreadable, young and kept
// packs stay.
func TestCollectTwoPhases(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	s := &fakeStore{be: remote.NewMemClock(clk), clk: clk}
	live, unreadable, old, kept := s.put(t, "packs/live"), s.put(t, "packs/unreadable"), s.put(t, "packs/old"), s.put(t, "packs/kept")
	s.live = map[digest.Digest]bool{live: true}
	s.unreadable = map[digest.Digest]bool{unreadable: true}
	clk.Advance(2 * time.Hour)
	s.put(t, "packs/young")

	rep, err := Collect(ctx, s, Options{Grace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Planned.Packs != 2 || rep.LivePacks != 1 || rep.Young != 1 || rep.Freed.Packs != 0 || rep.Plan == "" {
		t.Fatalf("first collection: %+v", rep)
	}
	// A push relies on one condemned pack.
	if err := PutJSON(ctx, s.be, KeepPrefix+NewID(clk.Now()), &Keep{Packs: []digest.Digest{kept}}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Hour)
	rep, err = Collect(ctx, s, Options{Grace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Freed.Packs != 1 || rep.Spared != 1 {
		t.Errorf("second collection: %+v, want 1 freed and 1 spared", rep)
	}
	for key, want := range map[string]bool{"packs/live": true, "packs/unreadable": true, "packs/old": false, "packs/kept": true, "packs/young": true} {
		if s.has(t, key) != want {
			t.Errorf("%s there = %v, want %v", key, !want, want)
		}
	}
	if len(s.rewrites) != 1 || !slices.Equal(s.rewrites[0], []digest.Digest{old}) || s.changed != 1 {
		t.Errorf("rewrites %v, changed %d: want the segments of %s rewritten once", s.rewrites, s.changed, old.Short())
	}
	st, err := ReadState(ctx, s.be)
	if err != nil {
		t.Fatal(err)
	}
	// The sweep's plan is gone with the keep marker it honoured; the mark
	// after it condemned what is now old and unkept.
	young := digest.Of([]byte("packs/young"))
	if len(st.Plans) != 1 || !slices.Equal(st.Plans[0].Packs, SortedDigests(map[digest.Digest]bool{kept: true, young: true})) ||
		len(st.Sweeping) != 0 || len(st.KeepKeys) != 0 || len(st.Done) != 1 {
		t.Errorf("gc/ after the sweep: %+v, want a new plan of the kept and young packs and one done record", st)
	}
	var done Done
	if err := GetJSON(ctx, s.be, st.Done[0], &done); err != nil || !slices.Equal(done.Packs, []digest.Digest{old}) {
		t.Errorf("done record %+v, %v", done, err)
	}
}

// TestCollectNoGraceDryRun: a dry run with no grace says what it would
// free and writes nothing.
func TestCollectNoGraceDryRun(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	s := &fakeStore{be: remote.NewMemClock(clk), clk: clk}
	s.put(t, "packs/a")
	s.put(t, "packs/b")
	rep, err := Collect(t.Context(), s, Options{Grace: NoGrace, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Freed.Packs != 2 || !rep.DryRun {
		t.Errorf("dry run: %+v", rep)
	}
	if !s.has(t, "packs/a") || !s.has(t, "packs/b") {
		t.Error("a dry run deleted a pack")
	}
	st, _ := ReadState(t.Context(), s.be)
	if len(st.Plans)+len(st.Done) != 0 {
		t.Errorf("a dry run wrote %+v", st)
	}
}

// TestCollectStopsOnAStepError: a sweep stopped between its steps (a kill)
// leaves its plan to the next collection, which finishes it.
func TestCollectStopsOnAStepError(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	s := &fakeStore{be: remote.NewMemClock(clk), clk: clk}
	s.put(t, "packs/a")
	kill := errors.New("killed")
	_, err := Collect(t.Context(), s, Options{Grace: NoGrace, StepHook: func(step string) error {
		if step == "deletions recorded" {
			return kill
		}
		return nil
	}})
	if !errors.Is(err, kill) || !s.has(t, "packs/a") {
		t.Fatalf("killed sweep: %v; pack there %v", err, s.has(t, "packs/a"))
	}
	// The dead sweep's claim expires with the lease (none with no grace).
	if _, err := Collect(t.Context(), s, Options{Grace: NoGrace}); err != nil {
		t.Fatal(err)
	}
	if s.has(t, "packs/a") {
		t.Error("the next collection did not finish the plan")
	}
}

// TestClaimFailureLeavesNoMarker: a gc that fails to claim its second
// plan gives back the claim it took on the first, so the next gc is not
// told another is running.
func TestClaimFailureLeavesNoMarker(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	mem := remote.NewMemClock(clk)
	plans := []*Plan{{ID: "p1"}, {ID: "p2"}}
	for _, p := range plans {
		if err := PutJSON(ctx, mem, PlansPrefix+p.ID, p); err != nil {
			t.Fatal(err)
		}
	}
	be := remote.NewFault(mem)
	broken := errors.New("network down")
	be.FailPut = func(key string) error {
		if key == SweepPrefix+"p2" {
			return broken
		}
		return nil
	}
	if _, _, err := claimSweeps(ctx, be, clk, plans, time.Hour); !errors.Is(err, broken) {
		t.Fatalf("claimSweeps: %v, want the failed put", err)
	}
	st, err := ReadState(ctx, mem)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Sweeping) != 0 {
		t.Errorf("claims left behind: %v", st.Sweeping)
	}
}
