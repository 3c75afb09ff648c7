package format

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
)

// Pack layout (docs/FORMAT.md):
//
//	"CASPACK1"                      header magic
//	stored blob bytes, back to back
//	trailer: one 50-byte record per blob:
//	  type u8, codec u8, id [32]byte, offset u64, length u32, raw length u32
//	count u32                       number of trailer records
//	"CASPACK1"                      footer magic
//
// Integers are little endian. A pack is named by the BLAKE3 of its trailer
// (records, count and footer magic; PackNamed), which does not cover the
// header magic or the blobs' bytes: those are checked as they are read.
const (
	// PackMagic starts and ends every pack.
	PackMagic = "CASPACK1"
	// PackRecordLen is the size of one trailer record.
	PackRecordLen = 1 + 1 + 32 + 8 + 4 + 4
	// PackFooterLen is the size of the footer: the record count and the
	// closing magic.
	PackFooterLen = 4 + len(PackMagic)
	// MinPackLen is the size of an empty pack: header and footer.
	MinPackLen = len(PackMagic) + PackFooterLen
	// MaxPackBlobs bounds the record count a trailer may claim.
	MaxPackBlobs = 1 << 20
	// TargetPackBytes is the size a pack is cut at: a writer starts a new
	// pack before a blob would take the current one past it.
	TargetPackBytes = 16 << 20
)

// ErrBadPack reports a pack whose layout is broken.
var ErrBadPack = errors.New("malformed pack")

// PackBuilder assembles one pack in memory. Its zero value is ready to
// use; Reset makes it ready again after Finish.
type PackBuilder struct {
	buf   bytes.Buffer
	blobs []index.Blob
}

// NewPackBuilder returns a builder with its buffer allocated.
func NewPackBuilder() *PackBuilder {
	p := &PackBuilder{}
	// A pack is cut before a blob would take it past TargetPackBytes;
	// the trailer needs 50 bytes a blob.
	p.buf.Grow(TargetPackBytes + 1<<20)
	p.buf.WriteString(PackMagic)
	return p
}

// Size is the number of bytes written so far, trailer not counted.
func (p *PackBuilder) Size() int { return p.buf.Len() }

// Empty reports whether no blob has been added.
func (p *PackBuilder) Empty() bool { return len(p.blobs) == 0 }

// Add appends a blob's stored bytes; b's Offset and Length are set
// from where they land.
func (p *PackBuilder) Add(b index.Blob, stored []byte) {
	if p.buf.Len() == 0 {
		p.Reset() // a zero PackBuilder gets its buffer on first use
	}
	b.Offset = uint64(p.buf.Len())
	b.Length = uint32(len(stored))
	p.buf.Write(stored)
	p.blobs = append(p.blobs, b)
}

// Finish writes the trailer and returns the pack bytes, its name (the
// BLAKE3 of its trailer, see PackNamed) and the blobs with Pack filled in. The bytes and the blobs are the builder's
// buffers: they stay valid until the next Reset.
func (p *PackBuilder) Finish() ([]byte, digest.Digest, []index.Blob) {
	var rec [PackRecordLen]byte
	for _, b := range p.blobs {
		rec[0] = b.Type
		rec[1] = b.Codec
		copy(rec[2:34], b.ID[:])
		binary.LittleEndian.PutUint64(rec[34:], b.Offset)
		binary.LittleEndian.PutUint32(rec[42:], b.Length)
		binary.LittleEndian.PutUint32(rec[46:], b.RawLen)
		p.buf.Write(rec[:])
	}
	var foot [PackFooterLen]byte
	binary.LittleEndian.PutUint32(foot[:], uint32(len(p.blobs)))
	copy(foot[4:], PackMagic)
	p.buf.Write(foot[:])
	data := p.buf.Bytes()
	id := digest.Of(data[len(data)-len(p.blobs)*PackRecordLen-PackFooterLen:])
	for i := range p.blobs {
		p.blobs[i].Pack = id
	}
	return data, id, p.blobs
}

// unknownCodec is the error for a codec this cas does not read.
func unknownCodec(c uint8) error {
	return fmt.Errorf("codec %d is unknown to this cas (written by a newer version? upgrade cas)", c)
}

// PackTrailerLen returns how many bytes at the end of a pack hold the
// trailer and footer, given the footer (its last PackFooterLen bytes).
func PackTrailerLen(foot []byte) (int, error) {
	if len(foot) != PackFooterLen || string(foot[4:]) != PackMagic {
		return 0, fmt.Errorf("%w: no footer", ErrBadPack)
	}
	n := binary.LittleEndian.Uint32(foot)
	if n > MaxPackBlobs {
		return 0, fmt.Errorf("%w: %d blobs", ErrBadPack, n)
	}
	return int(n)*PackRecordLen + PackFooterLen, nil
}

// ParsePackTrailer decodes the trailer (with footer) of a pack of
// packSize bytes, checking that the blobs, in trailer order, tile the data
// area exactly as PackBuilder writes them: no gap, no overlap, nothing
// left over. A wrong count therefore cannot go unnoticed.
func ParsePackTrailer(pack digest.Digest, tail []byte, packSize int64) ([]index.Blob, error) {
	if len(tail) < PackFooterLen {
		return nil, fmt.Errorf("%w: short trailer", ErrBadPack)
	}
	want, err := PackTrailerLen(tail[len(tail)-PackFooterLen:])
	if err != nil {
		return nil, err
	}
	if want != len(tail) {
		return nil, fmt.Errorf("%w: trailer length", ErrBadPack)
	}
	if packSize < int64(len(PackMagic)+len(tail)) {
		return nil, fmt.Errorf("%w: too small", ErrBadPack)
	}
	dataEnd := uint64(packSize) - uint64(len(tail))
	n := (len(tail) - PackFooterLen) / PackRecordLen
	blobs := make([]index.Blob, n)
	next := uint64(len(PackMagic))
	for i := range blobs {
		r := tail[i*PackRecordLen:]
		b := index.Blob{Type: r[0], Codec: r[1], Pack: pack,
			Offset: binary.LittleEndian.Uint64(r[34:]),
			Length: binary.LittleEndian.Uint32(r[42:]),
			RawLen: binary.LittleEndian.Uint32(r[46:])}
		copy(b.ID[:], r[2:34])
		if b.Codec > index.MaxCodec {
			return nil, fmt.Errorf("%w: blob %d: %w", ErrBadPack, i, unknownCodec(b.Codec))
		}
		if b.Type > index.TypeTree {
			return nil, fmt.Errorf("%w: blob %d type %d", ErrBadPack, i, b.Type)
		}
		// next <= dataEnd, so the subtraction cannot wrap around.
		if b.Offset != next || uint64(b.Length) > dataEnd-b.Offset {
			return nil, fmt.Errorf("%w: blob %d out of bounds", ErrBadPack, i)
		}
		if b.Codec == index.CodecNone && b.Length != b.RawLen {
			return nil, fmt.Errorf("%w: blob %d length", ErrBadPack, i)
		}
		next = b.Offset + uint64(b.Length)
		blobs[i] = b
	}
	if next != dataEnd {
		return nil, fmt.Errorf("%w: %d bytes after the last blob", ErrBadPack, dataEnd-next)
	}
	return blobs, nil
}

// ParsePack decodes the trailer of a whole pack held in data.
func ParsePack(pack digest.Digest, data []byte) ([]index.Blob, error) {
	if len(data) < len(PackMagic)+PackFooterLen || string(data[:len(PackMagic)]) != PackMagic {
		return nil, fmt.Errorf("%w: no header", ErrBadPack)
	}
	tl, err := PackTrailerLen(data[len(data)-PackFooterLen:])
	if err != nil {
		return nil, err
	}
	if tl > len(data)-len(PackMagic) {
		return nil, fmt.Errorf("%w: trailer length", ErrBadPack)
	}
	return ParsePackTrailer(pack, data[len(data)-tl:], int64(len(data)))
}

// PackNamed reports whether id names the pack held in data, whose footer
// is sound (ParsePack accepted it): a pack is named by the BLAKE3 of its
// trailer (its records, count and footer), which commits to the ID,
// place, length and codec of every blob it holds, the blobs' bytes being
// checked against their IDs as they are read; packs written before cas
// named them so were named by the BLAKE3 of all their bytes, and still
// are accepted by that name.
func PackNamed(id digest.Digest, data []byte) bool {
	if len(data) < PackFooterLen {
		return false
	}
	tl, err := PackTrailerLen(data[len(data)-PackFooterLen:])
	if err == nil && tl <= len(data) && digest.Of(data[len(data)-tl:]) == id {
		return true
	}
	return digest.Of(data) == id
}

// Reset empties the builder for reuse, keeping its buffer.
func (p *PackBuilder) Reset() {
	if p.buf.Cap() == 0 {
		p.buf.Grow(TargetPackBytes + 1<<20)
	}
	p.buf.Reset()
	p.buf.WriteString(PackMagic)
	p.blobs = p.blobs[:0] // what Finish returned is the caller's no longer
}
