package format

import (
	"encoding/binary"
	"errors"
	"runtime"
	"sync"

	"github.com/klauspost/compress/huff0"
	"github.com/klauspost/compress/zstd"
)

// The float codec (codec 2, docs/FORMAT.md §3 "Codec 2: float byte
// groups"): the elements of a tensor are split into groups by byte
// position (byte j of every element in group j), so that the sign and
// exponent bytes, which carry few bits, are entropy-coded apart from the
// mantissa bytes, which are nearly random and are kept as they are. Each
// group is cut into blocks that are coded independently with huff0, zstd
// or run-length, or kept raw: whichever is smallest.

// DType is the element type of a run of floats, as the float codec
// records it (one byte of its header).
type DType uint8

// Element types. The values are written in the stored form: never
// renumber them.
const (
	Unknown DType = 0
	FP32    DType = 1
	BF16    DType = 2
	FP16    DType = 3
	FP64    DType = 4
	FP8E4M3 DType = 5
	FP8E5M2 DType = 6
)

// Size is the width of one element in bytes, 0 for Unknown.
func (dt DType) Size() int {
	switch dt {
	case FP32:
		return 4
	case BF16, FP16:
		return 2
	case FP64:
		return 8
	case FP8E4M3, FP8E5M2:
		return 1
	}
	return 0
}

// String is the safetensors name of dt.
func (dt DType) String() string {
	switch dt {
	case FP32:
		return "F32"
	case BF16:
		return "BF16"
	case FP16:
		return "F16"
	case FP64:
		return "F64"
	case FP8E4M3:
		return "F8_E4M3"
	case FP8E5M2:
		return "F8_E5M2"
	}
	return "unknown"
}

// DTypeFromName maps the name of a float type as torch (torch.float32,
// with or without the "torch." prefix), safetensors (F32) or a numpy
// little-endian descr ('<f4') spells it to its DType; anything else,
// big-endian descrs among them, is Unknown.
func DTypeFromName(s string) DType {
	switch s {
	case "torch.float32", "float32", "torch.float", "float", "F32", "<f4":
		return FP32
	case "torch.bfloat16", "bfloat16", "BF16":
		return BF16
	case "torch.float16", "float16", "torch.half", "half", "F16", "<f2":
		return FP16
	case "torch.float64", "float64", "torch.double", "double", "F64", "<f8":
		return FP64
	case "torch.float8_e4m3fn", "float8_e4m3fn", "F8_E4M3":
		return FP8E4M3
	case "torch.float8_e5m2", "float8_e5m2", "F8_E5M2":
		return FP8E5M2
	}
	return Unknown
}

// floatVersion is the first byte of the stored form.
const floatVersion = 1

// Block kinds of the stored form.
const (
	blockRaw    = 0 // the block's bytes as they are
	blockRLE    = 1 // one byte, repeated over the block
	blockHuff1X = 2 // huff0 table and one stream
	blockHuff4X = 3 // huff0 table, jump table and four streams
	blockZstd   = 4 // a zstd frame
)

const (
	// stripeLog is log2 of the elements in a stripe, as the encoder
	// writes it: block b of each group holds the bytes of the elements of
	// stripe b.
	stripeLog = 16
	// minStripeLog and maxStripeLog bound what a decoder accepts.
	minStripeLog = 8
	maxStripeLog = 17
	// maxBlockLen bounds the raw length of one block (the scratch a
	// decoder keeps), whatever the header says.
	maxBlockLen = 1 << 18
	// sampleLen is the sample sampleEntropy takes of a longer block.
	sampleLen = 4 << 10
	// small4X is the least block length coded with four huff0 streams:
	// they decode faster, and cost 6 bytes of jump table.
	small4X = 4 << 10
	// floatHeaderMax is the longest header: 5 bytes, 8 widths, a uvarint.
	floatHeaderMax = 5 + 8 + binary.MaxVarintLen64
)

// floatZstd codes the blocks that repeat (see repeats): at most
// maxBlockLen bytes each, so a window of that size loses nothing.
var floatZstd, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault),
	zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)), zstd.WithLowerEncoderMem(true),
	zstd.WithWindowSize(maxBlockLen), zstd.WithEncoderCRC(false))

// grouping returns the byte widths of dt's groups, low byte first.
func grouping(dt DType) []uint8 {
	switch dt.Size() {
	case 1:
		return []uint8{1}
	case 2:
		return []uint8{1, 1}
	case 4:
		return []uint8{1, 1, 1, 1}
	case 8:
		return []uint8{1, 1, 1, 1, 1, 1, 1, 1}
	}
	return nil
}

type floatEncoder struct {
	huff   huff0.Scratch
	stripe []byte // a stripe's groups, one after the other
	zbuf   []byte // a zstd frame
}

var floatEncoders = sync.Pool{New: func() any { return new(floatEncoder) }}

// EncodeFloat returns the stored form of raw, elements of type dt: ok is
// false (and stored nil) when dt is Unknown or the stored form would not
// save what EncodeChunk demands of a codec, so that the caller keeps the
// chunk raw or zstd. Any bytes are accepted: a length that is not a
// multiple of the element size leaves its last bytes raw.
func EncodeFloat(raw []byte, dt DType) (stored []byte, ok bool) {
	return encodeFloat(nil, raw, dt, grouping(dt), stripeLog, floatLimit(len(raw)))
}

// floatLimit is the longest stored form EncodeFloat gives for n raw bytes.
func floatLimit(n int) int { return int(float64(n) * (1 - minSaving)) }

// encodeFloat returns the stored form of raw with the groups of the given
// widths and stripes of 2^slog elements, or false as soon as it is longer
// than limit. It is written into dst when dst has the capacity for limit
// bytes (and does not overlap raw).
func encodeFloat(dst, raw []byte, dt DType, widths []uint8, slog, limit int) ([]byte, bool) {
	es := dt.Size()
	if es == 0 {
		return nil, false
	}
	n := len(raw) / es
	out := dst[:0]
	if need := min(limit, len(raw)+len(raw)>>10+floatHeaderMax) + 1; cap(out) < need {
		out = make([]byte, 0, need)
	}
	out = append(out, floatVersion, byte(dt), byte(es), byte(slog), byte(len(widths)))
	out = append(out, widths...)
	out = binary.AppendUvarint(out, uint64(len(raw)))

	e := floatEncoders.Get().(*floatEncoder)
	defer floatEncoders.Put(e)
	e.huff.Reuse = huff0.ReusePolicyNone
	e.huff.WantLogLess = 7

	bytewise := len(widths) == es // every group one byte wide
	stripe := 1 << slog
	for first := 0; first < n; first += stripe {
		cnt := min(stripe, n-first)
		elems := raw[first*es : (first+cnt)*es]
		if cap(e.stripe) < len(elems) {
			e.stripe = make([]byte, es<<slog)
		}
		var gs [8][]byte
		// The leading groups that appendBlock would keep raw (mantissa
		// bytes: FP32's bytes 0 and 1, BF16's and FP16's byte 0) are
		// split straight into out, behind their kind byte, rather than
		// split and copied.
		// The group whose sample ends that run is worth coding:
		// appendBlock need not take the same sample again.
		g0, coded := 0, -1
		for bytewise && g0 < es && cnt >= 2*sampleLen && len(out)+1+cnt <= cap(out) {
			if groupEntropy(elems, es, g0) <= rawEntropy {
				coded = g0
				break
			}
			out = append(out, blockRaw)
			gs[g0] = out[len(out) : len(out)+cnt]
			out = out[:len(out)+cnt]
			g0++
		}
		if len(out) > limit {
			return nil, false
		}
		at := 0
		for g := g0; g < len(widths); g++ {
			gs[g] = e.stripe[at : at+cnt*int(widths[g])]
			at += cnt * int(widths[g])
		}
		split(gs[:len(widths)], elems, es, widths)
		for g := g0; g < len(widths); g++ {
			out = e.appendBlock(out, gs[g], g == coded)
			if len(out) > limit {
				return nil, false
			}
		}
	}
	out = append(out, raw[n*es:]...)
	if len(out) > limit {
		return nil, false
	}
	return out, true
}

// appendBlock appends the smallest coding of block b it finds; sampled
// tells that b's sampleEntropy is known to be at most rawEntropy (the
// same bytes were sampled where they lay in the elements).
func (e *floatEncoder) appendBlock(out, b []byte, sampled bool) []byte {
	if !sampled && len(b) >= 2*sampleLen && sampleEntropy(b) > rawEntropy {
		// Mantissa bytes: huff0 would save under 1/128, which it is
		// not asked for (WantLogLess), and they do not repeat (a copy
		// of a run of floats inside one block of a tensor is rare enough
		// not to pay for looking): kept raw without trying either.
		out = append(out, blockRaw)
		return append(out, b...)
	}
	var h []byte
	var err error
	kind, payload := byte(blockHuff1X), b
	if len(b) >= small4X {
		h, _, err = huff0.Compress4X(b, &e.huff)
		kind = blockHuff4X
	} else {
		h, _, err = huff0.Compress1X(b, &e.huff)
	}
	switch {
	case errors.Is(err, huff0.ErrUseRLE):
		return append(out, blockRLE, b[0])
	case err == nil && len(h) < len(b):
		payload = h
	default:
		kind = blockRaw
	}
	if repeats(b) {
		z := floatZstd.EncodeAll(b, e.zbuf[:0])
		e.zbuf = z[:0]
		if len(z) < len(payload) {
			out = append(out, blockZstd)
			out = binary.AppendUvarint(out, uint64(len(z)))
			return append(out, z...)
		}
	}
	out = append(out, kind)
	if kind != blockRaw {
		out = binary.AppendUvarint(out, uint64(len(payload)))
	}
	return append(out, payload...)
}

// rawEntropy is the bits per byte over which a block of 2*sampleLen bytes
// or more is kept raw without trying to code it.
const rawEntropy = 7.95

// groupEntropy is sampleEntropy of group g (one byte wide, at offset g)
// of the es-byte elements elems, more than 2*sampleLen of them, read
// where they are rather than from the split group.
func groupEntropy(elems []byte, es, g int) float64 {
	const half = sampleLen / 2
	var hist [256]int
	n := len(elems) / es
	for _, first := range []int{0, n / 2} {
		s := elems[first*es+g:][:(half-1)*es+1]
		for i := 0; i < len(s); i += es {
			hist[s[i]]++
		}
	}
	return histEntropy(&hist, 2*half)
}

// repeats reports whether b holds repeated runs of 8 bytes or more, which
// zstd may code better than huff0 does (sparse tensors, quantized
// values): a sample of up to 4 KiB is matched against the last place
// each 8-byte string (by hash) was seen, and repeats when matches cover an
// eighth of it. Trained weights, whose bytes are all but independent,
// never do, and are spared the cost of trying zstd; and of the second
// half of the sample when matches cover under a 32nd of the first half's
// bytes: the few chance matches of skewed bytes (a BF16 exponent byte
// takes two values a third of the time each), where a pattern repeating
// within 1.5 KiB has matched a quarter of them by then.
func repeats(b []byte) bool {
	const sample = 4 << 10
	if len(b) > sample {
		b = b[(len(b)-sample)/2:][:sample]
	}
	if len(b) < 64 {
		return false
	}
	var last [1 << 10]uint16
	matched := 0
	half := len(b) / 2
	for i := 1; i+8 <= len(b); {
		if i >= half {
			if matched < half/32 {
				return false
			}
			half = len(b)
		}
		v := binary.LittleEndian.Uint64(b[i:])
		h := (v * 0x9E3779B97F4A7C15) >> 54
		j := int(last[h])
		last[h] = uint16(i)
		if j > 0 && binary.LittleEndian.Uint64(b[j:]) == v {
			matched += 8
			i += 8
			continue
		}
		i++
	}
	return matched >= len(b)/8
}

// split writes the groups of a stripe's elems (es bytes each) into gs,
// gs[g] receiving bytes off..off+widths[g] of every element, element
// after element. join is its inverse.
func split(gs [][]byte, elems []byte, es int, widths []uint8) {
	switch {
	case es == 1:
		copy(gs[0], elems)
	case es == 2 && len(widths) == 2:
		split2(gs[0], gs[1], elems)
	case es == 4 && len(widths) == 4:
		split4(gs[0], gs[1], gs[2], gs[3], elems)
	default:
		off := 0
		for g, w := range widths {
			w := int(w)
			for i, k := 0, off; i < len(gs[g]); i, k = i+w, k+es {
				copy(gs[g][i:i+w], elems[k:k+w])
			}
			off += w
		}
	}
}

// join puts the groups gs of a stripe back into its elems: the inverse of
// split.
func join(elems []byte, gs [][]byte, es int, widths []uint8) {
	switch {
	case es == 1:
		copy(elems, gs[0])
	case es == 2 && len(widths) == 2:
		join2(elems, gs[0], gs[1])
	case es == 4 && len(widths) == 4:
		join4(elems, gs[0], gs[1], gs[2], gs[3])
	default:
		off := 0
		for g, w := range widths {
			w := int(w)
			for i, k := 0, off; i < len(gs[g]); i, k = i+w, k+es {
				copy(elems[k:k+w], gs[g][i:i+w])
			}
			off += w
		}
	}
}

// floatHeader is the decoded header of a stored form.
type floatHeader struct {
	dt        DType
	es        int
	stripeLog int
	widths    []uint8
	rawLen    int
	body      int // offset of the first block
}

func parseFloatHeader(stored []byte) (floatHeader, error) {
	var h floatHeader
	if len(stored) < 5 || stored[0] != floatVersion {
		return h, ErrBadChunk
	}
	h.dt = DType(stored[1])
	h.es = int(stored[2])
	h.stripeLog = int(stored[3])
	ng := int(stored[4])
	if h.es == 0 || h.dt.Size() != h.es || h.stripeLog < minStripeLog || h.stripeLog > maxStripeLog ||
		ng == 0 || ng > h.es || len(stored) < 5+ng {
		return h, ErrBadChunk
	}
	h.widths = stored[5 : 5+ng]
	sum := 0
	for _, w := range h.widths {
		if w == 0 || int(w)<<h.stripeLog > maxBlockLen {
			return h, ErrBadChunk
		}
		sum += int(w)
	}
	if sum != h.es {
		return h, ErrBadChunk
	}
	v, k := binary.Uvarint(stored[5+ng:])
	if k <= 0 || v > MaxChunkLen {
		return h, ErrBadChunk
	}
	h.rawLen = int(v)
	h.body = 5 + ng + k
	return h, nil
}

// nextBlock reads the block header at stored[at:] for a block of blen raw
// bytes: its kind and payload, and the offset after it.
func nextBlock(stored []byte, at, blen int) (kind byte, payload []byte, next int, err error) {
	if at >= len(stored) {
		return 0, nil, 0, ErrBadChunk
	}
	kind = stored[at]
	at++
	var plen int
	switch kind {
	case blockRaw:
		plen = blen
	case blockRLE:
		plen = 1
	case blockHuff1X, blockHuff4X, blockZstd:
		v, k := binary.Uvarint(stored[at:])
		// A coded block is never longer than the raw one it replaces.
		if k <= 0 || v == 0 || v >= uint64(blen) {
			return 0, nil, 0, ErrBadChunk
		}
		at += k
		plen = int(v)
	default:
		return 0, nil, 0, ErrBadChunk
	}
	if plen > len(stored)-at {
		return 0, nil, 0, ErrBadChunk
	}
	return kind, stored[at : at+plen], at + plen, nil
}

type floatDecoder struct {
	huff huff0.Scratch
	buf  []byte
}

var floatDecoders = sync.Pool{New: func() any { return new(floatDecoder) }}

// DecodeFloat returns the rawLen bytes that stored, a stored form of
// EncodeFloat, holds: in dst when its capacity suffices (and it is not
// stored itself), else in a new buffer. dst must not overlap stored
// otherwise. Every field of stored is checked
// against rawLen and len(stored) before anything is allocated or decoded;
// anything inconsistent is ErrBadChunk. Beyond the rawLen bytes it
// returns it uses only a bounded scratch (one block).
func DecodeFloat(stored []byte, rawLen int, dst []byte) ([]byte, error) {
	if rawLen < 0 || rawLen > MaxChunkLen {
		return nil, ErrBadChunk
	}
	h, err := parseFloatHeader(stored)
	if err != nil || h.rawLen != rawLen {
		return nil, ErrBadChunk
	}
	n := rawLen / h.es
	tail := rawLen - n*h.es
	stripe := 1 << h.stripeLog

	// Walk the blocks once to check that they end where stored does.
	at := h.body
	for first := 0; first < n; first += stripe {
		cnt := min(stripe, n-first)
		for _, w := range h.widths {
			if _, _, at, err = nextBlock(stored, at, cnt*int(w)); err != nil {
				return nil, err
			}
		}
	}
	if len(stored)-at != tail {
		return nil, ErrBadChunk
	}

	out := dst[:0]
	if cap(out) < rawLen || (cap(dst) > 0 && len(stored) > 0 && &dst[:1][0] == &stored[0]) {
		out = make([]byte, 0, rawLen)
	}
	out = out[:rawLen]

	d := floatDecoders.Get().(*floatDecoder)
	defer floatDecoders.Put(d)
	at = h.body
	for first := 0; first < n; first += stripe {
		cnt := min(stripe, n-first)
		elems := out[first*h.es : (first+cnt)*h.es]
		var gs [8][]byte
		scratch := d.stripe(h.es << h.stripeLog)
		for g, w := range h.widths {
			blen := cnt * int(w)
			var kind byte
			var payload []byte
			kind, payload, at, _ = nextBlock(stored, at, blen)
			var err error
			if gs[g], err = d.block(kind, payload, scratch[:blen:blen]); err != nil {
				return nil, err
			}
			scratch = scratch[blen:]
		}
		join(elems, gs[:len(h.widths)], h.es, h.widths)
	}
	copy(out[n*h.es:], stored[at:])
	return out, nil
}

// stripe returns the decoder's scratch for a stripe of n bytes.
func (d *floatDecoder) stripe(n int) []byte {
	if cap(d.buf) < n {
		d.buf = make([]byte, n)
	}
	return d.buf[:n]
}

// block decodes one block into g, which has its length and capacity; a
// raw block is returned as it is.
func (d *floatDecoder) block(kind byte, payload, g []byte) ([]byte, error) {
	blen := len(g)
	if kind == blockRaw {
		return payload, nil
	}
	switch kind {
	case blockRLE:
		c := payload[0]
		for i := range g {
			g[i] = c
		}
		return g, nil
	case blockZstd:
		r, err := chunkDecoder.DecodeAll(payload, g[:0])
		if err != nil || len(r) != blen || (blen > 0 && &r[0] != &g[0]) {
			return nil, ErrBadChunk
		}
		return r, nil
	}
	s, rest, err := huff0.ReadTable(payload, &d.huff)
	if err != nil || len(rest) == 0 {
		return nil, ErrBadChunk
	}
	var r []byte
	if kind == blockHuff4X {
		r, err = s.Decoder().Decompress4X(g[:0], rest)
	} else {
		r, err = s.Decoder().Decompress1X(g[:0], rest)
	}
	if err != nil || len(r) != blen {
		return nil, ErrBadChunk
	}
	return r, nil
}
