package cas

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
// Integers are little endian. A pack is named by the BLAKE3 of all its bytes.
const (
	packMagic        = "CASPACK1"
	packRecordLen    = 1 + 1 + 32 + 8 + 4 + 4
	packFooterLen    = 4 + len(packMagic)
	maxPackBlobs     = 1 << 20
	defaultPackBytes = 16 << 20
)

// ErrBadPack reports a pack whose layout is broken.
var ErrBadPack = errors.New("cas: malformed pack")

// packBuilder assembles one pack in memory.
type packBuilder struct {
	buf   bytes.Buffer
	blobs []index.Blob
}

func newPackBuilder() *packBuilder {
	p := &packBuilder{}
	// A pack is cut before a blob would take it past defaultPackBytes;
	// the trailer needs 50 bytes a blob.
	p.buf.Grow(defaultPackBytes + 1<<20)
	p.buf.WriteString(packMagic)
	return p
}

func (p *packBuilder) size() int { return p.buf.Len() }

func (p *packBuilder) empty() bool { return len(p.blobs) == 0 }

// add appends a blob's stored bytes.
func (p *packBuilder) add(b index.Blob, stored []byte) {
	if p.buf.Len() == 0 {
		p.reset() // a zero packBuilder gets its buffer on first use
	}
	b.Offset = uint64(p.buf.Len())
	b.Length = uint32(len(stored))
	p.buf.Write(stored)
	p.blobs = append(p.blobs, b)
}

// finish writes the trailer and returns the pack bytes, its name and the
// blobs with Pack filled in.
func (p *packBuilder) finish() ([]byte, digest.Digest, []index.Blob) {
	var rec [packRecordLen]byte
	for _, b := range p.blobs {
		rec[0] = b.Type
		rec[1] = b.Codec
		copy(rec[2:34], b.ID[:])
		binary.LittleEndian.PutUint64(rec[34:], b.Offset)
		binary.LittleEndian.PutUint32(rec[42:], b.Length)
		binary.LittleEndian.PutUint32(rec[46:], b.RawLen)
		p.buf.Write(rec[:])
	}
	var foot [packFooterLen]byte
	binary.LittleEndian.PutUint32(foot[:], uint32(len(p.blobs)))
	copy(foot[4:], packMagic)
	p.buf.Write(foot[:])
	data := p.buf.Bytes()
	id := digest.Of(data)
	for i := range p.blobs {
		p.blobs[i].Pack = id
	}
	return data, id, p.blobs
}

// packTrailerLen returns how many bytes at the end of a pack hold the
// trailer and footer, given the footer (its last packFooterLen bytes).
func packTrailerLen(foot []byte) (int, error) {
	if len(foot) != packFooterLen || string(foot[4:]) != packMagic {
		return 0, fmt.Errorf("%w: no footer", ErrBadPack)
	}
	n := binary.LittleEndian.Uint32(foot)
	if n > maxPackBlobs {
		return 0, fmt.Errorf("%w: %d blobs", ErrBadPack, n)
	}
	return int(n)*packRecordLen + packFooterLen, nil
}

// parsePackTrailer decodes the trailer (with footer) of a pack of
// packSize bytes, checking that the blobs, in trailer order, tile the data
// area exactly as packBuilder writes them: no gap, no overlap, nothing
// left over. A wrong count therefore cannot go unnoticed.
func parsePackTrailer(pack digest.Digest, tail []byte, packSize int64) ([]index.Blob, error) {
	if len(tail) < packFooterLen {
		return nil, fmt.Errorf("%w: short trailer", ErrBadPack)
	}
	want, err := packTrailerLen(tail[len(tail)-packFooterLen:])
	if err != nil {
		return nil, err
	}
	if want != len(tail) {
		return nil, fmt.Errorf("%w: trailer length", ErrBadPack)
	}
	if packSize < int64(len(packMagic)+len(tail)) {
		return nil, fmt.Errorf("%w: too small", ErrBadPack)
	}
	dataEnd := uint64(packSize) - uint64(len(tail))
	n := (len(tail) - packFooterLen) / packRecordLen
	blobs := make([]index.Blob, n)
	next := uint64(len(packMagic))
	for i := range blobs {
		r := tail[i*packRecordLen:]
		b := index.Blob{Type: r[0], Codec: r[1], Pack: pack,
			Offset: binary.LittleEndian.Uint64(r[34:]),
			Length: binary.LittleEndian.Uint32(r[42:]),
			RawLen: binary.LittleEndian.Uint32(r[46:])}
		copy(b.ID[:], r[2:34])
		if b.Type > index.TypeTree || b.Codec > index.CodecZstd {
			return nil, fmt.Errorf("%w: blob %d type %d codec %d", ErrBadPack, i, b.Type, b.Codec)
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

// parsePack decodes a whole pack's trailer.
func parsePack(pack digest.Digest, data []byte) ([]index.Blob, error) {
	if len(data) < len(packMagic)+packFooterLen || string(data[:len(packMagic)]) != packMagic {
		return nil, fmt.Errorf("%w: no header", ErrBadPack)
	}
	tl, err := packTrailerLen(data[len(data)-packFooterLen:])
	if err != nil {
		return nil, err
	}
	if tl > len(data)-len(packMagic) {
		return nil, fmt.Errorf("%w: trailer length", ErrBadPack)
	}
	return parsePackTrailer(pack, data[len(data)-tl:], int64(len(data)))
}

// reset empties the builder for reuse, keeping its buffer.
func (p *packBuilder) reset() {
	if p.buf.Cap() == 0 {
		p.buf.Grow(defaultPackBytes + 1<<20)
	}
	p.buf.Reset()
	p.buf.WriteString(packMagic)
	p.blobs = nil
}
