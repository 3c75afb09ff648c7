package format_test

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
)

// A pack holding a blob of the float codec parses, and its blob decodes
// through DecodeChunk; a codec above it is refused with a message that
// says a newer cas wrote it.
func TestPackCodecs(t *testing.T) {
	t.Parallel()
	raw := weights(9, 1<<14, format.BF16)
	stored, codec := format.EncodeChunkAs(raw, format.BF16)
	if codec != index.CodecFloat || len(stored) >= len(raw) {
		t.Fatalf("EncodeChunkAs(BF16 weights) = codec %d, %d of %d bytes; want the float codec", codec, len(stored), len(raw))
	}
	pb := &format.PackBuilder{}
	pb.Reset()
	pb.Add(index.Blob{ID: digest.Of(raw), RawLen: uint32(len(raw)), Codec: codec}, stored)
	data, id, _ := pb.Finish()
	blobs, err := format.ParsePack(id, data)
	if err != nil || len(blobs) != 1 || blobs[0].Codec != index.CodecFloat {
		t.Fatalf("ParsePack = %+v, %v; want one codec-2 blob", blobs, err)
	}
	b := blobs[0]
	got, err := format.DecodeChunk(b, data[b.Offset:b.Offset+uint64(b.Length)], nil)
	if err != nil || string(got) != string(raw) {
		t.Fatalf("DecodeChunk: %v", err)
	}

	// Codec 3, as a newer cas might write it.
	rec := len(data) - format.PackFooterLen - format.PackRecordLen
	bad := append([]byte(nil), data...)
	bad[rec+1] = 3
	_, err = format.ParsePack(id, bad)
	if err == nil || !strings.Contains(err.Error(), "codec 3 is unknown to this cas (written by a newer version? upgrade cas)") {
		t.Fatalf("ParsePack with codec 3: %v, want the unknown-codec error", err)
	}
}

// EncodeChunkAs keeps untyped data to EncodeChunk's rule, and float data
// the float codec cannot shrink raw: never longer than raw.
func TestEncodeChunkAs(t *testing.T) {
	t.Parallel()
	random := make([]byte, 1<<16)
	r := rand.New(rand.NewPCG(3, 3))
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	for _, dt := range []format.DType{format.Unknown, format.FP32, format.BF16, format.FP16} {
		stored, codec := format.EncodeChunkAs(random, dt)
		if codec != index.CodecNone || &stored[0] != &random[0] {
			t.Errorf("random bytes as %v: codec %d, want none", dt, codec)
		}
	}
	text := []byte(strings.Repeat("the same line of text, again and again\n", 1000))
	if _, codec := format.EncodeChunkAs(text, format.Unknown); codec != index.CodecZstd {
		t.Errorf("text untyped: codec %d, want zstd", codec)
	}
	fp32 := weights(5, 1<<14, format.FP32)
	if _, codec := format.EncodeChunkAs(fp32, format.Unknown); codec != index.CodecNone {
		t.Errorf("FP32 weights untyped: codec %d, want none", codec)
	}
	if stored, codec := format.EncodeChunkAs(fp32, format.FP32); codec != index.CodecFloat || len(stored) > len(fp32)*86/100 {
		t.Errorf("FP32 weights typed: codec %d, %d of %d bytes; want float, at most 0.86", codec, len(stored), len(fp32))
	}
	if _, codec := format.EncodeChunkAs(fp32[:500], format.FP32); codec != index.CodecNone {
		t.Errorf("500 bytes: codec %d, want none (too short to try)", codec)
	}
}
