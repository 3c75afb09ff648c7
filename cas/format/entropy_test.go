package format

import (
	"math/rand/v2"
	"testing"
)

// TestSampleEntropyOfShortRandomChunks checks that random chunks of
// 0.5 to 4 KiB (small files) score above the threshold at which
// EncodeChunk keeps a chunk raw without trying zstd: a sample that
// counted part of a short chunk twice scored most of them below it.
func TestSampleEntropyOfShortRandomChunks(t *testing.T) {
	t.Parallel()
	for _, n := range []int{512, 513, 600, 777, 1000, 1024, 1500, 2047, 2048, 2049, 3000, 4095, 4096, 4097, 64 << 10} {
		for i := range 8 {
			b := make([]byte, n)
			_, _ = rand.NewChaCha8([32]byte{byte(n), byte(n >> 8), byte(n >> 16), byte(i)}).Read(b)
			if e := sampleEntropy(b); e <= 7.8 {
				t.Errorf("sampleEntropy of %d random bytes (#%d) = %.3f, want above 7.8", n, i, e)
			}
		}
	}
}

// TestSampleEntropyOfText checks that text scores well below the
// threshold at every size, so that it is still compressed.
func TestSampleEntropyOfText(t *testing.T) {
	t.Parallel()
	text := []byte("the quick brown fox jumps over the lazy dog, 0123456789\n")
	for _, n := range []int{512, 1000, 4096, 5000, 1 << 20} {
		b := make([]byte, n)
		for i := range b {
			b[i] = text[i%len(text)]
		}
		if e := sampleEntropy(b); e > 6 {
			t.Errorf("sampleEntropy of %d bytes of text = %.3f, want at most 6", n, e)
		}
	}
}

// TestGroupEntropyIsSampleEntropyOfGroup checks what encodeFloat relies on
// when it spares appendBlock a second sample: groupEntropy of group g,
// read where its bytes lie in the elements, is sampleEntropy of the split
// group, for every element size and stripe length it is taken at.
func TestGroupEntropyIsSampleEntropyOfGroup(t *testing.T) {
	t.Parallel()
	for _, es := range []int{1, 2, 4, 8} {
		for _, n := range []int{2 * sampleLen, 2*sampleLen + 1, 10001, 1 << stripeLog} {
			elems := make([]byte, n*es)
			r := rand.New(rand.NewPCG(uint64(es), uint64(n)))
			for i := range elems {
				// Skewed bytes, a different skew per byte position.
				elems[i] = byte(r.IntN(1 + 40*(i%es+1)))
			}
			for g := range es {
				group := make([]byte, n)
				for i := range group {
					group[i] = elems[i*es+g]
				}
				if ge, se := groupEntropy(elems, es, g), sampleEntropy(group); ge != se {
					t.Errorf("es %d, %d elements, group %d: groupEntropy %v, sampleEntropy of the group %v", es, n, g, ge, se)
				}
			}
		}
	}
}
