package format_test

import (
	"flag"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/cas-ml/cas/cas/format"
)

var floatReport = flag.String("floatreport", "", "write the float codec's bench inputs (16 MiB each) to this directory and log their ratios")

// byteEntropyRatio is the per-byte-position entropy ceiling of raw as
// elements of es bytes: the sum over positions of the empirical entropy
// of that position's bytes, over 8*es bits.
func byteEntropyRatio(raw []byte, es int) float64 {
	n := len(raw) / es
	sum := 0.0
	for j := range es {
		var hist [256]int
		for i := range n {
			hist[raw[i*es+j]]++
		}
		for _, c := range hist {
			if c > 0 {
				p := float64(c) / float64(n)
				sum -= p * math.Log2(p)
			}
		}
	}
	return sum / float64(8*es)
}

// TestFloatReport writes the inputs of docs/benchmarks.md's float codec
// table and logs cas's ratios beside the entropy ceiling; the zstd CLI
// figures come from the files it writes. It runs only with -floatreport.
func TestFloatReport(t *testing.T) {
	if *floatReport == "" {
		t.Skip("no -floatreport directory")
	}
	const size = 16 << 20
	inputs := []struct {
		name string
		dt   format.DType
		raw  []byte
	}{
		{"fp32-weights", format.FP32, weights(1, size/4, format.FP32)},
		{"bf16-weights", format.BF16, weights(2, size/2, format.BF16)},
		{"fp16-weights", format.FP16, weights(3, size/2, format.FP16)},
		{"fp32-adam-exp-avg-sq", format.FP32, adamSecondMoment(4, size/4)},
		{"fp32-layernorm", format.FP32, encodeAs(normals(5, size/4, 1, 0.05), format.FP32)},
	}
	for _, in := range inputs {
		if err := os.WriteFile(filepath.Join(*floatReport, in.name+".raw"), in.raw, 0o644); err != nil {
			t.Fatal(err)
		}
		stored := format.EncodeFloatAlways(in.raw, in.dt)
		got, err := format.DecodeFloat(stored, len(in.raw), nil)
		if err != nil || string(got) != string(in.raw) {
			t.Fatalf("%s: round trip failed: %v", in.name, err)
		}
		t.Logf("%-22s cas %.4f  ceiling %.4f", in.name, float64(len(stored))/float64(len(in.raw)), byteEntropyRatio(in.raw, in.dt.Size()))
		if in.dt == format.FP32 {
			split := format.EncodeFloatLayout(in.raw, in.dt, []uint8{2, 1, 1}, 16)
			t.Logf("%-22s cas with groups 2+1+1: %.4f", in.name, float64(len(split))/float64(len(in.raw)))
		}
	}
	// Tensors a real torch wrote, when put there (torch-fp32-NAME.raw and
	// so on): written, not read, by this test's other half.
	for _, dt := range []format.DType{format.FP32, format.BF16, format.FP16} {
		names, _ := filepath.Glob(filepath.Join(*floatReport, "torch-"+map[format.DType]string{format.FP32: "fp32", format.BF16: "bf16", format.FP16: "fp16"}[dt]+"-*.raw"))
		for _, name := range names {
			raw, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			stored := format.EncodeFloatAlways(raw, dt)
			if got, err := format.DecodeFloat(stored, len(raw), nil); err != nil || string(got) != string(raw) {
				t.Fatalf("%s: round trip failed: %v", name, err)
			}
			t.Logf("%-30s cas %.4f  ceiling %.4f", filepath.Base(name), float64(len(stored))/float64(len(raw)), byteEntropyRatio(raw, dt.Size()))
		}
	}
}
