package digest

import (
	_ "unsafe" // go:linkname needs it

	"golang.org/x/sys/cpu"
	"lukechampine.com/blake3/guts"
)

// zeeboFaster tells where blockCV uses fullBlockCV: AVX2, no AVX-512.
var zeeboFaster = cpu.X86.HasAVX2 && !cpu.X86.HasAVX512F

// zeebo/blake3 hashes a chunk faster than guts (measured on an AVX2 core
// without AVX-512, the machines CI runs on: 0.32 CPU s per GiB against
// 0.45 s), but hashes only from chunk 0 and keeps its chaining values to
// itself. Its two kernels, the ones its own Hasher calls, are linked in
// here by name to hash whole 256-chunk subtrees at any chunk counter.
// The go.mod pin of zeebo/blake3 fixes their signatures; a version that
// renamed them fails to link, and TestFullBlockMatchesGuts (beside
// b3sum's vectors) catches one that changed what they compute.

// zeeboHashF hashes the length bytes of input (up to 8 chunks, the first
// with chunk number counter) and writes each chunk's chaining value into
// out, transposed: word j of chunk i at out[8*j+i].
//
//go:linkname zeeboHashF github.com/zeebo/blake3/internal/alg/hash.HashF
//go:noescape
func zeeboHashF(input *[8192]byte, length, counter uint64, flags uint32, key *[8]uint32, out *[64]uint32, chain *[8]uint32)

// zeeboHashP compresses n parents: parent i of the chaining values in
// column i of left and right, transposed as zeeboHashF writes them.
//
//go:linkname zeeboHashP github.com/zeebo/blake3/internal/alg/hash.HashP
//go:noescape
func zeeboHashP(left, right *[64]uint32, flags uint32, key *[8]uint32, out *[64]uint32, n int)

const flagParent = 4 // BLAKE3's PARENT domain flag

// blockChunks is how many chunks fullBlockCV hashes: readBlock's.
const blockChunks = readBlock / guts.ChunkSize

// fullBlockCV returns the chaining value of the complete subtree over b,
// exactly readBlock bytes whose first chunk is chunk number counter (a
// multiple of blockChunks): what guts.ChainingValue(subtree(b, counter))
// returns, computed with zeebo's kernels.
func fullBlockCV(b []byte, counter uint64) [8]uint32 {
	// level holds the chaining values of one level of the subtree,
	// transposed in vectors of 8 as the kernels read and write them.
	var level [blockChunks / 8][64]uint32
	var chain [8]uint32
	for k := range level {
		in := (*[8192]byte)(b[k*8192:])
		zeeboHashF(in, 8192, counter+uint64(8*k), 0, &guts.IV, &level[k], &chain)
	}
	// Each pass pairs neighbours: vectors 2k and 2k+1 hold values
	// 16k..16k+15, whose pairs' left halves are the even ones.
	var left, right [64]uint32
	for n := blockChunks; n > 1; n /= 2 {
		if n <= 8 { // the last 8 values or fewer: all in level[0]
			pairs := n / 2
			for i := range pairs {
				for j := range 8 {
					left[8*j+i] = level[0][8*j+2*i]
					right[8*j+i] = level[0][8*j+2*i+1]
				}
			}
			zeeboHashP(&left, &right, flagParent, &guts.IV, &level[0], pairs)
			continue
		}
		for k := 0; k < n/8; k += 2 {
			a, c := &level[k], &level[k+1]
			for i := range 4 {
				for j := range 8 {
					left[8*j+i] = a[8*j+2*i]
					right[8*j+i] = a[8*j+2*i+1]
					left[8*j+4+i] = c[8*j+2*i]
					right[8*j+4+i] = c[8*j+2*i+1]
				}
			}
			zeeboHashP(&left, &right, flagParent, &guts.IV, &level[k/2], 8)
		}
	}
	var cv [8]uint32
	for j := range 8 {
		cv[j] = level[0][8*j]
	}
	return cv
}
