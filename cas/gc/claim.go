package gc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cas-ml/cas/clock"
	"github.com/cas-ml/cas/remote"
)

// A sweep claims each plan it carries out with a marker, gc/sweeps/<plan>
// (docs/FORMAT.md §10). Every write of a marker after the first is
// conditional on the version this gc itself last wrote (IfMatch), so a
// gc whose claim another gc took over (it looked dead: its marker was
// older than the lease) finds out at its next write and never writes over
// the new owner's claim:
//
//   - the takeover of a dead claim is conditional on the version read;
//   - a renewal is conditional on the version of the last renewal;
//   - a finishing gc first overwrites its marker, conditionally, with a
//     released one, and only then deletes it. No gc takes over a released
//     marker (the plan is carried out; it only deletes the plan), so the
//     unconditional Delete that follows removes the released marker and
//     nothing else. (remote.Backend has no conditional Delete.)
//
// A Put does not return the ETag it stored, so after each write the gc
// learns it with a Stat followed by a Get: if the Get returns the marker
// naming this gc as its owner, the Stat saw that same version, since this
// gc wrote it before the Stat and no later version can name it again.

// SweepMarker says that a gc is carrying out a plan.
type SweepMarker struct {
	Plan    string    `json:"plan"`
	Started time.Time `json:"started"`
	// Owner names the gc that holds the claim (a random id per sweep);
	// markers of older versions of cas have none.
	Owner string `json:"owner,omitempty"`
	// Released: the owner carried the plan out and is deleting its
	// records. Nobody takes a released claim over.
	Released bool `json:"released,omitempty"`
}

// SweepLease is how long a sweep marker stands for a live gc: ten
// minutes, or less with a shorter grace period (--grace 0 claims the
// store for itself).
func SweepLease(grace time.Duration) time.Duration {
	return max(0, min(10*time.Minute, grace))
}

// errClaimLost: another gc took over a sweep this gc had claimed.
var errClaimLost = errors.New("sweep claim lost")

// sweepClaims are the markers one sweep holds.
type sweepClaims struct {
	be    remote.Backend
	clock clock.Clock
	owner string

	mu   sync.Mutex
	held map[string]string // plan id → ETag of the marker this gc last wrote
	lost error             // the first claim lost, as the error the sweep returns
	// cancel stops the sweep when a claim is lost.
	cancel context.CancelCauseFunc
}

// claimSweeps claims the plans for one sweep. It returns the plans this gc
// is to carry out: those a finished gc released are left out (their
// records are deleted). It fails with ErrBusy when a live gc holds a
// claim, or when another gc took a dead one over first.
func claimSweeps(ctx context.Context, be remote.Backend, clk clock.Clock, plans []*Plan, lease time.Duration) (*sweepClaims, []*Plan, error) {
	c := &sweepClaims{be: be, clock: clk, owner: NewID(clk.Now()), held: map[string]string{}}
	var mine []*Plan
	for _, p := range plans {
		released, err := c.claim(ctx, p, lease)
		if err != nil {
			c.abandon(ctx)
			return nil, nil, err
		}
		if released {
			// Its owner died before it deleted the records: do it for it,
			// in its order (nobody writes a released marker again).
			for _, key := range []string{PlansPrefix + p.ID, SweepPrefix + p.ID} {
				if err := be.Delete(ctx, key); err != nil && !errors.Is(err, remote.ErrNotFound) {
					c.abandon(ctx)
					return nil, nil, fmt.Errorf("gc: delete %s: %w", key, err)
				}
			}
			continue
		}
		mine = append(mine, p)
	}
	return c, mine, nil
}

// abandon deletes the markers of the claims this gc holds, when it gives
// up before sweeping: left behind, they would make every gc report
// ErrBusy, and every push needing a condemned pack wait, for a lease. No
// other gc takes a claim over within its lease, so the plain Delete
// removes this gc's own marker.
func (c *sweepClaims) abandon(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	for _, plan := range c.plans() {
		_ = c.be.Delete(ctx, SweepPrefix+plan)
	}
}

// claim writes the marker of plan p, or takes over that of a dead gc. It
// reports whether the plan's marker is a released one (nothing to claim).
func (c *sweepClaims) claim(ctx context.Context, p *Plan, lease time.Duration) (released bool, err error) {
	key := SweepPrefix + p.ID
	err = PutJSON(ctx, c.be, key, c.marker(p.ID, false))
	if errors.Is(err, remote.ErrExists) {
		// The version read decides: the takeover is conditional on it,
		// so of two gcs taking over a dead claim one wins.
		info, serr := c.be.Stat(ctx, key)
		var other SweepMarker
		gerr := GetJSON(ctx, c.be, key, &other)
		if serr == nil && gerr == nil && other.Released {
			return true, nil
		}
		if serr == nil && gerr == nil && other.Started.After(c.clock.Now().Add(-lease)) {
			return false, fmt.Errorf("%w: it began sweeping plan %s at %s on %s; if that gc died, run gc again after %s",
				ErrBusy, p.ID, other.Started.Format(time.RFC3339), c.be.Location(), other.Started.Add(lease).Format(time.RFC3339))
		}
		// A dead gc's claim: take it over, if it is still that one.
		if serr != nil {
			err = serr
		} else {
			err = writeJSON(ctx, c.be, key, c.marker(p.ID, false), remote.PutOptions{IfMatch: info.ETag})
		}
	}
	if err == nil {
		var etag string
		if etag, err = c.ownETag(ctx, key); err == nil {
			c.held[p.ID] = etag
			return false, nil
		}
	}
	if errors.Is(err, remote.ErrPrecondition) || errors.Is(err, remote.ErrNotFound) || errors.Is(err, errClaimLost) {
		return false, fmt.Errorf("%w: another gc took over the sweep of plan %s on %s meanwhile", ErrBusy, p.ID, c.be.Location())
	}
	return false, fmt.Errorf("gc: start sweep: %w", err)
}

func (c *sweepClaims) marker(plan string, released bool) SweepMarker {
	return SweepMarker{Plan: plan, Started: c.clock.Now().UTC(), Owner: c.owner, Released: released}
}

// ownETag returns the ETag of the marker at key if it is this gc's, and
// errClaimLost if it is another's.
func (c *sweepClaims) ownETag(ctx context.Context, key string) (string, error) {
	info, err := c.be.Stat(ctx, key)
	if err != nil {
		return "", err
	}
	var m SweepMarker
	if err := GetJSON(ctx, c.be, key, &m); err != nil {
		return "", err
	}
	if m.Owner != c.owner {
		return "", errClaimLost
	}
	return info.ETag, nil
}

// rewrite replaces this gc's marker of plan with a new one, if it is still
// this gc's. A claim found lost is dropped, recorded and stops the sweep;
// other errors leave the claim as it was (a renewal tries again).
func (c *sweepClaims) rewrite(ctx context.Context, plan string, released bool) error {
	key := SweepPrefix + plan
	c.mu.Lock()
	etag, ok := c.held[plan]
	c.mu.Unlock()
	if !ok {
		return errClaimLost
	}
	err := writeJSON(ctx, c.be, key, c.marker(plan, released), remote.PutOptions{IfMatch: etag})
	if err == nil {
		etag, err = c.ownETag(ctx, key)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err == nil:
		c.held[plan] = etag
		return nil
	case errors.Is(err, remote.ErrPrecondition) || errors.Is(err, remote.ErrNotFound) || errors.Is(err, errClaimLost):
		delete(c.held, plan)
		if c.lost == nil {
			c.lost = fmt.Errorf("%w: another gc took over the sweep of plan %s on %s; this gc stopped and left the plan to it",
				ErrBusy, plan, c.be.Location())
			if c.cancel != nil {
				c.cancel(c.lost)
			}
		}
		return errClaimLost
	default:
		return err
	}
}

// lostErr is the error of the first claim lost, or nil. A nil c (a dry
// run, which claims nothing) has lost nothing.
func (c *sweepClaims) lostErr() error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lost
}

// renew rewrites the held markers every third of the lease, so that a
// long sweep is never taken for a dead one. It returns ctx, cancelled
// when a claim is found lost, and a function that stops the renewals and
// waits for the last one to end (none lands after the release).
func (c *sweepClaims) renew(ctx context.Context, lease time.Duration) (context.Context, func()) {
	sweepCtx, cancel := context.WithCancelCause(ctx)
	c.mu.Lock()
	c.cancel = cancel
	c.mu.Unlock()
	if lease <= 0 {
		return sweepCtx, func() {}
	}
	renewCtx, stop := context.WithCancel(sweepCtx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-renewCtx.Done():
				return
			case <-c.clock.After(max(lease/3, time.Second)):
				for _, plan := range c.plans() {
					_ = c.rewrite(renewCtx, plan, false)
				}
			}
		}
	}()
	var once sync.Once
	return sweepCtx, func() { once.Do(func() { stop(); <-done }) }
}

func (c *sweepClaims) plans() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := make([]string, 0, len(c.held))
	for id := range c.held {
		ids = append(ids, id)
	}
	return ids
}

// release marks every claim still held as released and reports the plans
// whose claim it released: only their records may be deleted. Claims
// found lost are left to the gc that took them.
func (c *sweepClaims) release(ctx context.Context) (map[string]bool, error) {
	released := map[string]bool{}
	for _, plan := range c.plans() {
		err := c.rewrite(ctx, plan, true)
		switch {
		case err == nil:
			released[plan] = true
		case errors.Is(err, errClaimLost):
		default:
			return released, fmt.Errorf("gc: release the sweep of plan %s: %w", plan, err)
		}
	}
	return released, nil
}
