package cas

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cas-ml/cas/index"
)

// peakLiveHeap runs fn and returns how far the live heap (what each
// garbage collection found reachable) rose above where it stood before.
func peakLiveHeap(t *testing.T, fn func()) uint64 {
	t.Helper()
	runtime.GC()
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	read := func() uint64 {
		metrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	base := read()
	var peak uint64
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Go(func() {
		for {
			peak = max(peak, read())
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
		}
	})
	fn()
	runtime.GC() // what fn left live counts too
	close(done)
	wg.Wait()
	peak = max(peak, read())
	if peak < base {
		return 0
	}
	return peak - base
}

// writeTinyFiles writes n files of 16 to 64 bytes, 1,000 a directory.
func writeTinyFiles(t *testing.T, root string, n int) {
	t.Helper()
	writeTinyFilesNamed(t, root, n, "f")
}

// writeTinyFilesNamed writes n files of 16 to 64 bytes, 1,000 a
// directory, whose names start with prefix.
func writeTinyFilesNamed(t *testing.T, root string, n int, prefix string) {
	t.Helper()
	buf := pseudoRandom(64*n, uint64(n))
	for i := range n {
		dir := filepath.Join(root, fmt.Sprintf("d%03d", i/1000))
		if i%1000 == 0 {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		size := 16 + int(binary.LittleEndian.Uint16(buf[64*i:]))%49
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s%06d", prefix, i)), buf[64*i:64*i+size], 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRestoreVerifyMemoryFlat restores and verifies a tree of 10^4 tiny
// files and one of 10^5: the live heap must rise no more for the larger.
// Listing every file first costs some hundreds of bytes a file, which
// 90,000 more files turn into tens of MiB; what the margin allows is
// buffers that fill up to their bound in one case and not the other.
// The heap is the process's: the test runs alone, not in parallel.
func TestRestoreVerifyMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and pushes 110,000 files")
	}
	const margin = 16 << 20
	type peaks struct{ restore, verify uint64 }
	got := map[int]peaks{}
	for _, n := range []int{10_000, 100_000} {
		ctx := t.Context()
		dir := filepath.Join(t.TempDir(), DirName)
		p, err := NewChunkParams(64 << 10)
		if err != nil {
			t.Fatal(err)
		}
		if err := Init(dir, p, time.Now()); err != nil {
			t.Fatal(err)
		}
		r, err := Open(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		src := filepath.Join(t.TempDir(), "src")
		writeTinyFiles(t, src, n)
		res, err := r.Push(ctx, []string{src}, PushOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// A restore runs in a process of its own: reopened, the store has
		// no compaction left over from the push that could build its
		// tables (tens of MiB of badger's buffers) while the heap is
		// watched, as one did now and then.
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if r, err = Open(ctx, dir); err != nil {
			t.Fatal(err)
		}
		obj := &Object{Digest: res.Digest, Kind: res.Kind, Size: res.Bytes}
		dest := filepath.Join(t.TempDir(), "dest")
		var pk peaks
		var restored *RestoreResult
		pk.restore = peakLiveHeap(t, func() { restored, err = r.Restore(ctx, obj, dest, RestoreOptions{}) })
		if err != nil || restored.Files != int64(n) {
			t.Fatalf("Restore of %d files: %+v, %v", n, restored, err)
		}
		var rep *VerifyReport
		pk.verify = peakLiveHeap(t, func() { rep, err = r.Verify(ctx, obj, "x", nil) })
		if err != nil || !rep.OK() || rep.Files != int64(n) {
			t.Fatalf("Verify of %d files: %+v, %v", n, rep, err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		got[n] = pk
		t.Logf("%d files: live heap rose %.1f MiB restoring, %.1f MiB verifying", n, float64(pk.restore)/(1<<20), float64(pk.verify)/(1<<20))
	}
	small, large := got[10_000], got[100_000]
	if large.restore > small.restore+margin {
		t.Errorf("Restore: live heap rose %d bytes for 10^5 files, %d for 10^4: want at most %d more", large.restore, small.restore, margin)
	}
	if large.verify > small.verify+margin {
		t.Errorf("Verify: live heap rose %d bytes for 10^5 files, %d for 10^4: want at most %d more", large.verify, small.verify, margin)
	}
}

// countingReleaser is an index that counts the calls of ReleasePages.
type countingReleaser struct {
	index.Index
	calls atomic.Int64
}

func (c *countingReleaser) ReleasePages() { c.calls.Add(1) }

// TestRestoreReleasesIndexPages restores 1,000 files and checks that the
// index was asked to hand back its mapped pages every releaseFiles files
// written, as a restore's lookups map them.
func TestRestoreReleasesIndexPages(t *testing.T) {
	r := newStoreForTest(t, 64<<10)
	src := filepath.Join(t.TempDir(), "src")
	writeTinyFiles(t, src, 1000)
	res, err := r.Push(t.Context(), []string{src}, PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	idx := &countingReleaser{Index: r.Index}
	r.Index = idx
	defer func() { r.Index = idx.Index }()
	obj := &Object{Digest: res.Digest, Kind: res.Kind, Size: res.Bytes}
	got, err := r.Restore(t.Context(), obj, filepath.Join(t.TempDir(), "dest"), RestoreOptions{})
	if err != nil || got.Files != 1000 {
		t.Fatalf("Restore: %+v, %v", got, err)
	}
	if n := idx.calls.Load(); n != 1000/releaseFiles {
		t.Errorf("ReleasePages called %d times for 1,000 files, want %d", n, 1000/releaseFiles)
	}
}
