package cas

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cas-ml/cas/cas/format/formattest"
	"github.com/cas-ml/cas/digest"
)

// The golden files pin the formats that docs/FORMAT.md specifies; the
// chunk boundaries are checked here, packs, segments and trees in
// cas/format. A diff in them is a change of format: run `go test ./cas
// -run Golden -update` only when that is intended, and update
// docs/FORMAT.md with it.
var update = flag.Bool("update", false, "rewrite the golden files in ../testdata/golden")

const goldenDir = "../testdata/golden"

// chunkSeed seeds the generated inputs of the chunk vectors.
const chunkSeed = "cas chunker test vector v1"

type chunkVector struct {
	Name        string        `json:"name"`
	Input       string        `json:"input"`
	InputLen    int           `json:"input_len"`
	InputDigest digest.Digest `json:"input_digest"`
	Params      ChunkParams   `json:"params"`
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
		p, err := NewChunkParams(in.avg)
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
		c := NewChunker(p)
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
	formattest.CheckGolden(t, filepath.Join(goldenDir, "chunks.json"), g, *update)
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
		p, _ := NewChunkParams(avg)
		c := NewChunker(p)
		for start := 0; start < len(data); start += 99991 {
			if got, want := c.Next(data[start:]), ref(data[start:], avg); got != want {
				t.Fatalf("avg %d, start %d: Next = %d, want %d", avg, start, got, want)
			}
		}
	}
}

// TestGoldenTreeOnDisk checks that the scanner, reading the golden trees
// from disk, computes the golden digests.
func TestGoldenTreeOnDisk(t *testing.T) {
	t.Parallel()
	for _, gs := range formattest.Golden {
		t.Run(gs.Name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "root")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			formattest.Write(t, dir, gs.Entry)
			want, _, err := formattest.Tree(t, gs.Entry).Digest()
			if err != nil {
				t.Fatal(err)
			}
			res, err := Hash(t.Context(), nil, []string{dir}, PushOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Digest != want || res.Kind != KindDir {
				t.Errorf("Hash = %v %v, want %v dir", res.Digest, res.Kind, want)
			}
		})
	}
}
