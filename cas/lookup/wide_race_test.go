package lookup

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/remote"
)

// Writers of wide runs and of runs in shards at once, each compacting as
// an upload does (so the wide area is merged, then split), with readers
// looking up what was written before they started: no lookup fails, and
// once the writers are done every entry is found.
func TestWideAreaUnderConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	defer func(n int64) { splitAt = n }(splitAt)
	be := remote.NewMem()
	if err := MarkIndexed(ctx, be); err != nil {
		t.Fatal(err)
	}
	probe, err := format.EncodeRunIn(format.WideShard, entries(0, WideMin))
	if err != nil {
		t.Fatal(err)
	}
	splitAt = int64(len(probe)) * 5 // a split every few wide runs
	var (
		mu    sync.Mutex
		done  []format.RunEntry
		wg    sync.WaitGroup
		stop  atomic.Bool
		fails atomic.Int64
		gaps  atomic.Int64
		reads atomic.Int64
	)
	upload := func(es []format.RunEntry) error {
		shards, w, err := Write(ctx, be, es, 4, Layout{Wide: true, Mark: true})
		if err != nil {
			return err
		}
		if !containsWide(shards) {
			shards = append(shards, format.WideShard)
		}
		if _, err := Compact(ctx, be, shards, 4, Policy{Budget: 4*w.Bytes + 4<<20}); err != nil {
			return err
		}
		mu.Lock()
		done = append(done, es...)
		mu.Unlock()
		return nil
	}
	var writers sync.WaitGroup
	for w := range 3 {
		writers.Go(func() {
			for p := range 6 {
				n := WideMin
				if w == 2 && p%2 == 1 {
					n = 20 // into the shards
				}
				if err := upload(entries(1000*(w+1)+p, n)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for range 3 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(1, 2))
			for !stop.Load() {
				mu.Lock()
				var ids []digest.Digest
				for range 20 {
					if len(done) > 0 {
						ids = append(ids, done[rng.IntN(len(done))].ID)
					}
				}
				mu.Unlock()
				if len(ids) == 0 {
					continue
				}
				got, err := NewReader(be, 4).Lookup(ctx, ids)
				reads.Add(1)
				if err != nil {
					if errors.Is(err, remote.ErrNotFound) {
						fails.Add(1)
						continue
					}
					t.Error(err)
					return
				}
				for _, id := range ids {
					if len(got[id]) == 0 {
						gaps.Add(1)
					}
				}
			}
		})
	}
	writers.Wait()
	stop.Store(true)
	wg.Wait()
	t.Logf("%d lookups beside the writers: %d failed on a run gone twice, %d IDs not found", reads.Load(), fails.Load(), gaps.Load())
	if fails.Load() > 0 {
		t.Errorf("%d lookups failed (a run listed, gone, listed again, gone): a reader must take that as a gap, not an error", fails.Load())
	}
	if _, err := Compact(ctx, be, []string{format.WideShard}, 4, Policy{}); err != nil {
		t.Fatal(err)
	}
	checkAll(t, be, done)
}

func containsWide(shards []string) bool {
	for _, s := range shards {
		if s == format.WideShard {
			return true
		}
	}
	return false
}
