package format_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/klauspost/compress/huff0"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/index"
	"github.com/cas-ml/cas/internal/cputime"
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
	for _, in := range benchInputs() {
		if in.dt.Size() != 2 {
			continue
		}
		f := newHuff0Floor(b, in.raw)
		b.Run(in.name+"/encode", func(b *testing.B) { cpuLoop(b, len(in.raw), f.encode) })
		b.Run(in.name+"/decode", func(b *testing.B) { cpuLoop(b, len(in.raw), f.decode) })
	}
}

// BenchmarkFloatBesideFloor runs the codec and its huff0 floor
// (BenchmarkHuff0Floor) in turn on the same 16-bit tensor, one after the
// other in every iteration, and reports the rates of both and their ratio
// (enc/floor, dec/floor). The speed of a shared VM drifts by a third
// within minutes, so that separate benchmarks of the two, even
// interleaved run by run, compare moments as much as code: taken 16 MiB
// at a time, codec and floor meet the same machine (run with -cpu 1).
func BenchmarkFloatBesideFloor(b *testing.B) {
	for _, in := range benchInputs() {
		if in.dt.Size() != 2 {
			continue
		}
		f := newHuff0Floor(b, in.raw)
		stored, ok := format.EncodeFloat(in.raw, in.dt)
		if !ok {
			b.Fatal("EncodeFloat: not ok")
		}
		dst := make([]byte, len(in.raw))
		b.Run(in.name, func(b *testing.B) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var spent [4]time.Duration // encode, floor encode, decode, floor decode
			steps := [4]func(){
				func() {
					if _, codec := format.EncodeChunkInto(dst, in.raw, in.dt); codec != index.CodecFloat {
						b.Fatalf("EncodeChunkInto: codec %d, want the float codec", codec)
					}
				},
				f.encode,
				func() {
					if _, err := format.DecodeFloat(stored, len(in.raw), dst); err != nil {
						b.Fatal(err)
					}
				},
				f.decode,
			}
			for b.Loop() {
				for k, step := range steps {
					t0, ok := cputime.Thread()
					step()
					t1, ok2 := cputime.Thread()
					if !ok || !ok2 {
						b.Skip("no thread CPU time here")
					}
					spent[k] += t1 - t0
				}
			}
			rate := func(d time.Duration) float64 { return float64(len(in.raw)) * float64(b.N) / d.Seconds() / 1e6 }
			b.ReportMetric(rate(spent[0]), "enc-MB/s")
			b.ReportMetric(rate(spent[1]), "floor-enc-MB/s")
			b.ReportMetric(float64(spent[1])/float64(spent[0]), "enc/floor")
			b.ReportMetric(rate(spent[2]), "dec-MB/s")
			b.ReportMetric(rate(spent[3]), "floor-dec-MB/s")
			b.ReportMetric(float64(spent[3])/float64(spent[2]), "dec/floor")
		})
	}
}

// huff0Floor is huff0 alone on the high byte of a 16-bit tensor, in the
// codec's blocks of 64 Ki elements, with a fresh table each.
type huff0Floor struct {
	b     *testing.B
	high  []byte   // the high byte of every element
	coded [][]byte // each block as huff0 codes it
	s     huff0.Scratch
	dst   []byte
}

const floorBlock = 64 << 10

func newHuff0Floor(b *testing.B, raw []byte) *huff0Floor {
	f := &huff0Floor{b: b, high: make([]byte, len(raw)/2), dst: make([]byte, floorBlock)}
	for i := range f.high {
		f.high[i] = raw[2*i+1]
	}
	f.s.Reuse = huff0.ReusePolicyNone
	for at := 0; at < len(f.high); at += floorBlock {
		out, _, err := huff0.Compress4X(f.high[at:min(at+floorBlock, len(f.high))], &f.s)
		if err != nil {
			b.Fatal(err)
		}
		f.coded = append(f.coded, append([]byte(nil), out...))
	}
	return f
}

func (f *huff0Floor) encode() {
	for at := 0; at < len(f.high); at += floorBlock {
		if _, _, err := huff0.Compress4X(f.high[at:min(at+floorBlock, len(f.high))], &f.s); err != nil {
			f.b.Fatal(err)
		}
	}
}

func (f *huff0Floor) decode() {
	for _, c := range f.coded {
		t, rest, err := huff0.ReadTable(c, nil)
		if err != nil {
			f.b.Fatal(err)
		}
		if _, err := t.Decoder().Decompress4X(f.dst[:0:floorBlock], rest); err != nil {
			f.b.Fatal(err)
		}
	}
}

// cpuLoop runs f b.N times on one locked thread and reports, beside the
// wall time, the thread's CPU time (cpu-MB/s), which a machine busy with
// other work stretches less.
func cpuLoop(b *testing.B, n int, f func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.SetBytes(int64(n))
	start, ok := cputime.Thread()
	for b.Loop() {
		f()
	}
	end, ok2 := cputime.Thread()
	if cpu := end - start; ok && ok2 && cpu > 0 {
		b.ReportMetric(float64(n)*float64(b.N)/cpu.Seconds()/1e6, "cpu-MB/s")
	}
}
