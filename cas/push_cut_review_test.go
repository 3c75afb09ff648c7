package cas

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/cas-ml/cas/digest"
)

// TestPushFileWithZeroPrefix pushes files that start with runs of zeros
// (a sparse disk image, a zero-padded tensor): content-defined chunking
// finds no cut in zeros, so chunks of them are Max long, and the first
// read buffer (Max + 8 MiB: 16 MiB by default) is cut to its last byte.
// The push must store the whole file and restore it.
func TestPushFileWithZeroPrefix(t *testing.T) {
	t.Parallel()
	for _, size := range []int{16<<20 + 1, 16<<20 + 4096, 24 << 20} {
		r := newStoreForTest(t, DefaultChunkAvg)
		data := make([]byte, size)
		copy(data[16<<20:], bytes.Repeat([]byte("tail"), 1024))
		src := filepath.Join(t.TempDir(), "disk.img")
		if err := os.WriteFile(src, data, 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := pushWithin(t, r, []string{src}, PushOptions{})
		if err != nil {
			t.Errorf("size %d: Push: %v", size, err)
			continue
		}
		if res.Digest != digest.Of(data) {
			t.Errorf("size %d: pushed %v, want %v", size, res.Digest, digest.Of(data))
		}
		dest := filepath.Join(t.TempDir(), "out")
		obj, err := r.Resolve(t.Context(), res.Digest.String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Restore(t.Context(), obj, dest, RestoreOptions{}); err != nil {
			t.Fatalf("Restore: %v", err)
		}
		if got, err := os.ReadFile(dest); err != nil || !bytes.Equal(got, data) {
			t.Errorf("size %d: restored %d bytes, %v; want the %d pushed", size, len(got), err, size)
		}
	}
}
