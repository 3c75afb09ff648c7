package format

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/klauspost/compress/zstd"

	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
)

// SegmentWriter encodes an index segment as it is given, for one too
// large to hold as a Segment: the caller knows the packs and how many
// blobs and files there are before it gives them, and gives the blobs
// sorted by (pack, offset) and the files sorted by digest, as Encode
// writes them. The body is the one Encode writes for the same content;
// the compressed frame may differ (docs/FORMAT.md: harmless).
type SegmentWriter struct {
	zw       *zstd.Encoder
	packNum  map[digest.Digest]uint64
	blobs    int // still to come
	files    int // -1 until Files
	last     index.Blob
	lastFile digest.Digest
	started  bool
	buf      []byte
}

// ErrSegmentOrder reports a SegmentWriter given what it cannot write:
// out of order, more or fewer than counted, or a blob of a pack not
// listed.
var ErrSegmentOrder = errors.New("segment written out of order")

// NewSegmentWriter starts a segment on w naming packs (sorted by ID,
// each once) and holding blobs blobs.
func NewSegmentWriter(w io.Writer, packs []digest.Digest, blobs int) (*SegmentWriter, error) {
	if !slices.IsSortedFunc(packs, func(a, b digest.Digest) int { return bytes.Compare(a[:], b[:]) }) {
		return nil, fmt.Errorf("%w: packs not sorted", ErrSegmentOrder)
	}
	if _, err := io.WriteString(w, SegmentMagic); err != nil {
		return nil, err
	}
	zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
	if err != nil {
		return nil, err
	}
	s := &SegmentWriter{zw: zw, packNum: make(map[digest.Digest]uint64, len(packs)), blobs: blobs, files: -1}
	s.buf = binary.AppendUvarint(s.buf[:0], uint64(len(packs)))
	for i, p := range packs {
		if i > 0 && p == packs[i-1] {
			return nil, fmt.Errorf("%w: pack %s listed twice", ErrSegmentOrder, p.Short())
		}
		s.packNum[p] = uint64(i)
		s.buf = append(s.buf, p[:]...)
	}
	s.buf = binary.AppendUvarint(s.buf, uint64(blobs))
	if _, err := zw.Write(s.buf); err != nil {
		return nil, err
	}
	return s, nil
}

// Blob writes the next blob.
func (s *SegmentWriter) Blob(b index.Blob) error {
	n, ok := s.packNum[b.Pack]
	switch {
	case !ok:
		return fmt.Errorf("%w: blob %s of a pack not listed", ErrSegmentOrder, b.ID.Short())
	case s.blobs == 0 || s.files >= 0:
		return fmt.Errorf("%w: more blobs than counted", ErrSegmentOrder)
	case s.started && (bytes.Compare(b.Pack[:], s.last.Pack[:]) < 0 || b.Pack == s.last.Pack && b.Offset < s.last.Offset):
		return fmt.Errorf("%w: blob %s not in (pack, offset) order", ErrSegmentOrder, b.ID.Short())
	}
	s.blobs--
	s.last, s.started = b, true
	s.buf = binary.AppendUvarint(s.buf[:0], n)
	s.buf = append(s.buf, b.Type, b.Codec)
	s.buf = append(s.buf, b.ID[:]...)
	s.buf = binary.AppendUvarint(s.buf, b.Offset)
	s.buf = binary.AppendUvarint(s.buf, uint64(b.Length))
	s.buf = binary.AppendUvarint(s.buf, uint64(b.RawLen))
	_, err := s.zw.Write(s.buf)
	return err
}

// Files ends the blobs and starts n files.
func (s *SegmentWriter) Files(n int) error {
	if s.blobs != 0 || s.files >= 0 {
		return fmt.Errorf("%w: files before every blob", ErrSegmentOrder)
	}
	s.files = n
	s.started = false
	s.buf = binary.AppendUvarint(s.buf[:0], uint64(n))
	_, err := s.zw.Write(s.buf)
	return err
}

// File writes the next file, of two or more chunks.
func (s *SegmentWriter) File(f digest.Digest, chunks []digest.Digest) error {
	switch {
	case s.files <= 0:
		return fmt.Errorf("%w: more files than counted", ErrSegmentOrder)
	case len(chunks) < 2:
		return fmt.Errorf("%w: file %s of %d chunks", ErrSegmentOrder, f.Short(), len(chunks))
	case s.started && bytes.Compare(f[:], s.lastFile[:]) <= 0:
		return fmt.Errorf("%w: file %s not in order", ErrSegmentOrder, f.Short())
	}
	s.files--
	s.lastFile, s.started = f, true
	s.buf = append(s.buf[:0], f[:]...)
	s.buf = binary.AppendUvarint(s.buf, uint64(len(chunks)))
	for _, c := range chunks {
		s.buf = append(s.buf, c[:]...)
	}
	_, err := s.zw.Write(s.buf)
	return err
}

// Close ends the segment.
func (s *SegmentWriter) Close() error {
	if s.files < 0 {
		if err := s.Files(0); err != nil {
			return err
		}
	}
	if s.blobs != 0 || s.files != 0 {
		return fmt.Errorf("%w: fewer blobs or files than counted", ErrSegmentOrder)
	}
	return s.zw.Close()
}
