package ingest

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cas-ml/cas/digest"
)

// writeRand writes n pseudo-random bytes to a new file and returns its
// path and bytes.
func writeRand(t *testing.T, name string, n int, seed uint64) (string, []byte) {
	t.Helper()
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{byte(seed)}).Read(b)
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, b
}

func openFd(t *testing.T, path string) fdReader {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fdReader(fd)
}

// TestHashWhole hashes files below and above digest.ParallelMin and
// checks digest, bytes read and progress; a file shorter than expected
// (one that shrank) is no error but reads fewer bytes.
func TestHashWhole(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 5000, digest.ParallelMin + 1, 9<<20 + 517} {
		path, data := writeRand(t, "f", n, uint64(n))
		f := openFd(t, path)
		var progress atomic.Int64
		d, read, err := hashWhole(t.Context(), f, int64(n), &progress)
		if err != nil || d != digest.Of(data) || read != int64(n) || progress.Load() != int64(n) {
			t.Errorf("size %d: got %v, read %d, progress %d, %v; want %v, %d, %d, nil",
				n, d, read, progress.Load(), err, digest.Of(data), n, n)
		}
		progress.Store(0)
		_, read, err = hashWhole(t.Context(), f, int64(n)+4096, &progress)
		if err != nil || read >= int64(n)+4096 || read != progress.Load() {
			t.Errorf("size %d, asked 4096 more: read %d, progress %d, %v; want fewer than asked, counted, nil",
				n, read, progress.Load(), err)
		}
	}
}

// TestHashWholeStopsWithContext: a cancelled context stops the reading.
func TestHashWholeStopsWithContext(t *testing.T) {
	t.Parallel()
	path, _ := writeRand(t, "f", 6<<20, 6)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, _, err := hashWhole(ctx, openFd(t, path), 6<<20, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want %v", err, context.Canceled)
	}
}

// TestFdReaderReadAt: a read within the file fills the buffer; one that
// reaches past its end returns what there is and io.EOF.
func TestFdReaderReadAt(t *testing.T) {
	t.Parallel()
	path, data := writeRand(t, "f", 10000, 1)
	f := openFd(t, path)
	tests := []struct {
		off, len, want int
		err            error
	}{
		{0, 10000, 10000, nil},
		{9000, 1000, 1000, nil},
		{9000, 2000, 1000, io.EOF},
		{10000, 10, 0, io.EOF},
		{20000, 10, 0, io.EOF},
	}
	for _, tt := range tests {
		b := make([]byte, tt.len)
		n, err := f.ReadAt(b, int64(tt.off))
		if n != tt.want || !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
			t.Errorf("ReadAt(%d bytes at %d): got %d, %v; want %d, %v", tt.len, tt.off, n, err, tt.want, tt.err)
			continue
		}
		if n > 0 && string(b[:n]) != string(data[tt.off:tt.off+n]) {
			t.Errorf("ReadAt(%d bytes at %d): wrong bytes", tt.len, tt.off)
		}
	}
}

// TestRunHashOnlyBigFiles hashes a directory of files over
// digest.ParallelMin, read at once by several readers that share the
// cores, and checks every digest.
func TestRunHashOnlyBigFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	want := map[string]digest.Digest{}
	for i, n := range []int{digest.ParallelMin, 5<<20 + 1, 9<<20 - 3, 12 << 20} {
		name := string(rune('a'+i)) + ".bin"
		b := make([]byte, n)
		_, _ = rand.NewChaCha8([32]byte{byte(i)}).Read(b)
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		want[name] = digest.Of(b)
	}
	res, err := Run(t.Context(), nil, []string{dir}, Options{HashOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	top := res.Trees[res.Digest]
	if top == nil || len(top.Entries) != len(want) {
		t.Fatalf("top tree: got %+v, want %d entries", top, len(want))
	}
	for _, e := range top.Entries {
		if e.Digest != want[e.Name] {
			t.Errorf("%s: got %v, want %v", e.Name, e.Digest, want[e.Name])
		}
	}
	one, err := Run(t.Context(), nil, []string{filepath.Join(dir, "c.bin")}, Options{HashOnly: true})
	if err != nil || one.Digest != want["c.bin"] || one.Size != 9<<20-3 {
		t.Errorf("c.bin alone: got %v, %d bytes, %v; want %v, %d bytes", one.Digest, one.Size, err, want["c.bin"], 9<<20-3)
	}
}
