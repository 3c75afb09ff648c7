package cas

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/cas-ml/cas/index"
)

func TestFollows(t *testing.T) {
	t.Parallel()
	buf := make([]byte, 100)
	other := make([]byte, 100)
	tests := []struct {
		name string
		a, b []byte
		want bool
	}{
		{"back to back", buf[10:20], buf[20:50], true},
		{"a gap between", buf[10:20], buf[21:50], false},
		{"overlapping", buf[10:20], buf[15:50], false},
		{"b before a", buf[20:50], buf[10:20], false},
		{"another array", buf[10:20], other[20:50], false},
		{"b empty", buf[10:20], buf[20:20], false},
		{"a at the end of its capacity", buf[10:20:20], buf[20:50], false},
		{"a empty, b next", buf[10:10], buf[10:50], true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := follows(tt.a, tt.b); got != tt.want {
				t.Errorf("follows: got %v, want %v", got, tt.want)
			}
		})
	}
}

// writeSparse writes every byte that is not in a block of zeros and
// returns where the last byte it wrote ends; in a preallocated file it
// gives back the blocks under the zeros it skips.
func TestWriteSparse(t *testing.T) {
	t.Parallel()
	const size = 4 << 20
	data := pseudoRandom(size, 7)
	// 2 MiB of zeros from 1 MiB + 100, a short run of zeros shorter than
	// a block at 3.5 MiB, and 300 KiB of zeros at the end.
	clear(data[1<<20+100 : 3<<20+100])
	clear(data[7<<19 : 7<<19+1000])
	clear(data[size-300<<10:])
	for _, punch := range []bool{false, true} {
		name := map[bool]string{false: "holes", true: "punched"}[punch]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f, err := os.Create(filepath.Join(t.TempDir(), "f"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if punch {
				ok, err := preallocate(f, size)
				if err != nil {
					t.Fatal(err)
				}
				if !ok {
					t.Skip("the file system of the test's temporary directory cannot preallocate")
				}
			}
			// In two calls, split inside the zeros, as two chunks would be.
			end1, err := writeSparse(f, data[:2<<20], 0, punch)
			if err != nil {
				t.Fatal(err)
			}
			end2, err := writeSparse(f, data[2<<20:], 2<<20, punch)
			if err != nil {
				t.Fatal(err)
			}
			// The first call's last full block ends at 1 MiB + 64 KiB (the
			// zeros start 100 bytes into it); the second's last written
			// byte is the last before the trailing zeros, rounded up to
			// the block its run of 64 KiB blocks ends in.
			if want := int64(1<<20 + sparseBlock); end1 != want {
				t.Errorf("first call ends at %d, want %d", end1, want)
			}
			if end2 <= 7<<19 || end2 > size-300<<10+sparseBlock {
				t.Errorf("second call ends at %d, want past 3.5 MiB and within a block of %d", end2, size-300<<10)
			}
			if err := f.Truncate(size); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(f.Name())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatal("the bytes read back differ from those written")
			}
			var st syscall.Stat_t
			if err := syscall.Stat(f.Name(), &st); err != nil {
				t.Fatal(err)
			}
			if used := st.Blocks * 512; used > size-2<<20 {
				t.Errorf("the file takes %d bytes on disk; want at most %d, with holes for 2.3 MiB of zeros", used, size-2<<20)
			}
		})
	}
}

// A restore onto a disk too small for a file of several chunks fails
// before it reads a chunk: the file is preallocated first. (Written as
// it came, its first 4 MiB, one read, would fit.)
func TestRestoreFullDiskFailsFirst(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	mnt := mountTmpfs(t, "6m")
	r := newStoreForTest(t, 64<<10)
	_, obj := pushTree(t, r, []genEntry{{path: "big.bin", kind: KindFile, data: pseudoRandom(12<<20, 31)}})
	obj = lookup(t, r, obj, "big.bin")
	prog := &Progress{}
	_, err := r.Restore(ctx, obj, filepath.Join(mnt, "big.bin"), RestoreOptions{Progress: prog})
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Restore: got %v, want an error wrapping ENOSPC", err)
	}
	if got := prog.Bytes.Load(); got != 0 {
		t.Errorf("bytes restored before the error: got %d, want 0", got)
	}
	if got := listDir(t, mnt); len(got) != 0 {
		t.Errorf("left on the full disk: got %q, want nothing", got)
	}
}

// A damaged chunk anywhere in a file read in several units is named, as
// a chunk with the file's path, and nothing is left at the destination,
// whichever unit holds it.
func TestRestoreDamagedUnit(t *testing.T) {
	t.Parallel()
	data := pseudoRandom(3*maxUnitBytes+(1<<20), 51)
	for _, at := range []struct {
		name string
		pick func(n int) int // which chunk of n to damage
	}{
		{"first chunk", func(int) int { return 0 }},
		{"a middle chunk", func(n int) int { return n / 2 }},
		{"last chunk", func(n int) int { return n - 1 }},
	} {
		t.Run(at.name, func(t *testing.T) {
			t.Parallel()
			r := newStoreForTest(t, 64<<10)
			_, obj := pushTree(t, r, []genEntry{{path: "big.bin", kind: KindFile, data: data}})
			file := lookup(t, r, obj, "big.bin")
			chunks, ok, err := r.Index.FileChunks(file.Digest)
			if err != nil || !ok {
				t.Fatalf("chunks of big.bin: %v, %v", ok, err)
			}
			blobs := make([]index.Blob, len(chunks))
			for i, c := range chunks {
				blobs[i] = blobOf(t, r, c)
			}
			if n := len(readUnits(blobs)); n < 4 {
				t.Fatalf("big.bin is read in %d units, want at least 4", n)
			}
			damaged := blobs[at.pick(len(blobs))]
			flipStoredByte(t, r, damaged)
			for _, restore := range []struct {
				name string
				obj  *Object
				path string
			}{{"tree", obj, "big.bin"}, {"file alone", file, "dest"}} {
				parent := t.TempDir()
				_, err := r.Restore(t.Context(), restore.obj, filepath.Join(parent, "dest"), RestoreOptions{})
				var ce *CorruptError
				if !errors.As(err, &ce) {
					t.Fatalf("%s: got %v, want a *CorruptError", restore.name, err)
				}
				if ce.What != "chunk" || ce.ID != damaged.ID || ce.Pack != damaged.Pack {
					t.Errorf("%s: got %s %s in pack %s, want chunk %s in pack %s", restore.name,
						ce.What, ce.ID.Short(), ce.Pack.Short(), damaged.ID.Short(), damaged.Pack.Short())
				}
				if ce.Path != restore.path {
					t.Errorf("%s: path %q, want %q", restore.name, ce.Path, restore.path)
				}
				if got := listDir(t, parent); len(got) != 0 {
					t.Errorf("%s: left %q, want nothing", restore.name, got)
				}
			}
		})
	}
}
