package chunk

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cas-ml/cas/cas/format/formattest"
	"github.com/cas-ml/cas/digest"
)

// The chunk boundaries are a format: docs/FORMAT.md §4 specifies them and
// testdata/golden/chunks.json pins them. A diff in that file is a change
// of format: run `go test ./cas/chunk -run Golden -update` only when that
// is intended, and update docs/FORMAT.md with it.
var update = flag.Bool("update", false, "rewrite ../../testdata/golden/chunks.json")

var goldenChunks = filepath.Join("..", "..", "testdata", "golden", "chunks.json")

// chunkSeed seeds the generated inputs of the chunk vectors.
const chunkSeed = "cas chunker test vector v1"

type chunkVector struct {
	Name        string        `json:"name"`
	Input       string        `json:"input"`
	InputLen    int           `json:"input_len"`
	InputDigest digest.Digest `json:"input_digest"`
	Params      Params        `json:"params"`
	MaskS       string        `json:"mask_s"`
	MaskL       string        `json:"mask_l"`
	Count       int           `json:"count"`
	Lengths     []int         `json:"lengths"`
}

type gearValue struct {
	Index int    `json:"index"`
	Value string `json:"value"`
}

type chunkGolden struct {
	GearKey string        `json:"gear_key"`
	Gear    []gearValue   `json:"gear"`
	Vectors []chunkVector `json:"vectors"`
}

func TestGoldenChunks(t *testing.T) {
	t.Parallel()
	inputs := []struct {
		name  string
		zeros bool // else XOF of chunkSeed
		n     int
		avg   int
	}{
		{"xof-4MiB-avg64KiB", false, 4 << 20, 64 << 10},
		{"xof-256KiB-avg4KiB", false, 256 << 10, 4 << 10},
		{"zeros-1MiB-avg16KiB", true, 1 << 20, 16 << 10},
		{"xof-20000B-avg4KiB", false, 20000, 4 << 10}, // shorter than max: the last chunk is short
	}
	g := chunkGolden{GearKey: "cas gear table v1"}
	for _, i := range []int{0, 1, 2, 255} {
		g.Gear = append(g.Gear, gearValue{i, fmt.Sprintf("0x%016x", gearTable[i])})
	}
	for _, in := range inputs {
		p, err := NewParams(in.avg)
		if err != nil {
			t.Fatal(err)
		}
		var data []byte
		desc := fmt.Sprintf("BLAKE3 XOF of %q, first %d bytes", chunkSeed, in.n)
		if in.zeros {
			data = make([]byte, in.n)
			desc = fmt.Sprintf("%d zero bytes", in.n)
		} else {
			data = formattest.XOF(chunkSeed, in.n)
		}
		c := New(p)
		cuts := c.Cuts(data)
		for k, n := range cuts {
			if n > p.Max || (n <= p.Min && k != len(cuts)-1) {
				t.Errorf("%s: chunk %d has %d bytes, want %d..%d", in.name, k, n, p.Min+1, p.Max)
			}
		}
		g.Vectors = append(g.Vectors, chunkVector{
			Name: in.name, Input: desc, InputLen: in.n, InputDigest: digest.Of(data),
			Params: p, MaskS: fmt.Sprintf("0x%016x", c.maskS), MaskL: fmt.Sprintf("0x%016x", c.maskL),
			Count: len(cuts), Lengths: cuts,
		})
	}
	got, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	if *update {
		if err := os.WriteFile(goldenChunks, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(goldenChunks)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if line, g, w, differ := firstDiff(got, want); differ {
		t.Fatalf("%s differs at line %d:\ngot  %s\nwant %s\n(a format change? run with -update only if intended)", goldenChunks, line, g, w)
	}
}

// firstDiff returns the first line, counted from 1, at which a and b
// differ, and that line of each.
func firstDiff(a, b []byte) (line int, la, lb string, differ bool) {
	as, bs := bytes.Split(a, []byte("\n")), bytes.Split(b, []byte("\n"))
	for i := range max(len(as), len(bs)) {
		var x, y []byte
		if i < len(as) {
			x = as[i]
		}
		if i < len(bs) {
			y = bs[i]
		}
		if !bytes.Equal(x, y) {
			return i + 1, string(x), string(y), true
		}
	}
	return 0, "", "", false
}

// TestGoldenChunksInDoc keeps docs/FORMAT.md in step with chunks.json:
// every input digest and gear value it pins must appear there.
func TestGoldenChunksInDoc(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "FORMAT.md"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(goldenChunks)
	if err != nil {
		t.Fatal(err)
	}
	var g chunkGolden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatalf("%s: %v", goldenChunks, err)
	}
	if len(g.Vectors) == 0 || len(g.Gear) == 0 {
		t.Fatalf("%s holds %d vectors and %d gear values, want some of each", goldenChunks, len(g.Vectors), len(g.Gear))
	}
	var want []string
	for _, v := range g.Vectors {
		want = append(want, v.InputDigest.Hex())
	}
	for _, gv := range g.Gear {
		want = append(want, gv.Value)
	}
	for _, w := range want {
		if !bytes.Contains(doc, []byte(w)) {
			t.Errorf("docs/FORMAT.md lacks the golden value %s", w)
		}
	}
}

// TestFormatChunkerReference checks Chunker against a plain transcription
// of the loop in docs/FORMAT.md, on inputs cut in many places.
func TestFormatChunkerReference(t *testing.T) {
	t.Parallel()
	ref := func(data []byte, avg int) int {
		minLen, maxLen := avg/4, avg*8
		bitsAvg := 0
		for 1<<bitsAvg < avg {
			bitsAvg++
		}
		maskS := ^uint64(0) << (64 - (bitsAvg + 2))
		maskL := ^uint64(0) << (64 - (bitsAvg - 2))
		n := len(data)
		if n <= minLen {
			return n
		}
		n = min(n, maxLen)
		var h uint64
		for i := minLen; i < n; i++ {
			h = h<<1 + gearTable[data[i]]
			mask := maskL
			if i < avg {
				mask = maskS
			}
			if h&mask == 0 {
				return i + 1
			}
		}
		return n
	}
	data := formattest.XOF("reference", 3<<20)
	for _, avg := range []int{4 << 10, 64 << 10, 1 << 20} {
		p, _ := NewParams(avg)
		c := New(p)
		for start := 0; start < len(data); start += 99991 {
			if got, want := c.Next(data[start:]), ref(data[start:], avg); got != want {
				t.Fatalf("avg %d, start %d: Next = %d, want %d", avg, start, got, want)
			}
		}
	}
}
