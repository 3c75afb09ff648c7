package clock_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/cas-ml/cas/clock"
)

var start = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// fired reports whether ch has a value now, without waiting.
func fired(ch <-chan time.Time) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestFakeMovesOnlyWhenTold(t *testing.T) {
	t.Parallel()
	f := clock.NewFake(start)
	if got := f.Now(); !got.Equal(start) {
		t.Fatalf("Now() = %v, want %v", got, start)
	}
	f.Advance(90 * time.Minute)
	if got, want := f.Now(), start.Add(90*time.Minute); !got.Equal(want) {
		t.Fatalf("after Advance: Now() = %v, want %v", got, want)
	}
	f.Set(start.Add(-time.Hour))
	if got, want := f.Now(), start.Add(-time.Hour); !got.Equal(want) {
		t.Fatalf("after Set: Now() = %v, want %v", got, want)
	}
}

func TestFakeAfterFiresWhenPassed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		wait   time.Duration
		moves  []time.Duration
		fires  bool
		waiter int // waits left pending
	}{
		{name: "not yet", wait: time.Second, moves: []time.Duration{999 * time.Millisecond}, fires: false, waiter: 1},
		{name: "exactly", wait: time.Second, moves: []time.Duration{time.Second}, fires: true},
		{name: "in steps", wait: time.Second, moves: []time.Duration{600 * time.Millisecond, 600 * time.Millisecond}, fires: true},
		{name: "past", wait: time.Second, moves: []time.Duration{time.Hour}, fires: true},
		{name: "zero", wait: 0, fires: true},
		{name: "negative", wait: -time.Second, fires: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := clock.NewFake(start)
			ch := f.After(tt.wait)
			for _, d := range tt.moves {
				f.Advance(d)
			}
			if got := fired(ch); got != tt.fires {
				t.Errorf("fired = %v, want %v", got, tt.fires)
			}
			if got := f.Waiters(); got != tt.waiter {
				t.Errorf("Waiters() = %d, want %d", got, tt.waiter)
			}
		})
	}
}

func TestFakeAfterReceivesTheNewTime(t *testing.T) {
	t.Parallel()
	f := clock.NewFake(start)
	ch := f.After(time.Minute)
	f.Advance(time.Hour)
	if got, want := <-ch, start.Add(time.Hour); !got.Equal(want) {
		t.Errorf("After sent %v, want %v", got, want)
	}
}

func TestFakeSetBackDoesNotFire(t *testing.T) {
	t.Parallel()
	f := clock.NewFake(start)
	ch := f.After(time.Minute)
	f.Set(start.Add(-time.Hour))
	if fired(ch) {
		t.Fatal("After fired when the clock was set back")
	}
	f.Set(start.Add(time.Minute))
	if !fired(ch) {
		t.Fatal("After did not fire when the clock was set to its end")
	}
}

func TestFakeSleep(t *testing.T) {
	t.Parallel()
	f := clock.NewFake(start)
	done := make(chan error, 1)
	go func() { done <- f.Sleep(t.Context(), time.Minute) }()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := f.BlockUntil(ctx, 1); err != nil {
		t.Fatalf("BlockUntil: %v", err)
	}
	select {
	case err := <-done:
		t.Fatalf("Sleep returned %v before the clock moved", err)
	default:
	}
	f.Advance(time.Minute)
	if err := <-done; err != nil {
		t.Fatalf("Sleep: %v, want nil", err)
	}
}

func TestSleepCancelled(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]clock.Clock{"fake": clock.NewFake(start), "real": clock.Real()} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			if err := c.Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
				t.Errorf("Sleep on a cancelled context: %v, want context.Canceled", err)
			}
			if err := c.Sleep(ctx, 0); !errors.Is(err, context.Canceled) {
				t.Errorf("Sleep(0) on a cancelled context: %v, want context.Canceled", err)
			}
		})
	}
}

func TestFakeBlockUntilStopsWithContext(t *testing.T) {
	t.Parallel()
	f := clock.NewFake(start)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.BlockUntil(ctx, 1) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("BlockUntil with no waiter and a cancelled context: %v, want context.Canceled", err)
	}
}

// Many goroutines waiting and moving the clock at once: every wait ends
// (run with -race).
func TestFakeConcurrent(t *testing.T) {
	t.Parallel()
	f := clock.NewFake(start)
	const n = 50
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f.Sleep(t.Context(), time.Duration(i+1)*time.Millisecond); err != nil {
				t.Error(err)
			}
		}()
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := f.BlockUntil(ctx, n); err != nil {
		t.Fatalf("BlockUntil(%d): %v", n, err)
	}
	var movers sync.WaitGroup
	for range 10 {
		movers.Add(1)
		go func() {
			defer movers.Done()
			for range 10 {
				f.Advance(time.Millisecond)
				_ = f.Now()
			}
		}()
	}
	movers.Wait()
	wg.Wait()
	if got := f.Waiters(); got != 0 {
		t.Errorf("Waiters() = %d after every wait ended, want 0", got)
	}
}

func TestRealTellsTheTime(t *testing.T) {
	t.Parallel()
	c := clock.Real()
	before := time.Now()
	now := c.Now()
	if now.Before(before) || now.Sub(before) > time.Minute {
		t.Errorf("Real().Now() = %v, want about %v", now, before)
	}
	if err := c.Sleep(t.Context(), time.Millisecond); err != nil {
		t.Errorf("Real().Sleep: %v", err)
	}
	if got := clock.OrReal(nil).Now(); got.Before(before) {
		t.Errorf("OrReal(nil).Now() = %v, before %v", got, before)
	}
	f := clock.NewFake(start)
	if got := clock.OrReal(f); got != clock.Clock(f) {
		t.Errorf("OrReal(f) = %v, want f", got)
	}
}

func TestFuncTellsItsTime(t *testing.T) {
	t.Parallel()
	at := start
	c := clock.Func(func() time.Time { return at })
	if got := c.Now(); !got.Equal(start) {
		t.Errorf("Now() = %v, want %v", got, start)
	}
	at = at.Add(time.Hour)
	if got := c.Now(); !got.Equal(start.Add(time.Hour)) {
		t.Errorf("Now() = %v, want %v", got, start.Add(time.Hour))
	}
}
