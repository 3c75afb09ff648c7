package chunk

import (
	"bytes"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/cas-ml/cas/internal/cputime"
)

func testData(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

func TestChunkerBounds(t *testing.T) {
	t.Parallel()
	p, _ := NewParams(64 << 10)
	c := New(p)
	data := testData(8<<20, 1)
	cuts := c.Cuts(data)
	total := 0
	for i, n := range cuts {
		total += n
		if n > p.Max || (n < p.Min && i != len(cuts)-1) {
			t.Errorf("chunk %d has %d bytes, want %d..%d", i, n, p.Min, p.Max)
		}
	}
	if total != len(data) {
		t.Errorf("cuts cover %d bytes, want %d", total, len(data))
	}
	avg := len(data) / len(cuts)
	if avg < p.Avg/2 || avg > p.Avg*2 {
		t.Errorf("average chunk %d bytes, want about %d", avg, p.Avg)
	}
}

// An insertion near the start must leave later boundaries where they were.
func TestChunkerResynchronizes(t *testing.T) {
	t.Parallel()
	p, _ := NewParams(16 << 10)
	c := New(p)
	data := testData(2<<20, 2)
	edited := append(append(append([]byte{}, data[:1000]...), []byte("inserted bytes")...), data[1000:]...)
	ends := func(b []byte, shift int) map[int]bool {
		m := map[int]bool{}
		pos := 0
		for _, n := range c.Cuts(b) {
			pos += n
			m[pos-shift] = true
		}
		return m
	}
	a, b := ends(data, 0), ends(edited, len("inserted bytes"))
	shared := 0
	for k := range a {
		if b[k] {
			shared++
		}
	}
	if shared < len(a)-3 {
		t.Errorf("only %d of %d boundaries survived an insertion", shared, len(a))
	}
}

func TestParams(t *testing.T) {
	t.Parallel()
	for _, avg := range []int{0, 1000, 2 << 10, 3 << 20, 32 << 20} {
		if _, err := NewParams(avg); err == nil {
			t.Errorf("NewParams(%d) succeeded, want error", avg)
		}
	}
	p, err := NewParams(1 << 20)
	if err != nil || p != (Params{Min: 256 << 10, Avg: 1 << 20, Max: 8 << 20}) {
		t.Errorf("NewParams(1MiB) = %+v, %v", p, err)
	}
	if err := (Params{Min: 1, Avg: 1 << 20, Max: 8 << 20}).Validate(); err == nil {
		t.Error("Validate accepted a bad min")
	}
}

func TestChunkerSmallInputs(t *testing.T) {
	t.Parallel()
	p, _ := NewParams(4 << 10)
	c := New(p)
	for _, n := range []int{0, 1, p.Min, p.Min + 1} {
		got := c.Cuts(bytes.Repeat([]byte{7}, n))
		sum := 0
		for _, x := range got {
			sum += x
		}
		if sum != n {
			t.Errorf("Cuts of %d bytes cover %d", n, sum)
		}
	}
}

// BenchmarkChunker cuts 64 MiB of random and of low-entropy data with the
// default parameters, with Next and with the byte-by-byte loop it
// replaced (referenceNext). Beside wall time it reports the CPU time of
// the benchmark's thread, which other processes on a shared machine do not
// stretch: cpu-ns/op and cpu-MB/s.
func BenchmarkChunker(b *testing.B) {
	p, _ := NewParams(DefaultAvg)
	c := New(p)
	for _, input := range []string{"random", "two-bit", "text", "float32"} {
		var data []byte
		if input == "random" {
			data = testData(64<<20, 3)
		} else {
			data = lowEntropy(input, 64<<20, 3)
		}
		b.Run(input+"/scan", func(b *testing.B) {
			benchCPU(b, len(data), func() { c.Cuts(data) })
		})
		b.Run(input+"/reference", func(b *testing.B) {
			benchCPU(b, len(data), func() { referenceCuts(c, data) })
		})
	}
}

// benchCPU runs f, which handles n bytes, as the benchmark's loop and
// reports the CPU time of its thread beside the wall time.
func benchCPU(b *testing.B, n int, f func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.SetBytes(int64(n))
	start, ok := cputime.Thread()
	for b.Loop() {
		f()
	}
	end, ok2 := cputime.Thread()
	if cpu := end - start; ok && ok2 && cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
		b.ReportMetric(float64(n)*float64(b.N)/cpu.Seconds()/1e6, "cpu-MB/s")
	}
}
