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
