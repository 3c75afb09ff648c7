package format_test

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/cas/format/formattest"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
)

// Fuzz targets for the parsers of stored bytes, which may come from a
// damaged disk or a hostile bucket. Run one with
//
//	go test ./cas/format -run XXX -fuzz FuzzParseTree -fuzztime 1m

// FuzzParseTree checks that format.ParseTree accepts only canonical encodings:
// whatever it accepts, Encode reproduces byte for byte.
func FuzzParseTree(f *testing.F) {
	for _, gs := range formattest.Golden {
		_, enc, err := formattest.Tree(f, gs.Entry).Digest()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
	}
	f.Add([]byte("cas-tree-v1\nlink 0000000000000000000000000000000000000000000000000000000000000000 0 1 \xff\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := format.ParseTree(data)
		if err != nil {
			if !errors.Is(err, format.ErrBadTree) && !errors.Is(err, format.ErrBadName) {
				t.Fatalf("ParseTree error %v, want ErrBadTree or ErrBadName", err)
			}
			return
		}
		enc, err := tr.Encode()
		if err != nil {
			t.Fatalf("Encode of a parsed tree: %v", err)
		}
		if !bytes.Equal(enc, data) {
			t.Fatalf("Encode(ParseTree(b)) = %q, want b = %q", enc, data)
		}
	})
}

// FuzzParsePack checks that ParsePack never panics, that every blob it
// returns lies inside the pack's data area, and that whatever it accepts
// format.PackBuilder writes again byte for byte.
func FuzzParsePack(f *testing.F) {
	data, _, _ := buildPack(f, goldenBlobs(f))
	f.Add(data)
	f.Add(data[:len(data)-1])
	var bs []goldenBlob
	for i := range 6 {
		raw := formattest.XOF(string(rune('a'+i)), i*37)
		bs = append(bs, goldenBlob{uint8(i % 2), index.CodecNone, raw, raw})
	}
	data, _, _ = buildPack(f, bs)
	f.Add(data)
	empty, _, _ := buildPack(f, nil)
	f.Add(empty)
	f.Fuzz(func(t *testing.T, data []byte) {
		id := digest.Of(data) // a name ParsePack does not check
		blobs, err := format.ParsePack(id, data)
		if err != nil {
			if !errors.Is(err, format.ErrBadPack) {
				t.Fatalf("ParsePack error %v, want ErrBadPack", err)
			}
			return
		}
		dataEnd := uint64(len(data) - len(blobs)*format.PackRecordLen - format.PackFooterLen)
		p := &format.PackBuilder{}
		p.Reset()
		for i, b := range blobs {
			if b.Offset < uint64(len(format.PackMagic)) || b.Offset > dataEnd || uint64(b.Length) > dataEnd-b.Offset {
				t.Fatalf("blob %d at %d+%d lies outside the data area 8..%d", i, b.Offset, b.Length, dataEnd)
			}
			if b.Pack != id {
				t.Fatalf("blob %d: pack %v, want %v", i, b.Pack, id)
			}
			b.Pack = digest.Zero
			p.Add(b, data[b.Offset:b.Offset+uint64(b.Length)])
		}
		again, againID, againBlobs := p.Finish()
		for i := range againBlobs {
			againBlobs[i].Pack = id
		}
		if !bytes.Equal(again, data) || (len(blobs) > 0 && !reflect.DeepEqual(againBlobs, blobs)) {
			t.Fatalf("PackBuilder does not reproduce an accepted pack:\ngot  %x\nwant %x", again, data)
		}
		if trailer := data[dataEnd:]; againID != digest.Of(trailer) || !format.PackNamed(againID, data) || !format.PackNamed(id, data) {
			t.Fatalf("PackBuilder names the pack %v, want the BLAKE3 of its trailer %v, and PackNamed to take both it and %v", againID, digest.Of(trailer), id)
		}
	})
}

// FuzzDecodeSegment checks that DecodeSegment never panics, allocates in
// proportion to its input whatever sizes the input claims, and decodes
// again what Segment.Encode makes of its result. When raw is true, data
// is a segment body, compressed before decoding, so that the fuzzer
// reaches the record parser without having to forge zstd frames.
func FuzzDecodeSegment(f *testing.F) {
	_, _, blobs := buildPack(f, goldenBlobs(f))
	seg := goldenSegment(blobs).Encode()
	body, err := zstdDecoder.DecodeAll(seg[len(format.SegmentMagic):], nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seg, false)
	f.Add(body, true)
	empty := (&format.Segment{}).Encode()
	f.Add(empty, false)
	f.Add([]byte{0, 0, 0}, true)
	f.Fuzz(func(t *testing.T, data []byte, raw bool) {
		if raw {
			data = segmentOf(data)
		}
		var s *format.Segment
		var err error
		n := allocs(func() { s, err = format.DecodeSegment(data) })
		if n > segmentAllocBound(len(data)) {
			t.Fatalf("DecodeSegment of %d bytes allocated %d bytes, want at most %d", len(data), n, segmentAllocBound(len(data)))
		}
		if err != nil {
			if !errors.Is(err, format.ErrBadSegment) {
				t.Fatalf("DecodeSegment error %v, want ErrBadSegment", err)
			}
			return
		}
		again, err := format.DecodeSegment(s.Encode())
		if err != nil {
			t.Fatalf("DecodeSegment(Encode(s)): %v", err)
		}
		sortBlobs(s.Blobs)
		sortBlobs(again.Blobs)
		if !reflect.DeepEqual(again, s) {
			t.Fatalf("DecodeSegment(Encode(s)) = %+v, want %+v", again, s)
		}
	})
}

// FuzzDecodeFloat checks that DecodeFloat never panics on any bytes,
// fails only with ErrBadChunk, and returns exactly rawLen bytes when it
// succeeds. Raw lengths are held under 16 MiB so that a forged stored
// form of run-length blocks cannot make each run allocate a gigabyte.
func FuzzDecodeFloat(f *testing.F) {
	for _, in := range floatVectorInputs() {
		raw := in.raw()
		f.Add(format.EncodeFloatAlways(raw, in.dt), uint32(len(raw)))
	}
	// Stripes of 256 elements: blocks of every kind in a few KiB.
	small := stripes(1)
	small = append(append(small[:1024:1024], small[4<<16:4<<16+1024]...), small[8<<16:8<<16+1027]...)
	f.Add(format.EncodeFloatLayout(small, format.FP32, []uint8{1, 1, 1, 1}, 8), uint32(len(small)))
	f.Add(format.EncodeFloatLayout(small, format.FP32, []uint8{2, 1, 1}, 8), uint32(len(small)))
	f.Fuzz(func(t *testing.T, stored []byte, rawLen uint32) {
		rawLen %= 16 << 20
		raw, err := format.DecodeFloat(stored, int(rawLen), nil)
		if err != nil {
			if !errors.Is(err, format.ErrBadChunk) {
				t.Fatalf("DecodeFloat error %v, want ErrBadChunk", err)
			}
			return
		}
		if len(raw) != int(rawLen) {
			t.Fatalf("DecodeFloat returned %d bytes, want %d", len(raw), rawLen)
		}
	})
}

// FuzzFloatRoundTrip checks that any bytes, as any dtype, come back
// exactly from their stored form.
func FuzzFloatRoundTrip(f *testing.F) {
	for _, in := range floatVectorInputs() {
		f.Add(in.raw(), uint8(in.dt))
	}
	f.Fuzz(func(t *testing.T, raw []byte, dt uint8) {
		d := format.DType(dt%6 + 1)
		stored := format.EncodeFloatAlways(raw, d)
		got, err := format.DecodeFloat(stored, len(raw), nil)
		if err != nil || !bytes.Equal(got, raw) {
			t.Fatalf("round trip of %d bytes as %v: %v, equal %v", len(raw), d, err, bytes.Equal(got, raw))
		}
		if s, ok := format.EncodeFloat(raw, d); ok && !bytes.Equal(s, stored) {
			t.Fatalf("EncodeFloat and EncodeFloatAlways differ")
		}
	})
}
