package par

import (
	"context"

	"golang.org/x/sync/errgroup"
)

// ForEach calls fn for every item on workers goroutines, in order of
// hand-out, and returns the first error; after it, no new item starts.
func ForEach[T any](ctx context.Context, items []T, workers int, fn func(context.Context, T) error) error {
	g, gctx := errgroup.WithContext(ctx)
	ch := make(chan T)
	for range workers {
		g.Go(func() error {
			for it := range ch {
				if err := fn(gctx, it); err != nil {
					return err
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		defer close(ch)
		for _, it := range items {
			select {
			case ch <- it:
			case <-gctx.Done():
				return nil
			}
		}
		return nil
	})
	return g.Wait()
}
