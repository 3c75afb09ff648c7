package main

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/pierrec/lz4/v4"

	"github.com/cas-ml/cas/cas/chunk"
)

const block = 1 << 20

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: floatbase FILE...")
		os.Exit(2)
	}
	for _, path := range os.Args[1:] {
		data, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "floatbase:", err)
			os.Exit(1)
		}
		lz, ent := measure(data)
		fmt.Printf("%s %d %d %d\n", filepath.Base(path), len(data), lz, ent)
	}
}

// elemSize is the width of a Region's element type.
var elemSize = map[string]int{"F32": 4, "BF16": 2, "F16": 2, "F64": 8, "F8_E4M3": 1, "F8_E5M2": 1}

// measure returns the byte-grouping + LZ4 size of data and its
// per-byte-position entropy bound, in bytes.
func measure(data []byte) (lz, ent int64) {
	l := chunk.NaturalLayout(bytes.NewReader(data), int64(len(data)))
	pos := int64(0)
	plain := func(b []byte) {
		for off := 0; off < len(b); off += block {
			p := b[off:min(off+block, len(b))]
			lz += lz4Size(p)
			ent += int64(len(p))
		}
	}
	for _, r := range l.Regions {
		plain(data[pos:r.Start])
		es := elemSize[r.DType]
		t := data[r.Start:r.End]
		for off := 0; off < len(t); off += block {
			b := t[off:min(off+block, len(t))]
			n := len(b) / es
			for g := range es {
				grp := make([]byte, n)
				for i := range n {
					grp[i] = b[i*es+g]
				}
				lz += lz4Size(grp)
				ent += int64(math.Ceil(entropy(grp) * float64(n) / 8))
			}
			lz += int64(len(b) - n*es)
			ent += int64(len(b) - n*es)
		}
		pos = r.End
	}
	plain(data[pos:])
	return lz, ent
}

// lz4Size is the LZ4 block size of b, or len(b) when LZ4 does not shrink it.
func lz4Size(b []byte) int64 {
	var c lz4.Compressor
	dst := make([]byte, lz4.CompressBlockBound(len(b)))
	n, err := c.CompressBlock(b, dst)
	if err != nil || n == 0 || n >= len(b) {
		return int64(len(b))
	}
	return int64(n)
}

// entropy is the order-0 entropy of b in bits per byte.
func entropy(b []byte) float64 {
	var hist [256]int
	for _, c := range b {
		hist[c]++
	}
	h := 0.0
	for _, k := range hist {
		if k > 0 {
			p := float64(k) / float64(len(b))
			h -= p * math.Log2(p)
		}
	}
	return h
}
