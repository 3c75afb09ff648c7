package format_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/cas/format/formattest"
	"github.com/cas-ml/cas/digest"
)

// The float codec's test vectors: NAME.raw.bin and NAME.stored.bin in
// testdata/floatcodec, with the digests of both in vectors.json. The
// encoder must write the stored bytes exactly (its output is a format:
// packs hold it), and the decoder must turn them back into the raw ones.
const floatVectorDir = "../../testdata/floatcodec"

type floatVector struct {
	Name         string        `json:"name"`
	DType        string        `json:"dtype"`
	RawLen       int           `json:"raw_len"`
	RawDigest    digest.Digest `json:"raw_blake3"`
	StoredLen    int           `json:"stored_len"`
	StoredDigest digest.Digest `json:"stored_blake3"`
	Saves        bool          `json:"saves"` // EncodeFloat's ok: it saves at least 5%
}

// floatVectorInputs makes the raw bytes of each vector; they are read
// from the files except with -update, so that a change of Go's random
// numbers cannot move them.
func floatVectorInputs() []struct {
	name string
	dt   format.DType
	raw  func() []byte
} {
	fp8 := func() []byte { // E5M2: the high byte of binary16
		h := weights(9, 4096, format.FP16)
		out := make([]byte, 4096)
		for i := range out {
			out[i] = h[2*i+1]
		}
		return out
	}
	repeat := func() []byte {
		p := weights(10, 100, format.FP32)
		return bytes.Repeat(p, 21)[:4*2048]
	}
	return []struct {
		name string
		dt   format.DType
		raw  func() []byte
	}{
		{"fp32-weights", format.FP32, func() []byte { return weights(1, 4096, format.FP32) }},
		{"bf16-weights", format.BF16, func() []byte { return weights(2, 4096, format.BF16) }},
		{"fp16-weights", format.FP16, func() []byte { return weights(3, 2048, format.FP16) }},
		{"fp64-weights", format.FP64, func() []byte { return weights(4, 512, format.FP64) }},
		{"fp32-odd-length", format.FP32, func() []byte { return append(weights(5, 1000, format.FP32), 0xff, 0x7f, 0x80) }},
		{"fp32-specials", format.FP32, func() []byte { return mixed(6, 1024, format.FP32) }},
		{"bf16-specials", format.BF16, func() []byte { return mixed(7, 2048, format.BF16) }},
		{"fp16-specials", format.FP16, func() []byte { return mixed(8, 2048, format.FP16) }},
		{"fp8e5m2-weights", format.FP8E5M2, fp8},
		{"bf16-zeros", format.BF16, func() []byte { return make([]byte, 4096) }},
		{"fp32-repeated", format.FP32, repeat},
	}
}

func TestFloatGolden(t *testing.T) {
	var got []floatVector
	for _, in := range floatVectorInputs() {
		rawPath := filepath.Join(floatVectorDir, in.name+".raw.bin")
		storedPath := filepath.Join(floatVectorDir, in.name+".stored.bin")
		var raw []byte
		if *update {
			raw = in.raw()
			if err := os.MkdirAll(floatVectorDir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(rawPath, raw, 0o644); err != nil {
				t.Fatal(err)
			}
		} else {
			var err error
			if raw, err = os.ReadFile(rawPath); err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
		}
		stored := format.EncodeFloatAlways(raw, in.dt)
		_, ok := format.EncodeFloat(raw, in.dt)
		if *update {
			if err := os.WriteFile(storedPath, stored, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(storedPath)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(stored, want) {
			t.Errorf("%s: the encoder writes other bytes than %s (from byte %d): a change of format", in.name, storedPath, firstDiff(stored, want))
		}
		dec, err := format.DecodeFloat(want, len(raw), nil)
		if err != nil || !bytes.Equal(dec, raw) {
			t.Errorf("%s: DecodeFloat of %s: %v, equal to the raw bytes: %v", in.name, storedPath, err, bytes.Equal(dec, raw))
		}
		got = append(got, floatVector{Name: in.name, DType: in.dt.String(), RawLen: len(raw), RawDigest: digest.Of(raw),
			StoredLen: len(stored), StoredDigest: digest.Of(stored), Saves: ok})
	}
	formattest.CheckGolden(t, filepath.Join(floatVectorDir, "vectors.json"), got, *update)
}
