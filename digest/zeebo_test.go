package digest

import (
	"testing"

	"lukechampine.com/blake3/guts"
)

// TestFullBlockMatchesGuts checks the chaining value zeebo's kernels give
// a full block against guts', at several chunk counters.
func TestFullBlockMatchesGuts(t *testing.T) {
	t.Parallel()
	data := testData()[:4*readBlock]
	for i := range 4 {
		b := data[i*readBlock : (i+1)*readBlock]
		for _, counter := range []uint64{0, blockChunks, uint64(i+7) * blockChunks, 1 << 40} {
			want := guts.ChainingValue(subtree(b, counter))
			if got := fullBlockCV(b, counter); got != want {
				t.Fatalf("block %d at chunk %d: zeebo %x, guts %x", i, counter, got, want)
			}
		}
	}
}
