package clock

import (
	"context"
	"time"
)

// Clock tells the time and waits. All methods are safe for concurrent use.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// After returns a channel that receives the time once d has passed.
	After(d time.Duration) <-chan time.Time
	// Sleep waits for d to pass or ctx to end, and returns ctx's error in
	// the second case. A d of zero or less returns at once (nil unless ctx
	// has ended).
	Sleep(ctx context.Context, d time.Duration) error
}

// Real returns the wall clock.
func Real() Clock { return realClock{} }

// OrReal returns c, or the wall clock if c is nil: the default of an
// option that was not set.
func OrReal(c Clock) Clock {
	if c == nil {
		return Real()
	}
	return c
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Func returns a clock that tells the time now returns and waits on the
// wall clock: for a time read from elsewhere (a test's variable, a file)
// that moves at the wall clock's pace or not at all.
func Func(now func() time.Time) Clock { return funcClock(now) }

type funcClock func() time.Time

func (f funcClock) Now() time.Time                                 { return f() }
func (funcClock) After(d time.Duration) <-chan time.Time           { return Real().After(d) }
func (funcClock) Sleep(ctx context.Context, d time.Duration) error { return Real().Sleep(ctx, d) }
