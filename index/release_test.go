package index

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cas-ml/cas/digest"
)

// mappedBytes is how much of the files under dir the process has
// resident, from /proc/self/smaps.
func mappedBytes(t *testing.T, dir string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	defer f.Close()
	var total int64
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if fs := strings.Fields(line); len(fs) >= 5 && strings.Contains(fs[0], "-") && !strings.HasSuffix(fs[0], ":") {
			in = len(fs) >= 6 && strings.HasPrefix(fs[5], dir)
			continue
		}
		if v, ok := strings.CutPrefix(line, "Rss:"); ok && in {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("smaps: %q", line)
			}
			total += kb << 10
		}
	}
	return total
}

// The pages of badger's files that a read brought into the process leave
// it once the releaser hands them back.
func TestReleaserPagesOut(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "idx")
	b, err := OpenBadger(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Remote marks: blobs and files live in tables, read with pread.
	var ids []digest.Digest
	for i := range 200000 {
		ids = append(ids, digest.Of([]byte{byte(i), byte(i >> 8), byte(i >> 16)}))
	}
	if err := b.MarkRemote(ids); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if b, err = OpenBadger(dir); err != nil { // its tables on disk now, clean
		t.Fatal(err)
	}
	defer b.Close()
	if b.releaser == nil {
		t.Skip("no releaser here")
	}
	// Stop its ticks: when the test binary has more than releaseAbove of
	// file pages resident (the race build does), a tick would hand back
	// what the read below brings in before the test measures it.
	b.releaser.close()
	n := 0
	if err := b.iterate([]byte{prefixRemote}, true, func(_, _ []byte) error { n++; return nil }); err != nil || n != len(ids) {
		t.Fatalf("iterate: %d, %v; want %d", n, err, len(ids))
	}
	resolved, _ := filepath.EvalSymlinks(dir)
	before := mappedBytes(t, resolved+"/")
	if before < 4<<20 {
		t.Fatalf("%d bytes of the index resident after reading it all; the test needs more", before)
	}
	if b.releaser.release() == 0 {
		t.Skip("the kernel takes no MADV_PAGEOUT advice")
	}
	if after := mappedBytes(t, resolved+"/"); after > before/4 {
		t.Errorf("resident after release: %d bytes of %d, want at most a quarter", after, before)
	}
}
