package format_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/cas/format/formattest"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
)

// TestChunkRoundTrip checks that EncodeChunk compresses only what pays and
// that DecodeChunk gives back the raw bytes of whatever it chose.
func TestChunkRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		raw   []byte
		codec uint8
	}{
		{"empty", nil, index.CodecNone},
		{"short text", []byte("hello world\n"), index.CodecNone},
		{"zeros", make([]byte, 256<<10), index.CodecZstd},
		{"text", bytes.Repeat([]byte("the quick brown fox "), 1000), index.CodecZstd},
		{"random", formattest.XOF("random chunk", 256<<10), index.CodecNone},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stored, codec := format.EncodeChunk(tt.raw)
			if codec != tt.codec {
				t.Fatalf("EncodeChunk codec %d, want %d", codec, tt.codec)
			}
			b := index.Blob{ID: digest.Of(tt.raw), Codec: codec, RawLen: uint32(len(tt.raw)), Length: uint32(len(stored))}
			got, err := format.DecodeChunk(b, stored, nil)
			if err != nil || !bytes.Equal(got, tt.raw) {
				t.Fatalf("DecodeChunk = %d bytes, %v; want the %d raw bytes", len(got), err, len(tt.raw))
			}
		})
	}
}

func TestDecodeChunkRejects(t *testing.T) {
	t.Parallel()
	raw := bytes.Repeat([]byte("z"), 600)
	stored, codec := format.EncodeChunk(raw)
	if codec != index.CodecZstd {
		t.Fatalf("EncodeChunk codec %d, want zstd", codec)
	}
	good := index.Blob{ID: digest.Of(raw), Codec: codec, RawLen: uint32(len(raw)), Length: uint32(len(stored))}
	with := func(f func(b *index.Blob)) index.Blob { b := good; f(&b); return b }
	for _, tt := range []struct {
		name   string
		b      index.Blob
		stored []byte
		dst    []byte
	}{
		{"wrong id", with(func(b *index.Blob) { b.ID = digest.Of(nil) }), stored, nil},
		{"wrong raw length", with(func(b *index.Blob) { b.RawLen-- }), stored, nil},
		{"unknown codec", with(func(b *index.Blob) { b.Codec = 2 }), stored, nil},
		{"not zstd", good, raw, nil},
		{"truncated frame", good, stored[:len(stored)-1], nil},
		// An index entry may claim a compressed chunk of no stored bytes;
		// with a buffer at hand that must be an error, not a panic.
		{"nothing stored", good, stored[:0], make([]byte, len(raw))},
		{"plain, wrong id", index.Blob{ID: digest.Of(nil), RawLen: 600}, raw, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := format.DecodeChunk(tt.b, tt.stored, tt.dst)
			if !errors.Is(err, format.ErrBadChunk) {
				t.Errorf("DecodeChunk = %d bytes, %v; want ErrBadChunk", len(got), err)
			}
		})
	}
}
