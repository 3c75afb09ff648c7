package clock

import (
	"context"
	"sync"
	"time"
)

// Fake is a Clock for tests: its time moves only by Advance and Set, and
// what waits on it (After, Sleep) wakes when the time is moved to or past
// the end of the wait. The zero value is not usable; call NewFake.
type Fake struct {
	mu      sync.Mutex
	changed *sync.Cond // broadcast when waiters are added
	now     time.Time
	waiters []fakeWaiter
}

type fakeWaiter struct {
	until time.Time
	ch    chan time.Time
}

var _ Clock = (*Fake)(nil)

// NewFake returns a fake clock that reads start until moved.
func NewFake(start time.Time) *Fake {
	f := &Fake{now: start}
	f.changed = sync.NewCond(&f.mu)
	return f
}

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// After returns a channel that receives the fake time once the clock has
// been moved d past now. A d of zero or less fires at once.
func (f *Fake) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if d <= 0 {
		ch <- f.now
		return ch
	}
	f.waiters = append(f.waiters, fakeWaiter{until: f.now.Add(d), ch: ch})
	f.changed.Broadcast()
	return ch
}

// Sleep waits until the clock has been moved d past now, or ctx ends.
func (f *Fake) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-f.After(d):
		return nil
	}
}

// Advance moves the clock forward by d and wakes every wait that has
// ended. A negative d is a mistake of the test and panics.
func (f *Fake) Advance(d time.Duration) {
	if d < 0 {
		panic("clock: Fake.Advance with a negative duration")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.setLocked(f.now.Add(d))
}

// Set moves the clock to t, forward or back, and wakes every wait that
// ends at or before t.
func (f *Fake) Set(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.setLocked(t)
}

func (f *Fake) setLocked(t time.Time) {
	f.now = t
	kept := f.waiters[:0]
	for _, w := range f.waiters {
		if w.until.After(t) {
			kept = append(kept, w)
			continue
		}
		w.ch <- t // buffered, and sent to once
	}
	clear(f.waiters[len(kept):])
	f.waiters = kept
}

// Waiters returns how many waits (After, Sleep) have not ended yet. A
// wait abandoned by a cancelled Sleep counts until the clock passes it.
func (f *Fake) Waiters() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.waiters)
}

// BlockUntil returns once at least n waits are pending, or ctx ends (and
// then returns its error). A test calls it before Advance to know that
// the goroutine it drives has begun to wait.
func (f *Fake) BlockUntil(ctx context.Context, n int) error {
	stop := context.AfterFunc(ctx, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.changed.Broadcast()
	})
	defer stop()
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(f.waiters) < n {
		if err := ctx.Err(); err != nil {
			return err
		}
		f.changed.Wait()
	}
	return nil
}
