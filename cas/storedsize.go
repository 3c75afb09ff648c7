package cas

import "github.com/cas-ml/cas/cas/format"

// StoredSize returns how many bytes a push would store data as: the
// stored forms of its pieces of piece bytes (a chunk's length), each
// coded as a push codes a chunk of tensor elements of dtype (a torch,
// safetensors or numpy name such as "bfloat16", "BF16" or "<f4"; other
// names, and "", are untyped data: zstd where it pays). codec names the
// codec that holds the most bytes.
func StoredSize(data []byte, dtype string, piece int) (stored int64, codec string) {
	dt := format.DTypeFromName(dtype)
	if piece <= 0 {
		piece = 1 << 20
	}
	var byCodec [256]int64
	buf := make([]byte, 0, min(piece, len(data)))
	for off := 0; off < len(data); off += piece {
		raw := data[off:min(off+piece, len(data))]
		s, c := format.EncodeChunkInto(buf, raw, dt)
		stored += int64(len(s))
		byCodec[c] += int64(len(raw))
	}
	best := 0
	for c, n := range byCodec {
		if n > byCodec[best] {
			best = c
		}
	}
	return stored, CodecName(uint8(best))
}
