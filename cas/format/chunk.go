package format

import (
	"errors"
	"math"

	"github.com/klauspost/compress/zstd"

	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
)

// The chunk codec: how a chunk's raw bytes are kept in a pack. The codec
// is recorded per blob (index.CodecNone, index.CodecZstd or
// index.CodecFloat); a chunk is compressed only where that pays.

// MaxChunkLen bounds a blob's raw and stored length, whatever an index or
// a trailer claims.
const MaxChunkLen = 1 << 30

// ErrBadChunk reports stored bytes that do not decode to the blob they
// are said to hold: a codec that fails, a wrong length or a wrong digest.
var ErrBadChunk = errors.New("damaged chunk")

// chunkDecoder decodes into the buffer it is given and never grows it
// (WithDecodeAllCapLimit): a blob decodes into at most its RawLen, so a
// frame that claims or inflates to more fails without allocating it.
var chunkDecoder, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(MaxChunkLen),
	zstd.WithDecoderLowmem(true), zstd.WithDecodeAllCapLimit(true))

// DecodeChunk turns a blob's stored bytes into its raw bytes, checked
// against b's codec, raw length and ID; any mismatch is ErrBadChunk.
// Uncompressed, the result is stored itself; dst is the buffer a
// decompressed blob goes into when large enough (and not stored itself).
func DecodeChunk(b index.Blob, stored, dst []byte) ([]byte, error) {
	raw, err := DecodeChunkUnchecked(b, stored, dst)
	if err != nil || digest.Of(raw) != b.ID {
		return nil, ErrBadChunk
	}
	return raw, nil
}

// DecodeChunkUnchecked is DecodeChunk without the check of the raw bytes
// against the chunk's ID, only of their length: for a reader that checks
// every byte another way before anything of them is used (a restore,
// whose file digest covers each chunk of the file, and which checks each
// chunk when that digest is wrong).
func DecodeChunkUnchecked(b index.Blob, stored, dst []byte) ([]byte, error) {
	raw := stored
	switch b.Codec {
	case index.CodecNone:
	case index.CodecZstd:
		out := dst[:0]
		if cap(out) < int(b.RawLen) || (len(dst) > 0 && len(stored) > 0 && &dst[0] == &stored[0]) {
			out = make([]byte, 0, b.RawLen)
		}
		var err error
		raw, err = chunkDecoder.DecodeAll(stored, out)
		if err != nil {
			return nil, ErrBadChunk
		}
	case index.CodecFloat:
		var err error
		if raw, err = DecodeFloat(stored, int(b.RawLen), dst); err != nil {
			return nil, err
		}
	default:
		return nil, ErrBadChunk
	}
	if len(raw) != int(b.RawLen) {
		return nil, ErrBadChunk
	}
	return raw, nil
}

// minSaving is the least fraction of a chunk that compression must save.
const minSaving = 0.05

// EncodeChunk returns the stored form of raw and its codec: zstd only
// where it pays. Random-looking bytes (the byte histogram of a sample has
// near 8 bits of entropy) are kept raw without trying; large chunks first
// compress a few samples at the fastest level.
func EncodeChunk(raw []byte) ([]byte, uint8) { return encodeChunk(nil, raw) }

func encodeChunk(dst, raw []byte) ([]byte, uint8) {
	if len(raw) < 512 || sampleEntropy(raw) > 7.8 {
		return raw, index.CodecNone
	}
	if len(raw) > 64<<10 && !samplesCompress(raw) {
		return raw, index.CodecNone
	}
	enc := zstdEncoder
	if len(raw) <= smallWindow {
		enc = zstdSmall
	}
	return zstdIfSaves(enc, dst, raw)
}

// zstdIfSaves codes raw with enc into dst, and keeps it raw unless that
// saves minSaving.
func zstdIfSaves(enc *zstd.Encoder, dst, raw []byte) ([]byte, uint8) {
	out := enc.EncodeAll(raw, dst[:0])
	if float64(len(out)) > float64(len(raw))*(1-minSaving) {
		return raw, index.CodecNone
	}
	return out, index.CodecZstd
}

// EncodeTreeInto is EncodeChunkInto for a tree's encoding (Tree.Encode):
// zstd at its fastest level, which codes those lines of hex digests
// better than the default level does, and twice as fast; raw if that
// does not save minSaving. The codec, and so the reader, is a data
// chunk's.
func EncodeTreeInto(dst, raw []byte) ([]byte, uint8) {
	if len(raw) < 512 {
		return raw, index.CodecNone
	}
	return zstdIfSaves(zstdTree, dst, raw)
}

// EncodeChunkAs is EncodeChunk for a chunk whose bytes are elements of
// type dt, all of them (a chunk of tensor data): for a float type the
// float codec where it saves at least minSaving, else today's rule (zstd
// where it pays, else raw). The stored form is thus never longer than
// raw.
func EncodeChunkAs(raw []byte, dt DType) ([]byte, uint8) {
	return EncodeChunkInto(nil, raw, dt)
}

// EncodeChunkInto is EncodeChunkAs writing a compressed form into dst
// when dst, which must not overlap raw, has the capacity for it (len(raw)
// bytes is always enough); uncompressed, the result is raw itself.
func EncodeChunkInto(dst, raw []byte, dt DType) ([]byte, uint8) {
	if dt != Unknown && len(raw) >= 512 {
		if stored, ok := encodeFloat(dst, raw, dt, grouping(dt), stripeLog, floatLimit(len(raw))); ok {
			return stored, index.CodecFloat
		}
	}
	return encodeChunk(dst, raw)
}

// sampleEntropy estimates the bits per byte of b from the histogram of up
// to 4 KiB: all of b when it is no longer, else 2 KiB from its start and
// 2 KiB from its middle. No byte is counted twice: a sample that counted
// the second half of a short chunk again scored random chunks of 0.5 to
// 1 KiB below the threshold, and had them compressed for nothing.
func sampleEntropy(b []byte) float64 {
	const half = 2 << 10
	var hist [256]int
	head, mid := b, b[:0]
	if len(b) > 2*half {
		head, mid = b[:half], b[len(b)/2:len(b)/2+half]
	}
	for _, c := range head {
		hist[c]++
	}
	for _, c := range mid {
		hist[c]++
	}
	return histEntropy(&hist, len(head)+len(mid))
}

// histEntropy estimates the bits per byte of a sample of n bytes from its
// histogram (n at most 4 KiB).
func histEntropy(hist *[256]int, n int) float64 {
	// H = log2(n) - (1/n) * sum(k log2 k), with k log2 k from a table.
	sum := 0.0
	bins := 0
	for _, k := range hist {
		if k > 0 {
			sum += klog2k[k]
			bins++
		}
	}
	e := math.Log2(float64(n)) - sum/float64(n)
	// A finite sample underestimates entropy; add the Miller-Madow
	// correction so uniform random bytes score about 8 at any size.
	return e + float64(bins-1)/(2*float64(n)*math.Ln2)
}

// klog2k[k] = k * log2(k) for the counts a 4 KiB sample can hold.
var klog2k = func() (t [4<<10 + 1]float64) {
	for k := 1; k < len(t); k++ {
		t[k] = float64(k) * math.Log2(float64(k))
	}
	return t
}()

var sampleEncoder, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))

// samplesCompress compresses three 4 KiB samples of b and reports whether
// they shrink by more than minSaving.
func samplesCompress(b []byte) bool {
	const s = 4 << 10
	var buf [3 * s]byte
	sample := buf[:0]
	for _, at := range []int{0, len(b)/2 - s/2, len(b) - s} {
		sample = append(sample, b[at:at+s]...)
	}
	out := sampleEncoder.EncodeAll(sample, make([]byte, 0, len(sample)+64))
	return float64(len(out)) < float64(len(sample))*(1-minSaving)
}
