package digest

import (
	"errors"
	"io"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/zeebo/blake3"
	"lukechampine.com/blake3/guts"
)

// ParallelMin is the size from which FromReaderAt hashes on several cores.
const ParallelMin = 4 << 20

// readBlock is what FromReaderAt reads at once: 256 chunks, a complete
// subtree of BLAKE3's tree that one core hashes while the block is still
// in its cache. 256 KiB stays in a core's L2 cache, which 1 MiB did not:
// `cas hash` of a 1 GiB file long in the page cache took 0.17 s with
// blocks of 256 KiB against 0.20 s with 1 MiB (b3sum with 2 threads:
// 0.16 s); of a file just written, 0.125 s against 0.13 s (b3sum 0.08 s).
const readBlock = 256 << 10

// windowBlocks is how many blocks each core hashes, in a window of blocks
// shared out among the cores, before their chaining values are merged:
// what a call holds stays small (32 bytes a block), and a core waits for
// the others at most once a window.
const windowBlocks = 64

// simdBytes is what guts.CompressBuffer hashes at once: 16 chunks.
const simdBytes = guts.MaxSIMD * guts.ChunkSize

// FromReaderAt returns the digest of the size bytes r holds from offset 0:
// exactly what b3sum prints for them. It reads them in blocks of 256 KiB,
// each once, and never holds more than one block per core. From
// ParallelMin bytes up it hashes on every core no other call is using:
// BLAKE3 is a tree whose subtrees hash independently, so each core hashes
// whole blocks, as subtrees that start at their own chunk counter, and
// their chaining values are merged in order into the root. When no core
// is free it hashes alone (zeebo/blake3, faster on one core). If r ends
// before size bytes, the error is io.ErrUnexpectedEOF.
func FromReaderAt(r io.ReaderAt, size int64) (Digest, error) {
	if size >= ParallelMin {
		if n := helpers.take(); n > 0 {
			defer helpers.give(n)
			return treeHash(r, size, readBlock, 1+n)
		}
	}
	return sequentialHash(r, size, readBlock)
}

// helpers counts the goroutines that FromReaderAt calls run beside their
// own, in the whole process: at most GOMAXPROCS-1, so that big files
// hashed at once (a push or hash of a directory reads several) share the
// cores instead of starting a goroutine per core each.
var helpers helperPool

type helperPool struct{ busy atomic.Int64 }

// take reserves every helper that is free and returns how many.
func (p *helperPool) take() int {
	for {
		busy := p.busy.Load()
		free := int64(runtime.GOMAXPROCS(0)-1) - busy
		if free <= 0 {
			return 0
		}
		if p.busy.CompareAndSwap(busy, busy+free) {
			return int(free)
		}
	}
}

func (p *helperPool) give(n int) { p.busy.Add(-int64(n)) }

// readAt fills b from r at off.
func readAt(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil // a ReadAt that fills b may still say io.EOF
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// sequentialHash hashes size bytes of r on the calling goroutine.
func sequentialHash(r io.ReaderAt, size int64, block int) (Digest, error) {
	h := blake3.New()
	buf := make([]byte, min(size, int64(block)))
	for off := int64(0); off < size; {
		b := buf[:min(int64(len(buf)), size-off)]
		if err := readAt(r, b, off); err != nil {
			return Zero, err
		}
		_, _ = h.Write(b)
		off += int64(len(b))
	}
	return FromHash(h), nil
}

// treeHash hashes size bytes of r on workers goroutines, the caller's
// among them. block must be a power of two from guts.ChunkSize up.
//
// Every block but the last is full and followed by more bytes, so it is a
// complete subtree (BLAKE3's tree is left-balanced: a left subtree is
// always a power of two of chunks) and never the root: its chaining value
// goes on a stack as BLAKE3's own incremental hasher pushes subtrees. The
// last block, 1 to block bytes (none for an empty input), is the right
// edge of the tree, which the stack then closes into the root.
func treeHash(r io.ReaderAt, size int64, block, workers int) (Digest, error) {
	full := max(size-1, 0) / int64(block)
	bufs := make([][]byte, workers)
	buffer := func(w int) []byte {
		if bufs[w] == nil {
			// Room for 16 whole chunks even when block is smaller:
			// guts.CompressBuffer reads them all.
			bufs[w] = make([]byte, block, max(block, simdBytes))
		}
		return bufs[w]
	}
	var st stack
	cvs := make([][8]uint32, min(full, int64(windowBlocks*workers)))
	errs := make([]error, workers)
	for first := int64(0); first < full; first += int64(len(cvs)) {
		window := cvs[:min(int64(len(cvs)), full-first)]
		var next atomic.Int64
		var failed atomic.Bool
		work := func(w int) {
			buf := buffer(w)
			for !failed.Load() {
				i := next.Add(1) - 1
				if i >= int64(len(window)) {
					return
				}
				off := (first + i) * int64(block)
				if err := readAt(r, buf, off); err != nil {
					errs[w] = err
					failed.Store(true)
					return
				}
				window[i] = blockCV(buf, uint64(off/guts.ChunkSize))
			}
		}
		var wg sync.WaitGroup
		for w := 1; w < workers; w++ {
			wg.Go(func() { work(w) })
		}
		work(0)
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return Zero, err
			}
		}
		for _, cv := range window {
			st.push(cv)
		}
	}
	off := full * int64(block)
	last := buffer(0)[:size-off]
	if err := readAt(r, last, off); err != nil {
		return Zero, err
	}
	return st.root(subtree(last, uint64(off/guts.ChunkSize))), nil
}

// blockCV returns the chaining value of the complete subtree over the
// full block b, whose first chunk is chunk number counter: with zeebo's
// kernels (fullBlockCV) for blocks of readBlock bytes where they were
// measured faster, on a CPU with AVX2 and without AVX-512; with guts
// elsewhere (without AVX2 zeebo's fallback is pure Go, 6 x slower; with
// AVX-512 guts has a 16-way kernel), and for the smaller blocks of tests.
func blockCV(b []byte, counter uint64) [8]uint32 {
	if len(b) == readBlock && zeeboFaster {
		return fullBlockCV(b, counter)
	}
	return guts.ChainingValue(subtree(b, counter))
}

// subtree returns the top node of BLAKE3's tree over b, whose first chunk
// is chunk number counter of the input, not yet compressed: the caller
// takes its chaining value, or makes it the root. b holds whole chunks
// but perhaps the last; it starts 16 chunks after another in its buffer,
// which has room for 16 whole chunks from there (guts.CompressBuffer
// reads them all and hashes those within its length).
func subtree(b []byte, counter uint64) guts.Node {
	if len(b) <= simdBytes {
		return guts.CompressBuffer((*[simdBytes]byte)(b[:simdBytes]), len(b), &guts.IV, counter, 0)
	}
	chunks := uint64(len(b)+guts.ChunkSize-1) / guts.ChunkSize
	// The left subtree is the largest power of two of chunks below
	// chunks: 16 or more, so the right one starts 16 chunks after another.
	left := uint64(1) << (bits.Len64(chunks-1) - 1)
	l := subtree(b[:left*guts.ChunkSize], counter)
	r := subtree(b[left*guts.ChunkSize:], counter+left)
	return guts.ParentNode(guts.ChainingValue(l), guts.ChainingValue(r), &guts.IV, 0)
}

// stack holds the chaining values of the complete subtrees of blocks
// pushed so far, one per bit set in count: cvs[h] is a subtree of 2^h
// blocks, left of every smaller one.
type stack struct {
	cvs   [64][8]uint32
	count uint64 // blocks pushed
}

// push adds the next block's chaining value, merging the subtrees it
// completes.
func (s *stack) push(cv [8]uint32) {
	h := 0
	for ; s.count&(1<<h) != 0; h++ {
		cv = guts.ChainingValue(guts.ParentNode(s.cvs[h], cv, &guts.IV, 0))
	}
	s.cvs[h] = cv
	s.count++
}

// root joins last, the node right of every block pushed, with the
// subtrees on the stack from the smallest up, and returns the digest of
// the whole.
func (s *stack) root(last guts.Node) Digest {
	n := last
	for h := range bits.Len64(s.count) {
		if s.count&(1<<h) != 0 {
			n = guts.ParentNode(s.cvs[h], guts.ChainingValue(n), &guts.IV, 0)
		}
	}
	n.Flags |= guts.FlagRoot
	out := guts.WordsToBytes(guts.CompressNode(n))
	var d Digest
	copy(d[:], out[:Size])
	return d
}
