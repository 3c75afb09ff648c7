package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cas-ml/cas/cas/chunk"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
)

// failStore is a memStore whose HasBlob fails from its failAt-th call on
// (if failAt > 0), slowly, so that chunks stay in the hashers.
type failStore struct {
	memStore
	calls  atomic.Int32
	failAt int32
}

var errHas = errors.New("test: HasBlob failed")

func (s *failStore) HasBlob(context.Context, digest.Digest) (bool, error) {
	time.Sleep(100 * time.Microsecond)
	if n := s.calls.Add(1); s.failAt > 0 && n >= s.failAt {
		return false, errHas
	}
	return false, nil
}

// TestReadLargeConcurrentRev2 reads several large files at once through
// one pusher (whose budget of read buffers fits two files' first buffers
// and no more), some files having no cut for more than a buffer, while a
// hasher fails (HasBlob), or the push is cancelled, or nothing goes
// wrong. Each readLarge must end (no file waits for memory another holds
// while it waits), with the error when there is one, with the chunks of
// the file cut in memory when there is none, and must give every buffer
// back to the budget.
func TestReadLargeConcurrentRev2(t *testing.T) {
	params, _ := chunk.NewParams(4 << 10) // Max 32 KiB, buffer 8 MiB + 32 KiB
	rng := rand.New(rand.NewPCG(21, 3))
	bufSize := params.Max + 2*largeBlock
	sizes := []int{params.Max + 1, bufSize, bufSize + 1, 2*bufSize - 1, 3*bufSize + 17}
	datas := make([][]byte, 0, 2*len(sizes))
	for _, size := range sizes {
		datas = append(datas, genData("random", size, params.Max, rng), genData("mixed", size, params.Max, rng))
	}
	for _, mode := range []string{"ok", "hasblob", "cancel"} {
		t.Run(mode, func(t *testing.T) {
			st := &failStore{}
			if mode == "hasblob" {
				st.failAt = 3000
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			p := &pusher{s: st, chunker: chunk.New(params), opts: Options{Progress: &Progress{},
				NaturalCuts: func(io.ReaderAt, int64) []int64 { return nil }}}
			finish := p.start(ctx)
			if mode == "cancel" {
				time.AfterFunc(300*time.Millisecond, cancel)
			}
			var wg sync.WaitGroup
			errs := make([]error, len(datas))
			ids := make([][]digest.Digest, len(datas))
			digs := make([]digest.Digest, len(datas))
			for i, data := range datas {
				f := fileSource(t, data, rng)
				wg.Go(func() {
					n := &node{st: index.StatEntry{Size: int64(len(data))}}
					var deps []digest.Digest
					_, ids[i], errs[i] = p.readLarge(n, f, &deps)
					digs[i] = n.digest
				})
			}
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(3 * time.Minute):
				t.Fatal("readLarge of files read at once does not return")
			}
			ferr := finish(nil)
			if !p.budget.TryAcquire(p.memBudget()) {
				t.Errorf("after every readLarge returned, the budget does not have its %d bytes back", p.memBudget())
			}
			if !p.bufs.TryAcquire(p.bufBudget()) {
				t.Errorf("after every readLarge returned, the read buffers' budget does not have its %d bytes back", p.bufBudget())
			}
			var nerr int
			for i, data := range datas {
				switch {
				case errs[i] != nil:
					nerr++
					if mode == "ok" || mode == "hasblob" && !errors.Is(errs[i], errHas) && !errors.Is(errs[i], context.Canceled) {
						t.Errorf("file %d (%d bytes): %v", i, len(data), errs[i])
					}
				case digs[i] != digest.Of(data):
					t.Errorf("file %d (%d bytes): digest %v, want %v", i, len(data), digs[i].Short(), digest.Of(data).Short())
				default:
					if want := wantChunks(params, data, nil); fmt.Sprint(ids[i]) != fmt.Sprint(want) {
						t.Errorf("file %d (%d bytes): %d chunks, want %d", i, len(data), len(ids[i]), len(want))
					}
				}
			}
			if mode != "ok" && nerr == 0 && ferr == nil {
				t.Errorf("%s: no readLarge failed", mode)
			}
			if mode == "ok" {
				if ferr != nil {
					t.Errorf("finish: %v", ferr)
				}
				st.checkPacks(t)
			}
		})
	}
}
