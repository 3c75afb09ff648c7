package cas

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cas-ml/cas/digest"
)

// TestPushManyLargeAndSmallFilesRev2 pushes, in one push, large files of
// sizes around the read buffer (Max + 8 MiB = 16 MiB by default) and its
// multiples, with no content-defined cut for more than a buffer (zeros),
// cuts at a buffer's last byte, random bytes, and a thousand small files
// besides (the readers then compete for the memory budget): the push must
// end, every file's digest must be the BLAKE3 of its bytes, and the tree
// restored must hold exactly the bytes pushed.
func TestPushManyLargeAndSmallFilesRev2(t *testing.T) {
	if testing.Short() {
		t.Skip("pushes some 250 MiB")
	}
	const mib = 1 << 20
	const maxc, buf = 8 * mib, 16 * mib
	src := filepath.Join(t.TempDir(), "src")
	if err := os.MkdirAll(filepath.Join(src, "small"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	add := func(name string, data []byte) {
		files[name] = data
		if err := os.WriteFile(filepath.Join(src, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, size := range []int{maxc + 1, buf - 1, buf, buf + 1, 2*buf - 1, 2 * buf, 2*buf + 1, 3*buf + maxc} {
		add(fmt.Sprintf("random%d", i), pseudoRandom(size, uint64(i)))
		if i%2 == 1 {
			z := make([]byte, size) // no cut at all: chunks of Max, the buffer cut to its end
			copy(z[size-5000:], pseudoRandom(5000, 77))
			add(fmt.Sprintf("zeros%d", i), z)
		}
	}
	// Random, then more than a buffer with no cut, then random.
	m := pseudoRandom(3*buf+12345, 99)
	clear(m[5*mib : 5*mib+buf+maxc+3])
	add("mixed", m)
	for i := range 1000 {
		add(fmt.Sprintf("small/s%04d", i), pseudoRandom(1+i*97%20000, uint64(5000+i)))
	}
	r := newStoreForTest(t, DefaultChunkAvg)
	res, err := pushWithin(t, r, []string{src}, PushOptions{})
	if err != nil {
		t.Fatalf("Push: %v", err)
	}
	dest := filepath.Join(t.TempDir(), "out")
	obj, err := r.Resolve(t.Context(), res.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Restore(t.Context(), obj, dest, RestoreOptions{}); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	for name, data := range files {
		got, err := os.ReadFile(filepath.Join(dest, name))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: restored %d bytes (%v), want the %d pushed", name, len(got), err, len(data))
		}
		obj, err := r.Resolve(t.Context(), res.Digest.String()+":"+name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
		} else if obj.Digest != digest.Of(data) {
			t.Errorf("%s: stored as %v, want %v", name, obj.Digest, digest.Of(data))
		}
	}
}
