package format

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// A chunk that fits the small window compresses to the very bytes the
// default window gives it: which encoder EncodeChunk picks changes no
// stored chunk.
func TestSmallWindowSameBytes(t *testing.T) {
	src := rand.New(rand.NewPCG(1, 2))
	words := [][]byte{[]byte("weight"), []byte("bias"), []byte("layer."), {0, 0, 0, 0}, {0x3c, 0x00}}
	for _, n := range []int{1, 100, 4096, 65536, 300000, smallWindow - 1, smallWindow} {
		b := make([]byte, 0, n)
		for len(b) < n {
			if src.IntN(4) == 0 {
				b = append(b, byte(src.Uint32()))
			} else {
				b = append(b, words[src.IntN(len(words))]...)
			}
		}
		b = b[:n]
		small, def := zstdSmall.EncodeAll(b, nil), zstdEncoder.EncodeAll(b, nil)
		if !bytes.Equal(small, def) {
			t.Fatalf("%d bytes: the small window gives %d bytes, the default %d, and they differ", n, len(small), len(def))
		}
	}
}
