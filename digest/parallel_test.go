package digest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

const kib, mib = 1 << 10, 1 << 20

// testData is 40 MiB of pseudo-random bytes, made once; tests hash
// prefixes of it.
var testData = sync.OnceValue(func() []byte {
	b := make([]byte, 40*mib)
	rng := rand.New(rand.NewPCG(14, 1))
	for i := 0; i < len(b); i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
})

// pattern is the input of the BLAKE3 test vectors: byte i is i mod 251.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

// testSizes are the sizes every way of hashing must agree on: the edges of
// a chunk (1 KiB), of the 16 chunks compressed at once, of a read block,
// whole powers of two of chunks, odd sizes in the MiB range and sizes over
// ParallelMin.
func testSizes() []int {
	sizes := []int{0, 1, 63, 64, 65, 1023, 1024, 1025, 2048, 2049, 3 * kib, 16*kib - 1, 16 * kib, 16*kib + 1}
	for _, c := range []int{4095, 4096, 4097} {
		sizes = append(sizes, c*kib-1, c*kib, c*kib+1)
	}
	for k := 0; k <= 15; k++ { // 1 chunk to 32 MiB
		sizes = append(sizes, (1<<k)*kib)
	}
	sizes = append(sizes, mib-1, mib+1, 3*mib+12345, 7*mib-4321,
		ParallelMin-1, ParallelMin, ParallelMin+1, 9*mib+517, 17*mib+1023, 33*mib-1)
	return sizes
}

// eofReader is a ReaderAt over b that says io.EOF with every read that
// reaches the end, a full one too, as a ReaderAt may.
type eofReader []byte

func (r eofReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(r)) {
		return 0, io.EOF
	}
	n := copy(p, r[off:])
	if off+int64(n) == int64(len(r)) {
		return n, io.EOF
	}
	return n, nil
}

// TestTreeHashMatchesOneThread hashes every test size as a tree with
// several block sizes and numbers of workers, and checks each digest
// against zeebo/blake3 hashing the bytes in one stream.
func TestTreeHashMatchesOneThread(t *testing.T) {
	t.Parallel()
	data := testData()
	for _, size := range testSizes() {
		want := Of(data[:size])
		r := bytes.NewReader(data[:size])
		for _, block := range []int{kib, 2 * kib, 16 * kib, 64 * kib, readBlock} {
			if size/block > 4096 {
				continue // small blocks on big sizes add nothing but time
			}
			for _, workers := range []int{1, 2, 3} {
				got, err := treeHash(r, int64(size), block, workers)
				if err != nil || got != want {
					t.Errorf("size %d, block %d, %d workers: got %v, %v; want %v", size, block, workers, got, err, want)
				}
			}
		}
		if got, err := sequentialHash(r, int64(size), readBlock); err != nil || got != want {
			t.Errorf("size %d one thread: got %v, %v; want %v", size, got, err, want)
		}
		if got, err := FromReaderAt(r, int64(size)); err != nil || got != want {
			t.Errorf("FromReaderAt size %d: got %v, %v; want %v", size, got, err, want)
		}
	}
}

// TestFromReaderAtKnownDigests pins digests b3sum printed for the test
// vector input (byte i is i mod 251), on both paths.
func TestFromReaderAtKnownDigests(t *testing.T) {
	t.Parallel()
	tests := []struct {
		size int
		want string
	}{
		{0, "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"},
		{1, "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213"},
		{1025, "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444"},
		{16385, "1dabe216be2578830263b049de1639f39f05a4da616b9b78c7a5e4e41662fd1f"},
		{mib + 1, "2f053cd7472cf0cd2f9adaf45c1180255b91b9a865404a63671a0ee5f792ed33"},
		{4 * mib, "4e94e6f582581a0f3855f3ce504b153e951e65036fe9e2f010b7e25473c54f98"},
		{5*mib + 3, "d7b0c8bf65e5c4d83045f23509a2af505c29af408a404c3f363f75a7a49a5040"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.size), func(t *testing.T) {
			r := bytes.NewReader(pattern(tt.size))
			if got, err := treeHash(r, int64(tt.size), readBlock, 2); err != nil || got.Hex() != tt.want {
				t.Errorf("tree: got %s, %v; want %s", got.Hex(), err, tt.want)
			}
			if got, err := FromReaderAt(r, int64(tt.size)); err != nil || got.Hex() != tt.want {
				t.Errorf("FromReaderAt: got %s, %v; want %s", got.Hex(), err, tt.want)
			}
		})
	}
}

// TestTreeHashRandomSizes is the fuzz-style check: random sizes, blocks
// and numbers of workers, from a reader that says io.EOF at the end.
func TestTreeHashRandomSizes(t *testing.T) {
	t.Parallel()
	data := testData()
	rng := rand.New(rand.NewPCG(uint64(len(data)), 2))
	for range 200 {
		var size int
		switch rng.IntN(3) {
		case 0:
			size = rng.IntN(64 * kib)
		case 1:
			size = rng.IntN(4 * mib)
		default:
			size = rng.IntN(len(data) + 1)
		}
		block := kib << rng.IntN(11) // 1 KiB to 1 MiB
		if size/block > 4096 {
			block = readBlock
		}
		workers := 1 + rng.IntN(4)
		got, err := treeHash(eofReader(data[:size]), int64(size), block, workers)
		if want := Of(data[:size]); err != nil || got != want {
			t.Fatalf("size %d, block %d, %d workers: got %v, %v; want %v", size, block, workers, got, err, want)
		}
	}
}

// FuzzTreeHash checks that any size, block and number of workers gives
// the one-thread digest.
func FuzzTreeHash(f *testing.F) {
	f.Add(uint32(0), uint8(0), uint8(1))
	f.Add(uint32(1025), uint8(0), uint8(2))
	f.Add(uint32(4096*kib+1), uint8(4), uint8(3))
	f.Add(uint32(ParallelMin+kib-1), uint8(10), uint8(2))
	data := testData()
	f.Fuzz(func(t *testing.T, size uint32, blockShift, workers uint8) {
		n := int(size % uint32(len(data)+1))
		block := kib << (blockShift % 11)
		if n/block > 1<<14 {
			block = readBlock
		}
		w := 1 + int(workers%8)
		got, err := treeHash(bytes.NewReader(data[:n]), int64(n), block, w)
		if want := Of(data[:n]); err != nil || got != want {
			t.Fatalf("size %d, block %d, %d workers: got %v, %v; want %v", n, block, w, got, err, want)
		}
	})
}

// TestFromReaderAtGOMAXPROCS hashes a file over ParallelMin with one core
// (no helper: one thread) and with four (three helpers, given back).
func TestFromReaderAtGOMAXPROCS(t *testing.T) {
	// Not parallel: it sets GOMAXPROCS and counts the helpers in use.
	data := testData()[:13*mib+99]
	want := Of(data)
	for _, procs := range []int{1, 2, 4} {
		t.Run(fmt.Sprint(procs), func(t *testing.T) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			var mu sync.Mutex
			var busy int64 // the most helpers seen in use
			r := readerAtFunc(func(p []byte, off int64) (int, error) {
				mu.Lock()
				busy = max(busy, helpers.busy.Load())
				mu.Unlock()
				return bytes.NewReader(data).ReadAt(p, off)
			})
			got, err := FromReaderAt(r, int64(len(data)))
			if err != nil || got != want {
				t.Fatalf("got %v, %v; want %v", got, err, want)
			}
			if busy != int64(procs-1) {
				t.Errorf("helpers in use while hashing: got %d, want %d", busy, procs-1)
			}
			if n := helpers.busy.Load(); n != 0 {
				t.Errorf("helpers in use after: got %d, want 0", n)
			}
		})
	}
}

type readerAtFunc func(p []byte, off int64) (int, error)

func (f readerAtFunc) ReadAt(p []byte, off int64) (int, error) { return f(p, off) }

// TestHelperPool checks that helpers are shared out, never past
// GOMAXPROCS-1 in all.
func TestHelperPool(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	var p helperPool
	if got := p.take(); got != 3 {
		t.Fatalf("first take: got %d, want 3", got)
	}
	if got := p.take(); got != 0 {
		t.Fatalf("take with none free: got %d, want 0", got)
	}
	p.give(2)
	if got := p.take(); got != 2 {
		t.Fatalf("take after giving 2 back: got %d, want 2", got)
	}
	runtime.GOMAXPROCS(1)
	p.give(3)
	if got := p.take(); got != 0 {
		t.Fatalf("take with GOMAXPROCS 1: got %d, want 0", got)
	}
}

// TestFromReaderAtShortInput: an input that ends before size is
// io.ErrUnexpectedEOF, and a read error comes back as it is, on both
// paths.
func TestFromReaderAtShortInput(t *testing.T) {
	t.Parallel()
	data := testData()[:9*mib]
	errDisk := errors.New("disk on fire")
	for _, size := range []int{100, 2*mib + 5, 9 * mib} {
		for _, workers := range []int{0, 1, 3} { // 0: one thread, with zeebo
			hash := func(r io.ReaderAt, n int64) (Digest, error) {
				if workers == 0 {
					return sequentialHash(r, n, readBlock)
				}
				return treeHash(r, n, readBlock, workers)
			}
			if _, err := hash(bytes.NewReader(data[:size]), int64(size)+1); !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("size %d, %d workers, one byte short: got %v, want %v", size, workers, err, io.ErrUnexpectedEOF)
			}
			failing := readerAtFunc(func(p []byte, off int64) (int, error) {
				if off+int64(len(p)) > int64(size)/2 {
					return 0, errDisk
				}
				return copy(p, data[off:]), nil
			})
			if _, err := hash(failing, int64(size)); !errors.Is(err, errDisk) {
				t.Errorf("size %d, %d workers, failing read: got %v, want %v", size, workers, err, errDisk)
			}
		}
	}
}

// TestTreeHashMemoryBounded hashes 96 MiB from a reader that makes its
// bytes up and checks that what the hash allocates does not grow with
// the input: one block per worker and a window of chaining values.
func TestTreeHashMemoryBounded(t *testing.T) {
	// Not parallel: it reads the process's allocation counter.
	const size = 96 * mib
	gen := readerAtFunc(func(p []byte, off int64) (int, error) {
		for i := range p {
			x := uint64(off) + uint64(i)
			p[i] = byte(x ^ x>>11 ^ x>>23)
		}
		return len(p), nil
	})
	want, err := sequentialHash(gen, size, readBlock)
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	got, err := treeHash(gen, size, readBlock, 2)
	runtime.ReadMemStats(&after)
	if err != nil || got != want {
		t.Fatalf("got %v, %v; want %v", got, err, want)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4*mib {
		t.Errorf("hashing %d MiB allocated %d bytes, want at most 4 MiB (two blocks and a window)", size/mib, alloc)
	}
}

// TestFromReaderAtMatchesB3sum hashes a file over ParallelMin and checks
// the digest against the b3sum command, when there is one.
func TestFromReaderAtMatchesB3sum(t *testing.T) {
	t.Parallel()
	b3sum, err := exec.LookPath("b3sum")
	if err != nil {
		t.Skip("no b3sum on PATH")
	}
	for _, size := range []int{0, 1025, ParallelMin + 1, 21*mib + 7} {
		path := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(path, testData()[:size], 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(b3sum, "--no-names", path).Output()
		if err != nil {
			t.Fatalf("b3sum: %v", err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := FromReaderAt(f, int64(size))
		f.Close()
		if want := strings.TrimSpace(string(out)); err != nil || got.Hex() != want {
			t.Errorf("size %d: got %s, %v; b3sum printed %s", size, got.Hex(), err, want)
		}
	}
}

// BenchmarkFromReaderAt hashes 32 MiB held in memory: with zeebo on one
// thread, and as a tree on one worker and on GOMAXPROCS.
func BenchmarkFromReaderAt(b *testing.B) {
	data := testData()[:32*mib]
	r := bytes.NewReader(data)
	for _, bm := range []struct {
		name string
		hash func() (Digest, error)
	}{
		{"one-thread", func() (Digest, error) { return sequentialHash(r, int64(len(data)), readBlock) }},
		{"tree-1", func() (Digest, error) { return treeHash(r, int64(len(data)), readBlock, 1) }},
		{"tree-GOMAXPROCS", func() (Digest, error) {
			return treeHash(r, int64(len(data)), readBlock, runtime.GOMAXPROCS(0))
		}},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := bm.hash(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
