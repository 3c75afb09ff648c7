package par

import (
	"context"

	"golang.org/x/sync/errgroup"
)

// Stream calls fn on workers goroutines for every item that produce
// sends, as produce sends them, and returns the first error of produce
// or fn. send blocks while every worker is busy, so that what is in
// flight stays bounded however many items produce finds; after the first
// error it returns the context's error and no new item starts.
func Stream[T any](ctx context.Context, workers int, produce func(ctx context.Context, send func(T) error) error, fn func(context.Context, T) error) error {
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
		return produce(gctx, func(it T) error {
			select {
			case ch <- it:
				return nil
			case <-gctx.Done():
				return gctx.Err()
			}
		})
	})
	return g.Wait()
}
