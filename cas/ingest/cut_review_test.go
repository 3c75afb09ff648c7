package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cas-ml/cas/cas/chunk"
	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
	"github.com/cas-ml/cas/remote"
)

// memStore is a Store that keeps the packs written in memory; HasBlob and
// WritePack can be slowed down (so that chunks stay long in the hashers
// while cut goes on reading) or made to fail.
type memStore struct {
	mu        sync.Mutex
	packs     map[digest.Digest][]byte
	delay     func()
	writes    atomic.Int32
	failAfter int32 // WritePack fails from this write on, if > 0
}

var errWrite = errors.New("test: write failed")

func (s *memStore) Chunker() *chunk.Chunker                                     { return nil }
func (s *memStore) TreeStored(digest.Digest) (bool, error)                      { return false, nil }
func (s *memStore) HasFile(context.Context, digest.Digest, int64) (bool, error) { return false, nil }
func (s *memStore) KnowsFile(digest.Digest) bool                                { return false }
func (s *memStore) IndexPacks(context.Context, *Batch) (int64, error)           { return 0, nil }
func (s *memStore) CopyPack(context.Context, remote.Backend, remote.ObjectInfo) error {
	return nil
}
func (s *memStore) Connections() int { return 1 }

func (s *memStore) HasBlob(context.Context, digest.Digest) (bool, error) {
	if s.delay != nil {
		s.delay()
	}
	return false, nil
}

func (s *memStore) WritePack(_ context.Context, id digest.Digest, data []byte) error {
	if s.delay != nil {
		s.delay()
	}
	if n := s.writes.Add(1); s.failAfter > 0 && n >= s.failAfter {
		return errWrite
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.packs == nil {
		s.packs = map[digest.Digest][]byte{}
	}
	s.packs[id] = append([]byte(nil), data...)
	return nil
}

// checkPacks decodes every blob of every pack written and checks its
// bytes against its ID; it returns the IDs of the blobs.
func (s *memStore) checkPacks(t *testing.T) map[digest.Digest]bool {
	t.Helper()
	have := map[digest.Digest]bool{}
	for id, data := range s.packs {
		blobs, err := format.ParsePack(id, data)
		if err != nil {
			t.Fatalf("pack %v: %v", id, err)
		}
		for _, b := range blobs {
			if _, err := format.DecodeChunk(b, data[b.Offset:b.Offset+uint64(b.Length)], nil); err != nil {
				t.Errorf("pack %v: blob %v (%d bytes): %v: the pack holds bytes other than the chunk its ID names",
					id.Short(), b.ID.Short(), b.RawLen, err)
			}
			have[b.ID] = true
		}
	}
	return have
}

// source makes the descriptor a large file is read from.
type source func(t *testing.T, data []byte, rng *rand.Rand) fdReader

// fileSource: a regular file, whose reads return all that was asked.
func fileSource(t *testing.T, data []byte, _ *rand.Rand) fdReader {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return openFd(t, path)
}

// pipeSource: a pipe written in pieces of random length, so that reads
// return few bytes, of any length.
func pipeSource(t *testing.T, data []byte, rng *rand.Rand) fdReader {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	seed := rng.Uint64()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer unix.Close(fds[1])
		r := rand.New(rand.NewPCG(seed, 1))
		for b := data; len(b) > 0; {
			n := min(len(b), 1+r.IntN(96<<10))
			k, err := unix.Write(fds[1], b[:n])
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				return // the reader gave up
			}
			b = b[k:]
		}
	}()
	t.Cleanup(func() { unix.Close(fds[0]); <-done })
	return fdReader(fds[0])
}

// pushLarge streams data through readLarge, as a file of the store, and
// returns the pusher's results.
func pushLarge(t *testing.T, st *memStore, params chunk.Params, f fdReader, size int64, natural []int64) (digest.Digest, int64, []digest.Digest, error) {
	t.Helper()
	p := &pusher{s: st, chunker: chunk.New(params), opts: Options{Progress: &Progress{},
		NaturalCuts: func(io.ReaderAt, int64) []int64 { return natural }}}
	finish := p.start(t.Context())
	n := &node{st: index.StatEntry{Size: size}}
	var deps []digest.Digest
	total, ids, err := p.readLarge(n, f, &deps)
	if err == nil {
		err = p.claims.wait(p.ctx, deps)
	}
	err = finish(err)
	return n.digest, total, ids, err
}

// wantChunks are the chunk IDs of data cut whole, in memory, at natural
// cuts too.
func wantChunks(params chunk.Params, data []byte, natural []int64) []digest.Digest {
	var ids []digest.Digest
	off := 0
	for _, c := range chunk.New(params).CutsWithin(data, 0, natural) {
		ids = append(ids, digest.Of(data[off:off+c]))
		off += c
	}
	return ids
}

// genData returns size bytes of one of a few kinds: random (many
// content-defined cuts), zeros (none: every chunk Max long) and random
// stretches between runs of zeros, some longer than Max.
func genData(kind string, size int, maxc int, rng *rand.Rand) []byte {
	b := make([]byte, size)
	switch kind {
	case "random":
		_, _ = rand.NewChaCha8([32]byte{byte(rng.Uint64())}).Read(b)
	case "zeros":
	case "mixed":
		cc := rand.NewChaCha8([32]byte{byte(rng.Uint64()), 1})
		for off := 0; off < size; {
			n := min(size-off, 1+rng.IntN(2*maxc))
			if rng.IntN(2) == 0 {
				_, _ = cc.Read(b[off : off+n])
			}
			off += n
		}
	}
	return b
}

// genNatural returns sorted natural cuts in (0, size): near multiples of
// the read block, the largest chunk and the read buffer, a byte apart,
// and anywhere.
func genNatural(size int64, maxc int, rng *rand.Rand) []int64 {
	const block = 4 << 20
	var cuts []int64
	steps := []int64{block, int64(maxc), int64(maxc + 2*block), int64(maxc) / 8}
	for range 1 + rng.IntN(12) {
		var c int64
		switch rng.IntN(3) {
		case 0:
			s := steps[rng.IntN(len(steps))]
			c = s*(1+rng.Int64N(max(1, size/s))) + rng.Int64N(5) - 2
		case 1:
			c = rng.Int64N(size)
			cuts = append(cuts, c+1) // and one a byte after
		default:
			c = rng.Int64N(size)
		}
		cuts = append(cuts, c)
	}
	slices.Sort(cuts)
	cuts = slices.Compact(cuts)
	return slices.DeleteFunc(cuts, func(c int64) bool { return c <= 0 || c >= size })
}

// TestReadLargeCutsAsInMemory is a property test of largeRead.cut: for
// files of many sizes, near multiples of the read block, the largest chunk
// and the read buffer, with and without natural cuts, read from a file or
// from a pipe (short reads), and with hashers slowed down at random (so
// that the reader waits for a buffer's chunks), the chunks are exactly
// those of the whole file cut in memory, the file digest is right, and
// every blob in the packs holds the bytes its ID names.
func TestReadLargeCutsAsInMemory(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, uint64(time.Now().UnixNano())))
	small, _ := chunk.NewParams(4 << 10) // Max 32 KiB: many chunks a buffer
	dflt, _ := chunk.NewParams(chunk.DefaultAvg)
	const block = 4 << 20
	type tcase struct {
		params chunk.Params
		size   int
		src    source
		srcN   string
	}
	var cases []tcase
	for _, params := range []chunk.Params{small, dflt} {
		bufSize := params.Max + 2*block
		sizes := []int{params.Max + 1, 2*block - 1, 2 * block, 3*block + 1, bufSize - 1, bufSize, bufSize + 1,
			2*bufSize - block + 3, 2*bufSize + 1, 3*bufSize - 7}
		if !testing.Short() {
			sizes = append(sizes, 5*bufSize+rng.IntN(bufSize))
		}
		for _, size := range sizes {
			cases = append(cases, tcase{params, size, fileSource, "file"})
		}
		if params == small {
			for _, size := range sizes[:6] {
				cases = append(cases, tcase{params, size, pipeSource, "pipe"})
			}
		}
	}
	for _, tc := range cases {
		for _, kind := range []string{"random", "zeros", "mixed"} {
			for _, withNatural := range []bool{false, true} {
				name := fmt.Sprintf("avg%d/%s/%d/%s/natural=%v", tc.params.Avg, tc.srcN, tc.size, kind, withNatural)
				t.Run(name, func(t *testing.T) {
					data := genData(kind, tc.size, tc.params.Max, rng)
					var natural []int64
					if withNatural {
						natural = genNatural(int64(tc.size), tc.params.Max, rng)
					}
					st := &memStore{}
					var drng sync.Mutex
					dr := rand.New(rand.NewPCG(rng.Uint64(), 2))
					st.delay = func() {
						drng.Lock()
						d := time.Duration(dr.IntN(4)) * time.Millisecond
						if dr.IntN(50) != 0 {
							d = 0
						}
						drng.Unlock()
						time.Sleep(d)
					}
					f := tc.src(t, data, rng)
					d, total, ids, err := pushLarge(t, st, tc.params, f, int64(len(data)), natural)
					if err != nil {
						t.Fatal(err)
					}
					if total != int64(len(data)) || d != digest.Of(data) {
						t.Errorf("read %d bytes, digest %v; want %d, %v", total, d.Short(), len(data), digest.Of(data).Short())
					}
					if want := wantChunks(tc.params, data, natural); !slices.Equal(ids, want) {
						t.Errorf("natural cuts %v: %d chunks, want %d (first difference at chunk %d)",
							natural, len(ids), len(want), firstDiff(ids, want))
					}
					have := st.checkPacks(t)
					for i, id := range ids {
						if !have[id] {
							t.Errorf("chunk %d %v in no pack", i, id.Short())
							break
						}
					}
				})
			}
		}
	}
}

func firstDiff(a, b []digest.Digest) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestReadLargeFails: a pack write that fails, or a push cancelled, while
// chunks of both read buffers are in flight, ends readLarge with the
// error, without a hang (and, under -race, without a race on the buffers).
func TestReadLargeFails(t *testing.T) {
	params, _ := chunk.NewParams(4 << 10)
	rng := rand.New(rand.NewPCG(9, 9))
	data := genData("random", 3*(params.Max+8<<20)+12345, params.Max, rng)
	for _, failAfter := range []int32{1, 2} {
		t.Run(fmt.Sprintf("write%d", failAfter), func(t *testing.T) {
			st := &memStore{failAfter: failAfter}
			done := make(chan error, 1)
			go func() {
				_, _, _, err := pushLarge(t, st, params, fileSource(t, data, rng), int64(len(data)), nil)
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, errWrite) {
					t.Errorf("got %v, want %v", err, errWrite)
				}
			case <-time.After(2 * time.Minute):
				t.Fatal("readLarge hangs after a write error")
			}
		})
	}
}

// TestReadLargeEndsAtEOFOfGrowingFile: a file that another process keeps
// appending to, a few KiB at a time, is read to the size the scan saw
// (the fstat after the read then reports the change): reading must not
// go on in step with the writer for as long as it writes.
// A tail of bytes with no content-defined cut (here zeros) is
// what cut scans again after each read.
func TestReadLargeEndsAtEOFOfGrowingFile(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a file for some seconds")
	}
	// The largest chunks a repository may have (avg 16 MiB, Max 128 MiB),
	// so that the tail without a cut, scanned again after each read, is
	// long; a file of 2 MiB of random bytes, then 60 MiB of zeros.
	params, _ := chunk.NewParams(16 << 20)
	data := make([]byte, 62<<20)
	_, _ = rand.NewChaCha8([32]byte{5}).Read(data[:2<<20])
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := w.Write(make([]byte, 4<<10)); err != nil {
				return
			}
			time.Sleep(time.Millisecond) // 4 MB/s at most
		}
	}()
	start := time.Now()
	_, total, _, err := pushLarge(t, &memStore{}, params, openFd(t, path), int64(len(data)), nil)
	took := time.Since(start)
	close(stop)
	<-stopped
	t.Logf("read %d bytes (%d appended) in %v", total, total-int64(len(data)), took)
	if err != nil {
		t.Fatal(err)
	}
	// It reads what the scan saw, no more: the fstat after the read tells
	// the caller that the file grew. A reader in step with the writer
	// would take the writer's 60 s; the bound is that, not the speed of
	// a loaded machine under -race (some 6 s, and 7.6 s before this
	// reader, which read on to the writer's EOF).
	if total != int64(len(data)) {
		t.Errorf("read %d bytes, want the %d the scan saw", total, len(data))
	}
	if took > 30*time.Second {
		t.Errorf("readLarge took %v, reading %d bytes appended meanwhile: it kept pace with the writer instead of ending at EOF",
			took, total-int64(len(data)))
	}
}
