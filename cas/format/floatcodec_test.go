package format_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
)

var allDTypes = []format.DType{format.FP32, format.BF16, format.FP16, format.FP64, format.FP8E4M3, format.FP8E5M2}

func TestDTypeFromName(t *testing.T) {
	tests := []struct {
		names []string
		want  format.DType
	}{
		{[]string{"torch.float32", "torch.float", "float32", "float", "F32", "<f4"}, format.FP32},
		{[]string{"torch.bfloat16", "bfloat16", "BF16"}, format.BF16},
		{[]string{"torch.float16", "torch.half", "float16", "half", "F16", "<f2"}, format.FP16},
		{[]string{"torch.float64", "torch.double", "float64", "double", "F64", "<f8"}, format.FP64},
		{[]string{"torch.float8_e4m3fn", "float8_e4m3fn", "F8_E4M3"}, format.FP8E4M3},
		{[]string{"torch.float8_e5m2", "float8_e5m2", "F8_E5M2"}, format.FP8E5M2},
		{[]string{"", ">f4", ">f2", ">f8", "|f1", "<i4", "torch.int64", "I32", "f32", "FP32", "torch.complex64", "BOOL"}, format.Unknown},
	}
	for _, tt := range tests {
		for _, name := range tt.names {
			if got := format.DTypeFromName(name); got != tt.want {
				t.Errorf("DTypeFromName(%q) = %v, want %v", name, got, tt.want)
			}
		}
	}
	sizes := map[format.DType]int{format.Unknown: 0, format.FP32: 4, format.BF16: 2, format.FP16: 2, format.FP64: 8, format.FP8E4M3: 1, format.FP8E5M2: 1}
	for dt, want := range sizes {
		if got := dt.Size(); got != want {
			t.Errorf("%v.Size() = %d, want %d", dt, got, want)
		}
	}
}

// TestToFP16 checks the tests' own float32 → binary16 rounding on values
// whose result is known, and on random values against its neighbours.
func TestToFP16(t *testing.T) {
	tests := []struct {
		f    float32
		want uint16
	}{
		{1, 0x3c00}, {-2, 0xc000}, {65504, 0x7bff}, {65519.99, 0x7bff}, {65520, 0x7c00},
		{float32(math.Ldexp(1, -14)), 0x0400}, {float32(math.Ldexp(1, -24)), 0x0001},
		{float32(math.Ldexp(1, -25)), 0}, {float32(math.Ldexp(1.5, -25)), 1}, {float32(math.Ldexp(3, -25)), 2},
		{float32(math.Ldexp(1023, -24)), 0x03ff}, {float32(math.Ldexp(2047, -25)), 0x0400},
		{1 + float32(math.Ldexp(1, -11)), 0x3c00}, {1 + float32(math.Ldexp(3, -11)), 0x3c02},
		{float32(math.Inf(-1)), 0xfc00}, {float32(math.Copysign(0, -1)), 0x8000}, {1e-30, 0},
	}
	for _, tt := range tests {
		if got := toFP16(tt.f); got != tt.want {
			t.Errorf("toFP16(%g) = %#04x, want %#04x", tt.f, got, tt.want)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		f := float32(math.Ldexp(r.Float64()+0.5, r.IntN(44)-28))
		h := toFP16(f)
		if h >= 0x7c00 {
			continue
		}
		d := math.Abs(float64(fromFP16(h)) - float64(f))
		for _, nb := range []uint16{h - 1, h + 1} {
			if h == 0 && nb == 0xffff || nb >= 0x7c00 {
				continue
			}
			dn := math.Abs(float64(fromFP16(nb)) - float64(f))
			if dn < d || dn == d && h&1 == 1 {
				t.Fatalf("toFP16(%g) = %#04x (%g), but %#04x (%g) is nearer or even", f, h, fromFP16(h), nb, fromFP16(nb))
			}
		}
	}
}

// roundTrip encodes raw without the demand to save, decodes it and fails
// unless the bytes come back exactly; it returns the stored form.
func roundTrip(t *testing.T, raw []byte, dt format.DType) []byte {
	t.Helper()
	stored := format.EncodeFloatAlways(raw, dt)
	got, err := format.DecodeFloat(stored, len(raw), nil)
	if err != nil {
		t.Fatalf("%v, %d bytes: DecodeFloat: %v", dt, len(raw), err)
	}
	if !bytes.Equal(got, raw) {
		t.Fatalf("%v, %d bytes: round trip differs at byte %d", dt, len(raw), firstDiff(got, raw))
	}
	if s, ok := format.EncodeFloat(raw, dt); ok {
		if !bytes.Equal(s, stored) {
			t.Fatalf("%v, %d bytes: EncodeFloat and EncodeFloatAlways differ", dt, len(raw))
		}
		if float64(len(s)) > 0.95*float64(len(raw)) {
			t.Fatalf("%v, %d bytes: EncodeFloat ok with %d stored bytes, saving less than 5%%", dt, len(raw), len(s))
		}
	}
	return stored
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestFloatRoundTripSmall(t *testing.T) {
	for _, dt := range allDTypes {
		es := dt.Size()
		for n := 0; n <= 3*es+1; n++ {
			for seed := range uint64(4) {
				raw := mixed(seed, n/es+1, dt)[:n]
				roundTrip(t, raw, dt)
			}
		}
	}
}

func TestFloatRoundTripLarge(t *testing.T) {
	for _, dt := range allDTypes {
		es := dt.Size()
		// Across stripes, with a part stripe and an odd tail; then a
		// whole number of stripes.
		for _, n := range []int{(2<<16+1234)*es + es - 1, 3 << 16 * es} {
			stored := roundTrip(t, mixed(uint64(n), n/es+1, dt)[:n], dt)
			if float64(len(stored)) > 1.001*float64(n) {
				t.Errorf("%v, %d mixed bytes: stored %d, over 1.001 of raw", dt, n, len(stored))
			}
		}
	}
}

func TestFloatRoundTripWeights(t *testing.T) {
	const n = 300000
	tests := []struct {
		name     string
		dt       format.DType
		raw      []byte
		maxRatio float64
	}{
		{"fp32 weights", format.FP32, weights(11, n, format.FP32), 0.85},
		{"bf16 weights", format.BF16, weights(12, n, format.BF16), 0.70},
		{"fp16 weights", format.FP16, weights(13, n, format.FP16), 0.87},
		{"fp64 weights", format.FP64, weights(14, n, format.FP64), 0.95},
		{"fp32 layernorm gains", format.FP32, encodeAs(normals(15, n, 1, 0.05), format.FP32), 0.70},
		{"bf16 layernorm gains", format.BF16, encodeAs(normals(16, n, 1, 0.05), format.BF16), 0.55},
		{"fp32 adam exp_avg_sq", format.FP32, adamSecondMoment(17, n), 0.85},
		{"fp32 zeros", format.FP32, make([]byte, 4*n), 0.001},
		// Huffman codes take a bit a byte at least: 90% zeros cost 0.19 for an
		// entropy of 0.125.
		{"bf16 sparse", format.BF16, sparse(18, n, format.BF16), 0.20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stored := roundTrip(t, tt.raw, tt.dt)
			ratio := float64(len(stored)) / float64(len(tt.raw))
			t.Logf("stored/raw %.4f, entropy ceiling %.4f", ratio, byteEntropyRatio(tt.raw, tt.dt.Size()))
			if ratio > tt.maxRatio {
				t.Errorf("stored/raw = %.4f, want at most %.4f", ratio, tt.maxRatio)
			}
			// Within 1% of the per-byte-position entropy, where one exists
			// that is not dominated by repeats.
			if ceil := byteEntropyRatio(tt.raw, tt.dt.Size()); ceil > 0.2 && ratio > ceil+0.01 {
				t.Errorf("stored/raw = %.4f, want within 0.01 of the entropy ceiling %.4f", ratio, ceil)
			}
			if _, ok := format.EncodeFloat(tt.raw, tt.dt); !ok {
				t.Errorf("EncodeFloat not ok at stored/raw %.4f", ratio)
			}
		})
	}
}

// sparse is weights of which nine in ten are zero.
func sparse(seed uint64, n int, dt format.DType) []byte {
	vs := normals(seed, n, 0, 0.02)
	r := rand.New(rand.NewPCG(seed, 17))
	for i := range vs {
		if r.IntN(10) > 0 {
			vs[i] = 0
		}
	}
	return encodeAs(vs, dt)
}

func TestEncodeFloatRandomBytes(t *testing.T) {
	for _, dt := range allDTypes {
		for _, n := range []int{100, 4097, 1 << 20} {
			raw := make([]byte, n)
			_, _ = rand.NewChaCha8([32]byte{byte(n), byte(n >> 8), byte(n >> 16)}).Read(raw)
			if s, ok := format.EncodeFloat(raw, dt); ok || s != nil {
				t.Errorf("%v, %d random bytes: EncodeFloat ok=%v with %d bytes, want not ok", dt, n, ok, len(s))
			}
			stored := roundTrip(t, raw, dt)
			// Header and one byte per block: at most 24 bytes and 1/1000.
			if len(stored) > n+n/1000+24 {
				t.Errorf("%v, %d random bytes: stored %d", dt, n, len(stored))
			}
		}
	}
	if s, ok := format.EncodeFloat(make([]byte, 4096), format.Unknown); ok || s != nil {
		t.Errorf("EncodeFloat of Unknown: ok=%v, want not ok", ok)
	}
}

// TestDecodeFloatInto checks that DecodeFloat uses dst when it is large
// enough, allocates when it is not, and never writes over stored.
func TestDecodeFloatInto(t *testing.T) {
	raw := weights(21, 100000, format.BF16)
	stored, ok := format.EncodeFloat(raw, format.BF16)
	if !ok {
		t.Fatal("EncodeFloat not ok")
	}
	dst := make([]byte, 10, len(raw)+5)
	got, err := format.DecodeFloat(stored, len(raw), dst)
	if err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("DecodeFloat into dst: %v", err)
	}
	if &got[0] != &dst[0] {
		t.Errorf("DecodeFloat did not decode into a dst of capacity %d", cap(dst))
	}
	small := make([]byte, len(raw)-1)
	if got, err = format.DecodeFloat(stored, len(raw), small); err != nil || !bytes.Equal(got, raw) || &got[0] == &small[0] {
		t.Errorf("DecodeFloat into a short dst: err %v, decoded into dst %v", err, err == nil && &got[0] == &small[0])
	}
	// dst that is stored itself, with room: stored must stay as it was.
	buf := make([]byte, len(stored), len(raw)+len(stored))
	copy(buf, stored)
	if got, err = format.DecodeFloat(buf, len(raw), buf); err != nil || !bytes.Equal(got, raw) || !bytes.Equal(buf, stored) {
		t.Errorf("DecodeFloat with dst = stored: err %v, stored kept %v", err, bytes.Equal(buf, stored))
	}
}

// TestDecodeChunkFloat checks that a blob of CodecFloat restores through
// DecodeChunk, and that its damage is ErrBadChunk.
func TestDecodeChunkFloat(t *testing.T) {
	raw := weights(22, 50000, format.FP32)
	stored, ok := format.EncodeFloat(raw, format.FP32)
	if !ok {
		t.Fatal("EncodeFloat not ok")
	}
	b := index.Blob{ID: digest.Of(raw), RawLen: uint32(len(raw)), Codec: index.CodecFloat}
	got, err := format.DecodeChunk(b, stored, nil)
	if err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("DecodeChunk: %v", err)
	}
	// A flipped bit in a raw mantissa block decodes, to other bytes: the
	// digest catches it.
	bad := bytes.Clone(stored)
	bad[len(bad)-100] ^= 1
	if _, err := format.DecodeChunk(b, bad, nil); !errors.Is(err, format.ErrBadChunk) {
		t.Errorf("DecodeChunk of a flipped bit: %v, want ErrBadChunk", err)
	}
	if _, err := format.DecodeChunk(b, stored[:len(stored)-1], nil); !errors.Is(err, format.ErrBadChunk) {
		t.Errorf("DecodeChunk of a truncated blob: %v, want ErrBadChunk", err)
	}
	b.Codec = index.CodecFloat + 1
	if _, err := format.DecodeChunk(b, stored, nil); !errors.Is(err, format.ErrBadChunk) {
		t.Errorf("DecodeChunk of codec %d: %v, want ErrBadChunk", b.Codec, err)
	}
}

// TestDecodeFloatDamage checks that every inconsistency in a stored form
// is ErrBadChunk: truncation, extra bytes, a wrong raw length, each
// header field out of its range, and block lengths that do not add up.
func TestDecodeFloatDamage(t *testing.T) {
	raw := append(stripes(31), 1, 2, 3)
	stored, ok := format.EncodeFloat(raw, format.FP32)
	if !ok {
		t.Fatal("EncodeFloat not ok")
	}
	kinds := blockKinds(t, stored, len(raw))
	for _, k := range []byte{0, 1, 3, 4} {
		if kinds[k] == 0 {
			t.Fatalf("vector has no block of kind %d (kinds %v): it no longer tests them all", k, kinds)
		}
	}
	bad := func(name string, b []byte, rawLen int) {
		t.Helper()
		if got, err := format.DecodeFloat(b, rawLen, nil); !errors.Is(err, format.ErrBadChunk) {
			t.Errorf("%s: DecodeFloat = %d bytes, %v; want ErrBadChunk", name, len(got), err)
		}
	}
	for n := range len(stored) {
		if n < 200 || n%97 == 0 || n > len(stored)-200 {
			bad("truncated", stored[:n], len(raw))
		}
	}
	bad("extra byte", append(bytes.Clone(stored), 0), len(raw))
	bad("raw length - 1", stored, len(raw)-1)
	bad("raw length + 1", stored, len(raw)+1)
	bad("raw length over MaxChunkLen", stored, format.MaxChunkLen+1)
	bad("negative raw length", stored, -1)
	set := func(i int, v byte) []byte {
		b := bytes.Clone(stored)
		b[i] = v
		return b
	}
	bad("version 0", set(0, 0), len(raw))
	bad("version 2", set(0, 2), len(raw))
	bad("dtype BF16 with 4-byte elements", set(1, byte(format.BF16)), len(raw))
	bad("dtype unknown", set(1, 0), len(raw))
	bad("dtype 7", set(1, 7), len(raw))
	bad("element size 2", set(2, 2), len(raw))
	bad("stripe log 7", set(3, 7), len(raw))
	bad("stripe log 18", set(3, 18), len(raw))
	bad("stripe log 15", set(3, 15), len(raw)) // valid, but the blocks no longer fit
	bad("no groups", set(4, 0), len(raw))
	bad("5 groups", set(4, 5), len(raw))
	bad("group of width 0", set(5, 0), len(raw))
	bad("widths summing to 5", set(5, 2), len(raw))
	bad("empty", nil, 0)
	bad("header only", stored[:10], len(raw))
	// The first block's kind, at offset 9 + uvarint(len(raw)).
	kindAt := 9 + len(binary.AppendUvarint(nil, uint64(len(raw))))
	bad("block kind 5", set(kindAt, 5), len(raw))
	bad("block kind 255", set(kindAt, 255), len(raw))

	// A header that claims a gigabyte over nothing fails before
	// allocating it.
	forged := []byte{1, byte(format.FP32), 4, 16, 4, 1, 1, 1, 1}
	forged = binary.AppendUvarint(forged, format.MaxChunkLen)
	forged = append(forged, 1, 0)
	before := totalAlloc()
	bad("a gigabyte claimed", forged, format.MaxChunkLen)
	if grew := totalAlloc() - before; grew > 1<<20 {
		t.Errorf("DecodeFloat of a forged gigabyte allocated %d bytes", grew)
	}
}

// stripes is three stripes of FP32 whose blocks take every kind:
// weights (raw mantissa bytes, huff0 exponents), zeros (run-length) and
// a pattern of weights repeated (zstd).
func stripes(seed uint64) []byte {
	const stripe = 1 << 16
	raw := weights(seed, stripe, format.FP32)
	raw = append(raw, make([]byte, 4*stripe)...)
	pattern := weights(seed+1, 1000, format.FP32)
	for len(raw) < 3*4*stripe {
		raw = append(raw, pattern...)
	}
	return raw[:3*4*stripe]
}

// blockKinds counts the kinds of the blocks of a stored form of FP32
// with its encoder's layout (4 groups of 1 byte, 2^16 elements a stripe).
func blockKinds(t *testing.T, stored []byte, rawLen int) map[byte]int {
	t.Helper()
	at := 9 + len(binary.AppendUvarint(nil, uint64(rawLen)))
	n := rawLen / 4
	kinds := map[byte]int{}
	for first := 0; first < n; first += 1 << 16 {
		blen := min(1<<16, n-first)
		for range 4 {
			k := stored[at]
			kinds[k]++
			at++
			switch k {
			case 0:
				at += blen
			case 1:
				at++
			default:
				v, m := binary.Uvarint(stored[at:])
				at += m + int(v)
			}
		}
	}
	if at != len(stored)-rawLen%4 {
		t.Fatalf("blocks end at %d, want %d", at, len(stored)-rawLen%4)
	}
	return kinds
}

func totalAlloc() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}

// TestDecodeFloatAllocates checks that a decode allocates its raw length
// and a bounded scratch, nothing in proportion to more than that: into a
// dst of its own, next to nothing.
func TestDecodeFloatAllocates(t *testing.T) {
	raw := weights(41, 2<<20, format.BF16) // 4 MiB
	stored, ok := format.EncodeFloat(raw, format.BF16)
	if !ok {
		t.Fatal("EncodeFloat not ok")
	}
	dst := make([]byte, len(raw))
	if _, err := format.DecodeFloat(stored, len(raw), dst); err != nil {
		t.Fatal(err)
	}
	const runs = 10
	before := totalAlloc()
	for range runs {
		if _, err := format.DecodeFloat(stored, len(raw), dst); err != nil {
			t.Fatal(err)
		}
	}
	// The scratch (one stripe, 256 KiB here) may be made again when a
	// collection empties its pool.
	if per := (totalAlloc() - before) / runs; per > 300<<10 {
		t.Errorf("DecodeFloat into dst allocated %d bytes a call", per)
	}
	before = totalAlloc()
	for range runs {
		if _, err := format.DecodeFloat(stored, len(raw), nil); err != nil {
			t.Fatal(err)
		}
	}
	if per := (totalAlloc() - before) / runs; per > uint64(len(raw))+300<<10 {
		t.Errorf("DecodeFloat allocated %d bytes a call for %d raw bytes", per, len(raw))
	}
}

// TestDecodeFloatLayouts checks that the decoder reads what the format
// allows though the encoder does not write it: other group widths and
// stripe lengths.
func TestDecodeFloatLayouts(t *testing.T) {
	raw := append(stripes(51)[:4*3000], 9, 9)
	fp64 := mixed(52, 3000, format.FP64)
	tests := []struct {
		dt     format.DType
		raw    []byte
		widths []uint8
		slog   int
	}{
		{format.FP32, raw, []uint8{2, 1, 1}, 16},
		{format.FP32, raw, []uint8{1, 1, 2}, 8},
		{format.FP32, raw, []uint8{4}, 10},
		{format.FP32, raw, []uint8{1, 1, 1, 1}, 8},
		{format.FP32, raw, []uint8{1, 1, 1, 1}, 17},
		{format.FP64, fp64, []uint8{6, 1, 1}, 12},
		{format.FP64, fp64, []uint8{1, 1, 1, 1, 1, 1, 1, 1}, 15},
		{format.BF16, raw, []uint8{2}, 8},
	}
	for _, tt := range tests {
		stored := format.EncodeFloatLayout(tt.raw, tt.dt, tt.widths, tt.slog)
		got, err := format.DecodeFloat(stored, len(tt.raw), nil)
		if err != nil || !bytes.Equal(got, tt.raw) {
			t.Errorf("%v widths %v stripes 2^%d: %v, equal %v", tt.dt, tt.widths, tt.slog, err, bytes.Equal(got, tt.raw))
		}
	}
}
