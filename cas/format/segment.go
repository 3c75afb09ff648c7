package format

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
)

// An index segment records where the blobs of some packs are and which
// chunks make up multi-chunk files. Layout (docs/FORMAT.md):
//
//	"CASIDX01"
//	one zstd frame holding:
//	  uvarint P, then P pack ids (32 bytes each)
//	  uvarint B, then B blobs: uvarint pack number (0..P-1), type u8,
//	    codec u8, id [32]byte, uvarint offset, uvarint length, uvarint raw length
//	  uvarint F, then F files: digest [32]byte, uvarint N, N chunk ids
//
// Blobs are sorted by (pack number, offset), files by digest. A segment
// is named by the BLAKE3 of all its bytes and stored at SegmentKey(name).

// SegmentMagic starts every index segment.
const SegmentMagic = "CASIDX01"

// maxSegmentBytes bounds the decoded size of a segment.
const maxSegmentBytes = 1 << 30

// ErrBadSegment reports an index segment that cannot be decoded.
var ErrBadSegment = errors.New("malformed index segment")

// Segment is the decoded content of an index segment: where blobs are,
// and the chunks of multi-chunk files.
type Segment struct {
	Blobs []index.Blob
	Files map[digest.Digest][]digest.Digest
}

var (
	// zstdEncoder compresses chunks of more than smallWindow bytes.
	zstdEncoder, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
	// zstdSmall compresses segments and the chunks of at most smallWindow
	// bytes (trees among them) with the same level in a window of that
	// size. For such a chunk its output is zstdEncoder's, byte for byte
	// (the whole input fits either window); but zstdEncoder keeps a
	// history buffer of its 8 MiB window in the heap once used, which a
	// push of small files then carried to its end.
	zstdSmall, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true), zstd.WithWindowSize(smallWindow))
	// zstdTree compresses trees (EncodeTreeInto) at the fastest level:
	// on their lines of hex digests the default level ran at 20 MB/s
	// and stored 0.426 of them, the fastest twice that and 0.417.
	zstdTree, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true), zstd.WithWindowSize(smallWindow))
)

const smallWindow = 1 << 20

// Encode returns the segment's bytes. Blobs are written sorted by
// (pack, offset), files by digest, whatever their order in s.
func (s *Segment) Encode() []byte {
	packNum := map[digest.Digest]uint64{}
	var packs []digest.Digest
	blobs := append([]index.Blob(nil), s.Blobs...)
	sort.Slice(blobs, func(i, j int) bool {
		if blobs[i].Pack != blobs[j].Pack {
			return string(blobs[i].Pack[:]) < string(blobs[j].Pack[:])
		}
		return blobs[i].Offset < blobs[j].Offset
	})
	for _, b := range blobs {
		if _, ok := packNum[b.Pack]; !ok {
			packNum[b.Pack] = uint64(len(packs))
			packs = append(packs, b.Pack)
		}
	}
	// Room for it all at the first go: the most each record can take.
	size := 2*binary.MaxVarintLen64 + len(packs)*digest.Size + len(blobs)*(2+digest.Size+5*binary.MaxVarintLen64)
	for _, chunks := range s.Files {
		size += digest.Size + binary.MaxVarintLen64 + len(chunks)*digest.Size
	}
	body := make([]byte, 0, size)
	body = binary.AppendUvarint(body, uint64(len(packs)))
	for _, p := range packs {
		body = append(body, p[:]...)
	}
	body = binary.AppendUvarint(body, uint64(len(blobs)))
	for _, b := range blobs {
		body = binary.AppendUvarint(body, packNum[b.Pack])
		body = append(body, b.Type, b.Codec)
		body = append(body, b.ID[:]...)
		body = binary.AppendUvarint(body, b.Offset)
		body = binary.AppendUvarint(body, uint64(b.Length))
		body = binary.AppendUvarint(body, uint64(b.RawLen))
	}
	files := make([]digest.Digest, 0, len(s.Files))
	for f := range s.Files {
		files = append(files, f)
	}
	sort.Slice(files, func(i, j int) bool { return string(files[i][:]) < string(files[j][:]) })
	body = binary.AppendUvarint(body, uint64(len(files)))
	for _, f := range files {
		body = append(body, f[:]...)
		body = binary.AppendUvarint(body, uint64(len(s.Files[f])))
		for _, c := range s.Files[f] {
			body = append(body, c[:]...)
		}
	}
	return zstdSmall.EncodeAll(body, []byte(SegmentMagic))
}

// segReader reads the body of a segment as it is decompressed, with
// bounds checks: nothing is allocated on a count's word, so what decoding
// costs follows what the data really hold. It parses from a window of
// the stream, refilled as it is used up.
type segReader struct {
	src io.Reader
	buf []byte // backing store of the window
	b   []byte // unread bytes
	eof bool
	err error
}

// fill makes at least n bytes unread, or as many as the stream has left;
// it reports whether there are n.
func (r *segReader) fill(n int) bool {
	for len(r.b) < n && !r.eof && r.err == nil {
		m := copy(r.buf, r.b)
		k, err := r.src.Read(r.buf[m:])
		r.b = r.buf[:m+k]
		switch {
		case errors.Is(err, io.EOF):
			r.eof = true
		case err != nil:
			r.err = ErrBadSegment
		}
	}
	return len(r.b) >= n
}

func (r *segReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	r.fill(binary.MaxVarintLen64)
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = ErrBadSegment
		return 0
	}
	r.b = r.b[n:]
	return v
}

// bytes returns the next n bytes, valid until the next read.
func (r *segReader) bytes(n int) []byte {
	if r.err != nil || !r.fill(n) {
		r.err = ErrBadSegment
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

// count reads a count of items of at least minSize bytes each: no more
// than the bytes left can hold (the whole body's, or at most 1 GiB's
// while streaming).
func (r *segReader) count(minSize int) int {
	n := r.uvarint()
	left := uint64(maxSegmentBytes)
	if r.src == nil {
		left = uint64(len(r.b))
	}
	if r.err == nil && n > left/uint64(minSize) {
		r.err = ErrBadSegment
		return 0
	}
	return int(n)
}

// capFor is the capacity to start a list of n counted items with: n when
// the whole body is at hand (count checked it against the bytes), else
// no more than what the data have shown so far to be worth.
func (r *segReader) capFor(n int) int {
	if r.src == nil {
		return n
	}
	return min(n, 4096)
}

func (r *segReader) digest() (d digest.Digest) {
	copy(d[:], r.bytes(digest.Size))
	return d
}

// atEnd reports whether the body ends here.
func (r *segReader) atEnd() bool {
	return r.err == nil && !r.fill(1)
}

// segmentDecoders are streaming zstd decoders, reused.
var segmentDecoders = sync.Pool{New: func() any {
	d, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxSegmentBytes), zstd.WithDecoderLowmem(true))
	return d
}}

// wholeRoom is how much room a segment's body is decompressed into at
// once: twice its compressed size, which a body of random IDs and offsets
// never outgrows. One that does (a bomb, or a rare compressible body) is
// parsed as it streams instead, so that a small object inflating far
// costs only what its parse reads.
func wholeRoom(n int) int { return min(maxSegmentBytes, 2*n+64<<10) }

// newSegReader reads the compressed body z: decompressed whole when it
// fits in wholeRoom, the fast way, else streamed.
func newSegReader(z []byte) (*segReader, func(), error) {
	body, err := wholeDecoder.DecodeAll(z, make([]byte, 0, wholeRoom(len(z))))
	switch {
	case err == nil:
		return &segReader{b: body, eof: true}, func() {}, nil
	case !errors.Is(err, zstd.ErrDecoderSizeExceeded):
		return nil, nil, err
	}
	d := segmentDecoders.Get().(*zstd.Decoder)
	if err := d.Reset(bytes.NewReader(z)); err != nil {
		segmentDecoders.Put(d)
		return nil, nil, err
	}
	done := func() {
		_ = d.Reset(nil)
		segmentDecoders.Put(d)
	}
	return &segReader{src: io.LimitReader(d, maxSegmentBytes), buf: make([]byte, 64<<10)}, done, nil
}

// wholeDecoder decodes a body into the room it is given and no more.
var wholeDecoder, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(maxSegmentBytes),
	zstd.WithDecoderLowmem(true), zstd.WithDecodeAllCapLimit(true))

// DecodeSegment decodes an index segment, rejecting anything malformed
// with ErrBadSegment. What it allocates follows what data really decode
// to (at most 1 GiB) and is bounded by a multiple of that, whatever
// counts or sizes data claim.
func DecodeSegment(data []byte) (*Segment, error) {
	if len(data) < len(SegmentMagic) || string(data[:len(SegmentMagic)]) != SegmentMagic {
		return nil, fmt.Errorf("%w: no header", ErrBadSegment)
	}
	r, done, err := newSegReader(data[len(SegmentMagic):])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSegment, err)
	}
	defer done()
	s := &Segment{Files: map[digest.Digest][]digest.Digest{}}
	err = r.parse(func(n int) { s.Blobs = make([]index.Blob, 0, r.capFor(n)) }, SegmentVisitor{
		Blob: func(b index.Blob) error { s.Blobs = append(s.Blobs, b); return nil },
		File: func(f digest.Digest, chunks []digest.Digest) error { s.Files[f] = chunks; return nil },
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// SegmentVisitor is told what a segment holds, in the order it holds it.
// An error from it stops the scan and is returned as is.
type SegmentVisitor struct {
	Blob func(b index.Blob) error
	// File is given a file of two or more chunks; chunks is its to keep.
	File func(f digest.Digest, chunks []digest.Digest) error
}

// ScanSegment reads an index segment from src as it decompresses and
// tells v what it holds, rejecting anything malformed with ErrBadSegment
// as DecodeSegment does. What it holds in memory is the segment's pack
// list and one file's chunk list, whatever the segment's size. Damage
// may be found after v was told of blobs before it: a caller that must
// not act on a malformed segment scans it twice, the first time with an
// empty visitor.
func ScanSegment(src io.Reader, v SegmentVisitor) error {
	magic := make([]byte, len(SegmentMagic))
	if _, err := io.ReadFull(src, magic); err != nil || string(magic) != SegmentMagic {
		return fmt.Errorf("%w: no header", ErrBadSegment)
	}
	d := segmentDecoders.Get().(*zstd.Decoder)
	defer func() {
		_ = d.Reset(nil)
		segmentDecoders.Put(d)
	}()
	if err := d.Reset(src); err != nil {
		return fmt.Errorf("%w: %w", ErrBadSegment, err)
	}
	r := &segReader{src: io.LimitReader(d, maxSegmentBytes), buf: make([]byte, 64<<10)}
	return r.parse(func(int) {}, v)
}

// parse reads a segment's body, telling blobs its count of blobs, then
// v of each blob and file.
func (r *segReader) parse(blobs func(n int), v SegmentVisitor) error {
	np := r.count(digest.Size)
	packs := make([]digest.Digest, 0, r.capFor(np))
	for range np {
		packs = append(packs, r.digest())
	}
	nb := r.count(2 + digest.Size + 3)
	blobs(nb)
	for range nb {
		pn := r.uvarint()
		tc := r.bytes(2)
		var typ, codec uint8
		if len(tc) == 2 {
			typ, codec = tc[0], tc[1]
		}
		id := r.digest()
		off, length, raw := r.uvarint(), r.uvarint(), r.uvarint()
		if r.err != nil || pn >= uint64(len(packs)) || length > 1<<32-1 || raw > 1<<32-1 || typ > index.TypeTree {
			return fmt.Errorf("%w: blob record", ErrBadSegment)
		}
		if codec > index.MaxCodec {
			return fmt.Errorf("%w: blob record: %w", ErrBadSegment, unknownCodec(codec))
		}
		if v.Blob != nil {
			b := index.Blob{ID: id, Pack: packs[pn], Offset: off, Length: uint32(length), RawLen: uint32(raw), Type: typ, Codec: codec}
			if err := v.Blob(b); err != nil {
				return err
			}
		}
	}
	nf := r.count(digest.Size + 1)
	for range nf {
		f := r.digest()
		nc := r.count(digest.Size)
		chunks := make([]digest.Digest, 0, r.capFor(nc))
		for range nc {
			chunks = append(chunks, r.digest())
		}
		if r.err != nil {
			break
		}
		if len(chunks) < 2 {
			// Only files of two or more chunks are listed (FORMAT.md); a
			// shorter list would only stand in for the file's real one.
			return fmt.Errorf("%w: file %s listed with %d chunks", ErrBadSegment, f.Short(), len(chunks))
		}
		if v.File != nil {
			if err := v.File(f, chunks); err != nil {
				return err
			}
		}
	}
	if !r.atEnd() {
		return fmt.Errorf("%w: truncated or trailing bytes", ErrBadSegment)
	}
	return nil
}
