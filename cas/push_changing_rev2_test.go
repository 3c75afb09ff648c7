package cas

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cas-ml/cas/digest"
)

// TestPushLargeFileRewrittenRev2 pushes a large file (three read buffers
// and more) that another goroutine keeps rewriting in place, in turn with
// two contents of the same size, a chunk's worth at a time, and then one
// that it truncates and grows back, resting for a while between rewrites.
// A push may fail (the file kept changing), but if it succeeds the digest
// it stored must be that of one of the contents, and the file restored
// must be those bytes. Once the rewriting stops, a push must succeed with
// the digest of the last content, whatever the failed pushes left behind.
func TestPushLargeFileRewrittenRev2(t *testing.T) {
	if testing.Short() {
		t.Skip("rewrites a 50 MiB file during pushes")
	}
	const size = 50<<20 + 333
	a, b := pseudoRandom(size, 1), pseudoRandom(size, 2)
	copy(b[:20<<20], a) // the same first chunks: only later ones change
	for _, mode := range []string{"rewrite", "truncate"} {
		t.Run(mode, func(t *testing.T) {
			src := filepath.Join(t.TempDir(), "f")
			if err := os.WriteFile(src, a, 0o644); err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var last []byte // the content written last, once wg is done
			wg.Go(func() {
				f, err := os.OpenFile(src, os.O_WRONLY, 0)
				if err != nil {
					t.Error(err)
					return
				}
				defer f.Close()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					data := [][]byte{a, b}[i%2]
					if mode == "truncate" {
						_ = f.Truncate(int64(size / 3 * (1 + i%2)))
					}
					for off := 0; off < size; off += 1 << 20 {
						_, _ = f.WriteAt(data[off:min(size, off+1<<20)], int64(off))
					}
					last = data
					// Rests of 1 to 121 ms: some pushes overlap a rewrite,
					// some may fit between two.
					time.Sleep(time.Millisecond + time.Duration(i%4)*40*time.Millisecond)
				}
			})
			r := newStoreForTest(t, DefaultChunkAvg)
			var pushed []digest.Digest
			for range 4 {
				res, err := pushWithin(t, r, []string{src}, PushOptions{})
				if err == nil {
					pushed = append(pushed, res.Digest)
				}
			}
			close(stop)
			wg.Wait()
			t.Logf("%d of 4 pushes during the rewrites succeeded", len(pushed))
			res, err := pushWithin(t, r, []string{src}, PushOptions{})
			if err != nil {
				t.Fatalf("push after the rewrites stopped: %v", err)
			}
			if res.Digest != digest.Of(last) {
				t.Fatalf("push after the rewrites stopped: %v, want %v (the last content)", res.Digest.Short(), digest.Of(last).Short())
			}
			pushed = append(pushed, res.Digest)
			for _, d := range pushed {
				if d != digest.Of(a) && d != digest.Of(b) {
					t.Errorf("pushed %v, the digest of neither content", d.Short())
					continue
				}
				dest := filepath.Join(t.TempDir(), "out")
				obj, err := r.Resolve(t.Context(), d.String())
				if err != nil {
					t.Fatal(err)
				}
				if _, err := r.Restore(t.Context(), obj, dest, RestoreOptions{}); err != nil {
					t.Errorf("Restore %v: %v", d.Short(), err)
					continue
				}
				got, _ := os.ReadFile(dest)
				if digest.Of(got) != d || !bytes.Equal(got, a) && !bytes.Equal(got, b) {
					t.Errorf("restored %d bytes of digest %v, want %v", len(got), digest.Of(got).Short(), d.Short())
				}
			}
		})
	}
}
