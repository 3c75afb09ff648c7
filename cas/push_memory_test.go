package cas

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"github.com/cas-ml/cas/cas/ingest"
	"github.com/cas-ml/cas/clock"
	"github.com/cas-ml/cas/internal/bufpool"
)

// TestPushMemoryFollowsDirectories pushes, then pushes again, trees of
// 10,000 and 100,000 small files in directories of 1,000, and checks that
// the peak live heap of the larger is not materially above the smaller's:
// a push holds the directories it is working on, never the whole tree.
// The larger tree holds the smaller's 10,000 contents ten times over, so
// that both write the same blobs to the same packs and index, and what
// differs is only the number of files and directories. (The pipeline
// that kept every file until the end of a push held about 0.5 KiB a file
// beyond its blobs: some 45 MiB more for the larger tree.)
func TestPushMemoryFollowsDirectories(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and pushes 110,000 files")
	}
	// Not parallel: the heap measured is the whole process's.
	small := peakPushHeap(t, 10_000)
	large := peakPushHeap(t, 100_000)
	const margin = 16 << 20
	for i, what := range []string{"push", "push again"} {
		t.Logf("%s: peak live heap %d MiB for 10,000 files, %d MiB for 100,000", what, small[i]>>20, large[i]>>20)
		if large[i] > small[i]+margin {
			t.Errorf("%s: peak live heap %d MiB for 100,000 files, want at most %d MiB more than the %d MiB for 10,000",
				what, large[i]>>20, margin>>20, small[i]>>20)
		}
	}
}

// peakPushHeap writes n files of 16 to 64 bytes in directories of 1,000,
// with 10,000 different contents, pushes them twice into a new store (the
// second time every file comes from the stat cache), and returns the peak
// live heap of each push.
func peakPushHeap(t *testing.T, n int) [2]uint64 {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	for i := range n {
		dir := filepath.Join(src, fmt.Sprintf("d%03d", i/1000))
		if i%1000 == 0 {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		k := i % 10_000
		data := strings.Repeat(fmt.Sprintf("content %d\n", k), 8)[:16+k%49] // 16 to 64 bytes
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%06d", i)), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A store of its own, closed before the next size is measured.
	dir := filepath.Join(t.TempDir(), DirName)
	params, err := NewChunkParams(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	if err := Init(dir, params, time.Now()); err != nil {
		t.Fatal(err)
	}
	r, err := Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	// Late enough that no file is too fresh for the stat cache.
	r.Clock = clock.NewFake(time.Now().Add(ingest.RacyWindowCoarse + time.Second))
	var peaks [2]uint64
	for i := range peaks {
		var res *PushResult
		peaks[i] = peakHeapOf(func() { res, err = r.Push(t.Context(), []string{src}, PushOptions{}) })
		if err != nil {
			t.Fatalf("push %d of %d files: %v", i+1, n, err)
		}
		if res.Files != int64(n) || res.Unchanged != int64(i*n) {
			t.Fatalf("push %d: %d files, %d unchanged; want %d, %d", i+1, res.Files, res.Unchanged, n, i*n)
		}
	}
	return peaks
}

// peakHeapOf runs fn and returns the most heap the collector found live
// at the end of a cycle meanwhile. The collector runs every 25% of
// growth, so that the cycles sample what fn holds often.
func peakHeapOf(fn func()) uint64 {
	defer debug.SetGCPercent(debug.SetGCPercent(25))
	bufpool.Drain() // buffers earlier tests left would count as fn's
	runtime.GC()
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	stop, done := make(chan struct{}), make(chan uint64)
	go func() {
		var peak uint64
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(sample)
			peak = max(peak, sample[0].Value.Uint64())
			select {
			case <-stop:
				metrics.Read(sample)
				done <- max(peak, sample[0].Value.Uint64())
				return
			case <-tick.C:
			}
		}
	}()
	fn()
	runtime.GC() // the last cycle sees what fn held at its end
	close(stop)
	return <-done
}

// peakHeapOfPush writes n files, named name(i) and holding data(i), into
// a new directory, pushes it into a new store and returns the peak live
// heap of the push (peakHeapOf).
func peakHeapOfPush(t *testing.T, n int, name func(int) string, data func(int) []byte) uint64 {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := os.WriteFile(filepath.Join(src, name(i)), data(i), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := newStoreForTest(t, DefaultChunkAvg)
	var err error
	peak := peakHeapOf(func() { _, err = r.Push(t.Context(), []string{src}, PushOptions{}) })
	if err != nil {
		t.Fatal(err)
	}
	return peak
}
