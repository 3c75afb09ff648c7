package cas

import (
	"fmt"
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
	peak := peakHeapOfPush(t, 12, func(i int) string { return fmt.Sprintf("shard%02d", i) },
		func(i int) []byte { return pseudoRandom(40<<20, uint64(i)) })
	t.Logf("GOMAXPROCS %d: peak live heap %d MiB pushing 12 files of 40 MiB", runtime.GOMAXPROCS(0), peak>>20)
}
