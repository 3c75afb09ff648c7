package format_test

import (
	"runtime"
	"testing"

	"github.com/klauspost/compress/huff0"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/index"
)

// benchInputs are 16 MiB of weights per dtype, drawn like trained ones.
func benchInputs() []struct {
	name string
	dt   format.DType
	raw  []byte
} {
	const size = 16 << 20
	return []struct {
		name string
		dt   format.DType
		raw  []byte
	}{
		{"FP32", format.FP32, weights(1, size/4, format.FP32)},
		{"BF16", format.BF16, weights(2, size/2, format.BF16)},
		{"FP16", format.FP16, weights(3, size/2, format.FP16)},
		{"FP32-adam", format.FP32, adamSecondMoment(4, size/4)},
	}
}

// BenchmarkEncodeFloat measures the float codec's encoder per dtype as a
// push calls it (EncodeChunkInto, into a reused buffer); the goal
// is 0.8 GB/s per core (run with -cpu 1).
func BenchmarkEncodeFloat(b *testing.B) {
	for _, in := range benchInputs() {
		dst := make([]byte, len(in.raw))
		b.Run(in.name, func(b *testing.B) {
			cpuLoop(b, len(in.raw), func() {
				if _, codec := format.EncodeChunkInto(dst, in.raw, in.dt); codec != index.CodecFloat {
					b.Fatalf("EncodeChunkInto: codec %d, want the float codec", codec)
				}
			})
		})
	}
}

// BenchmarkDecodeFloat measures DecodeFloat into a reused buffer per
// dtype; the goal is 1.5 GB/s per core (run with -cpu 1).
func BenchmarkDecodeFloat(b *testing.B) {
	for _, in := range benchInputs() {
		stored, ok := format.EncodeFloat(in.raw, in.dt)
		if !ok {
			b.Fatal("EncodeFloat: not ok")
		}
		dst := make([]byte, len(in.raw))
		b.Run(in.name, func(b *testing.B) {
			cpuLoop(b, len(in.raw), func() {
				if _, err := format.DecodeFloat(stored, len(in.raw), dst); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// BenchmarkHuff0Floor measures what the float codec cannot do without on
// a 16-bit tensor: huff0 alone coding its high byte (sign and exponent),
// in blocks of 64 Ki elements as the codec cuts them, with a fresh table
// each (encode: histogram, table, four streams; decode: table, four
// streams). The rate is given over the tensor's bytes, two per coded
// symbol, so it reads beside BenchmarkEncodeFloat and BenchmarkDecodeFloat:
// the codec can be no faster on this CPU than this floor, whatever it does
// around huff0 (run with -cpu 1).
func BenchmarkHuff0Floor(b *testing.B) {
	const block = 64 << 10
	for _, in := range benchInputs() {
		if in.dt.Size() != 2 {
			continue
		}
		high := make([]byte, len(in.raw)/2)
		for i := range high {
			high[i] = in.raw[2*i+1]
		}
		var s huff0.Scratch
		s.Reuse = huff0.ReusePolicyNone
		coded := make([][]byte, 0, len(high)/block)
		for at := 0; at < len(high); at += block {
			out, _, err := huff0.Compress4X(high[at:at+block], &s)
			if err != nil {
				b.Fatal(err)
			}
			coded = append(coded, append([]byte(nil), out...))
		}
		b.Run(in.name+"/encode", func(b *testing.B) {
			cpuLoop(b, len(in.raw), func() {
				for at := 0; at < len(high); at += block {
					if _, _, err := huff0.Compress4X(high[at:at+block], &s); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
		dst := make([]byte, block)
		b.Run(in.name+"/decode", func(b *testing.B) {
			cpuLoop(b, len(in.raw), func() {
				for _, c := range coded {
					t, rest, err := huff0.ReadTable(c, nil)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := t.Decoder().Decompress4X(dst[:0:block], rest); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// cpuLoop runs f b.N times on one locked thread and reports, beside the
// wall time, the thread's CPU time (cpu-MB/s), which a machine busy with
// other work stretches less.
func cpuLoop(b *testing.B, n int, f func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.SetBytes(int64(n))
	start, ok := threadCPU()
	for b.Loop() {
		f()
	}
	end, ok2 := threadCPU()
	if cpu := end - start; ok && ok2 && cpu > 0 {
		b.ReportMetric(float64(n)*float64(b.N)/cpu.Seconds()/1e6, "cpu-MB/s")
	}
}
