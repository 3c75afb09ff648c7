package cas

import (
	"errors"
	"io"

	"github.com/cas-ml/cas/cas/format"
)

// StoredSize returns how many bytes a push would store the n bytes of r
// at off as: the stored forms of its pieces of piece bytes (a chunk's
// length), each coded as a push codes a chunk of tensor elements of
// dtype (a torch, safetensors or numpy name such as "bfloat16", "BF16" or
// "<f4"; other names, and "", are untyped data: zstd where it pays).
// codec names the codec that holds the most bytes. It reads one piece at
// a time, so a tensor of any size costs two pieces of memory.
func StoredSize(r io.ReaderAt, off, n int64, dtype string, piece int) (stored int64, codec string, err error) {
	dt := format.DTypeFromName(dtype)
	if piece <= 0 {
		piece = 1 << 20
	}
	var byCodec [256]int64
	raw := make([]byte, min(int64(piece), n))
	buf := make([]byte, 0, len(raw))
	for done := int64(0); done < n; {
		p := raw[:min(int64(len(raw)), n-done)]
		if k, err := r.ReadAt(p, off+done); err != nil && (k < len(p) || !errors.Is(err, io.EOF)) {
			return 0, "", err
		}
		s, c := format.EncodeChunkInto(buf, p, dt)
		stored += int64(len(s))
		byCodec[c] += int64(len(p))
		done += int64(len(p))
	}
	best := 0
	for c, k := range byCodec {
		if k > byCodec[best] {
			best = c
		}
	}
	return stored, CodecName(uint8(best)), nil
}
