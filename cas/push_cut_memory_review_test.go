package cas

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// TestPushManyLargeFilesMemory measures (logs) the peak live heap of a
// push of a directory of large files, which the readers (4 a core, plus
// 2) read at once, each with its read buffers. Not parallel: the heap
// measured is the whole process's.
func TestPushManyLargeFilesMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and pushes 480 MiB")
	}
	src := filepath.Join(t.TempDir(), "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("shard%02d", i)), pseudoRandom(40<<20, uint64(i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := newStoreForTest(t, DefaultChunkAvg)
	var err error
	peak := peakHeapOf(func() { _, err = r.Push(t.Context(), []string{src}, PushOptions{}) })
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("GOMAXPROCS %d: peak live heap %d MiB pushing 12 files of 40 MiB", runtime.GOMAXPROCS(0), peak>>20)
}
