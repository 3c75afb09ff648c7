package chunk

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// referenceNext is Chunker.Next as it was before the two-lane scan: one
// gear hash from min on, byte by byte. It is kept to check that the fast
// scan cuts exactly where this loop cuts.
func referenceNext(c *Chunker, data []byte) int {
	n := len(data)
	if n <= c.p.Min {
		return n
	}
	if n > c.p.Max {
		n = c.p.Max
	}
	normal := min(c.p.Avg, n)
	var h uint64
	i := c.p.Min
	g := &gearTable
	for ; i < normal; i++ {
		h = h<<1 + g[data[i]]
		if h&c.maskS == 0 {
			return i + 1
		}
	}
	for ; i < n; i++ {
		h = h<<1 + g[data[i]]
		if h&c.maskL == 0 {
			return i + 1
		}
	}
	return n
}

func referenceCuts(c *Chunker, data []byte) []int {
	var out []int
	for len(data) > 0 {
		n := referenceNext(c, data)
		out = append(out, n)
		data = data[n:]
	}
	return out
}

// lowEntropy returns n bytes of the given kind: inputs on which a gear
// hash repeats itself or cuts rarely, as zero-filled, sparse, periodic and
// narrow-alphabet files do.
func lowEntropy(kind string, n int, seed uint64) []byte {
	r := testData(n, seed) // random bytes to draw from
	b := make([]byte, n)
	switch kind {
	case "zeros":
	case "two-bit": // every byte one of 0..3
		for i := range b {
			b[i] = r[i] & 3
		}
	case "text": // a 16-letter alphabet with spaces and newlines
		const letters = "etaoinshrdlu \n.,"
		for i := range b {
			b[i] = letters[r[i]%16]
		}
	case "sparse": // zeros with about one random byte in 512, as in a pruned tensor
		for i := 0; i+1 < n; i += 2 {
			if r[i] == 0 && r[i+1]&1 == 0 {
				b[i] = r[i+1]
			}
		}
	case "periodic": // a random 1000-byte pattern, repeated
		for i := range b {
			b[i] = r[i%1000]
		}
	case "float32": // little-endian floats in [-1, 1): low bytes random, high bytes alike
		for i := 0; i+4 <= n; i += 4 {
			u := math.Float32bits(float32(int32(binary.LittleEndian.Uint32(r[i:]))) / (1 << 31))
			binary.LittleEndian.PutUint32(b[i:], u)
		}
	default:
		panic("unknown kind " + kind)
	}
	return b
}

var lowEntropyKinds = []string{"zeros", "two-bit", "text", "sparse", "periodic", "float32"}

// referenceInputs holds the inputs of TestNextMatchesReference, random and
// low-entropy, made once for all averages: 2*avg + 4 MiB at the largest.
var referenceInputs = sync.OnceValue(func() map[string][]byte {
	size := 2*(16<<20) + 4<<20
	if testing.Short() {
		size = 2*DefaultAvg + 4<<20
	}
	inputs := map[string][]byte{"random": testData(size, 14)}
	for _, kind := range lowEntropyKinds {
		inputs[kind] = lowEntropy(kind, size, 14)
	}
	return inputs
})

// allAvgs lists every chunk average NewParams accepts.
func allAvgs() []int {
	var out []int
	for avg := 4 << 10; avg <= 16<<20; avg *= 2 {
		out = append(out, avg)
	}
	return out
}

// The chunker cuts where referenceNext cuts, for every average a
// repository can have, on random and low-entropy inputs: whole inputs
// through Cuts, and Next on inputs that end just before, at and after min,
// avg and max, where the scan changes mask or stops.
func TestNextMatchesReference(t *testing.T) {
	t.Parallel()
	for _, avg := range allAvgs() {
		if testing.Short() && avg != 4<<10 && avg != 64<<10 && avg != DefaultAvg {
			// The race build runs -short and is slow here. These three
			// take every path: the shortest lanes, the longest, the default.
			continue
		}
		t.Run(fmt.Sprint(avg), func(t *testing.T) {
			t.Parallel()
			p, err := NewParams(avg)
			if err != nil {
				t.Fatal(err)
			}
			c := New(p)
			// Many chunks at small averages, a few at large ones, each
			// input reaching past avg; the cap at max is checked below on
			// its own.
			size := min(max(64*avg, 4<<20), 2*avg+4<<20)
			inputs := referenceInputs()
			for _, kind := range slices.Sorted(maps.Keys(inputs)) {
				data := inputs[kind][:size]
				got, want := c.Cuts(data), referenceCuts(c, data)
				if !slices.Equal(got, want) {
					i := firstDifferent(got, want)
					t.Errorf("%s: Cuts differ first at chunk %d of %d: got %v, want %v", kind, i, len(want), at(got, i), at(want, i))
				}
				for _, n := range edgeLengths(p) {
					if n > len(data) {
						continue
					}
					for _, start := range []int{0, len(data) - n} {
						in := data[start : start+n]
						if got, want := c.Next(in), referenceNext(c, in); got != want {
							t.Errorf("%s: Next of %d bytes from %d = %d, want %d", kind, n, start, got, want)
						}
					}
				}
			}
			// Zeros never cut: every chunk is max long, and the scan stops
			// at max even with more bytes supplied.
			zeros := make([]byte, p.Max+p.Min)
			if got, want := c.Next(zeros), referenceNext(c, zeros); got != want || got != p.Max {
				t.Errorf("zeros: Next of %d bytes = %d, want %d (max)", len(zeros), got, want)
			}
		})
	}
}

// edgeLengths lists input lengths around the points where Next changes
// behaviour: min, avg, max, and 64 bytes past min and avg, where the gear
// hash (64 bits, shifted once a byte) stops remembering where it started.
func edgeLengths(p Params) []int {
	var out []int
	for _, x := range []int{0, p.Min, p.Min + 64, p.Avg, p.Avg + 64, p.Max} {
		for d := -2; d <= 2; d++ {
			if x+d >= 0 {
				out = append(out, x+d)
			}
		}
	}
	return out
}

func firstDifferent(a, b []int) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func at(s []int, i int) any {
	if i < len(s) {
		return s[i]
	}
	return "none"
}

// referenceScan is scan as a plain loop: the gear hash from lo on, checked
// against mask from from to to.
func referenceScan(data []byte, lo, from, to int, mask uint64) int {
	var h uint64
	for i := lo; i < to; i++ {
		h = h<<1 + gearTable[data[i]]
		if i >= from && h&mask == 0 {
			return i
		}
	}
	return -1
}

// scan, with masks weak enough to match every few bytes and lanes short
// enough to put many seams in a stretch, finds the first match exactly
// wherever it falls: in the first lane, in the second, in both at once,
// just before or after a seam, in the warm-up of a lane, or nowhere.
func TestScanMatchesReference(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(14, 2))
	inputs := [][]byte{testData(1<<16, 15), lowEntropy("two-bit", 1<<16, 15), lowEntropy("sparse", 1<<16, 15)}
	checked := map[bool]int{}
	for range 20000 {
		data := inputs[r.IntN(len(inputs))]
		lo := r.IntN(300)
		from := lo + r.IntN(300)
		to := from + r.IntN(5000)
		var mask uint64
		if r.IntN(2) == 0 {
			mask = ^uint64(0) << (64 - (1 + r.IntN(14))) // top bits, as the format's masks
		} else {
			for range 1 + r.IntN(12) {
				mask |= 1 << r.IntN(64)
			}
		}
		c := &Chunker{p: Params{Min: lo}, lane: 4 * (1 + r.IntN(300))}
		got, want := c.scan(data, from, to, mask), referenceScan(data, lo, from, to, mask)
		if got != want {
			t.Fatalf("scan(min %d, lane %d, [%d, %d), mask %#x) = %d, want %d", lo, c.lane, from, to, mask, got, want)
		}
		checked[want >= 0]++
	}
	if checked[true] < 1000 || checked[false] < 1000 {
		t.Errorf("%d stretches matched and %d did not, want at least 1000 of each", checked[true], checked[false])
	}
}

// scan finds what the plain loop finds, whatever the bytes, bounds, mask
// and lane.
func FuzzScan(f *testing.F) {
	f.Add(testData(2000, 16), uint16(10), uint16(200), uint16(1800), uint64(0xf000000000000000), uint8(3))
	f.Add(make([]byte, 700), uint16(0), uint16(0), uint16(700), uint64(0x8000000000000001), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, lo, from, to uint16, mask uint64, lane uint8) {
		l, f, e := int(lo), int(lo)+int(from), int(lo)+int(from)+int(to)
		if e > len(data) {
			return
		}
		c := &Chunker{p: Params{Min: l}, lane: 4 * (1 + int(lane))}
		if got, want := c.scan(data, f, e, mask), referenceScan(data, l, f, e, mask); got != want {
			t.Fatalf("scan(min %d, lane %d, [%d, %d), mask %#x) = %d, want %d", l, c.lane, f, e, mask, got, want)
		}
	})
}
