package par

import (
	"context"
)

// ForEach calls fn for every item on workers goroutines, in order of
// hand-out, and returns the first error; after it, no new item starts.
func ForEach[T any](ctx context.Context, items []T, workers int, fn func(context.Context, T) error) error {
	return Stream(ctx, workers, func(_ context.Context, send func(T) error) error {
		for _, it := range items {
			if send(it) != nil {
				return nil // stopped: the error that stopped it is fn's
			}
		}
		return nil
	}, fn)
}
