package cas

import (
	"fmt"
	"runtime"
	"testing"
)

// TestPushFilesOfMaxMemoryRev2 pushes 48 files of exactly the largest
// chunk (8 MiB by default: the largest files read whole, as small files),
// half of them compressible, and bounds the peak live heap. Before
// ca6e6a2 the push's budget on file data was 24 MiB; it is now 64 MiB
// (sized for two large files' read buffers) and small files may take all
// of it, each also holding an unbudgeted buffer for its compressed form,
// so that a push of nothing but small files holds about twice as much:
// its peak live heap here went from 69 MiB to 146-151 MiB, and the peak
// RSS of cas push of 4-8 MiB files (/usr/bin/time) from 66-101 MB to 106-152 MB,
// over the 128 MiB a push must stay within.
func TestPushFilesOfMaxMemoryRev2(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and pushes 384 MiB")
	}
	const n, size = 48, 8 << 20
	peak := peakHeapOfPush(t, n, func(i int) string { return fmt.Sprintf("f%02d", i) }, func(i int) []byte {
		data := pseudoRandom(size, uint64(1000+i))
		if i%2 == 0 {
			for j := range data {
				data[j] &= 0x0f // about 4 bits a byte: zstd stores it in half
			}
		}
		return data
	})
	t.Logf("GOMAXPROCS %d: peak live heap %d MiB pushing %d files of %d MiB", runtime.GOMAXPROCS(0), peak>>20, n, size>>20)
	const limit = 96 << 20
	if peak > limit {
		t.Errorf("peak live heap %d MiB pushing %d files of %d MiB (read whole), want at most %d MiB (74d5e87: 69 MiB)",
			peak>>20, n, size>>20, limit>>20)
	}
}
