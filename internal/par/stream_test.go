package par

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

func TestStreamRunsEveryItem(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	got := map[int]bool{}
	var inFlight, most atomic.Int32
	err := Stream(t.Context(), 3, func(_ context.Context, send func(int) error) error {
		for i := range 1000 {
			if err := send(i); err != nil {
				return err
			}
		}
		return nil
	}, func(_ context.Context, i int) error {
		n := inFlight.Add(1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		mu.Lock()
		got[i] = true
		mu.Unlock()
		inFlight.Add(-1)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1000 {
		t.Errorf("fn saw %d items, want 1000", len(got))
	}
	if m := most.Load(); m > 3 {
		t.Errorf("%d items in flight at once, want at most 3", m)
	}
}

func TestStreamFirstError(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	t.Run("from fn", func(t *testing.T) {
		err := Stream(t.Context(), 2, func(_ context.Context, send func(int) error) error {
			for i := 0; ; i++ {
				if err := send(i); err != nil {
					return err // the context's: the producer stops
				}
			}
		}, func(_ context.Context, i int) error {
			if i == 10 {
				return boom
			}
			return nil
		})
		if !errors.Is(err, boom) {
			t.Errorf("Stream: got %v, want %v", err, boom)
		}
	})
	t.Run("from produce", func(t *testing.T) {
		err := Stream(t.Context(), 2, func(_ context.Context, send func(int) error) error {
			if err := send(1); err != nil {
				return err
			}
			return boom
		}, func(context.Context, int) error { return nil })
		if !errors.Is(err, boom) {
			t.Errorf("Stream: got %v, want %v", err, boom)
		}
	})
}
