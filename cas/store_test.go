package cas

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cas-ml/cas/cas/ingest"
	"github.com/cas-ml/cas/clock"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/remote"
)

// Helpers shared by store_test.go, restore_test.go and crash_test.go.

// newStoreForTest creates and opens a store in a temporary directory with
// the given average chunk size; it is closed when the test ends.
func newStoreForTest(t *testing.T, avg int) *Repo {
	t.Helper()
	dir := filepath.Join(t.TempDir(), DirName)
	p, err := NewChunkParams(avg)
	if err != nil {
		t.Fatal(err)
	}
	if err := Init(dir, p, time.Now()); err != nil {
		t.Fatalf("Init: %v", err)
	}
	r, err := Open(t.Context(), dir)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

// pseudoRandom returns n incompressible bytes determined by seed (an
// AES-CTR key stream: fast even under the race detector).
func pseudoRandom(n int, seed uint64) []byte {
	var key [16]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	block, err := aes.NewCipher(key[:])
	if err != nil {
		panic(err)
	}
	b := make([]byte, n)
	cipher.NewCTR(block, make([]byte, aes.BlockSize)).XORKeyStream(b, b)
	return b
}

// genEntry is one path of a generated tree.
type genEntry struct {
	path   string // slash-separated, below the root
	kind   Kind
	data   []byte // content of a file
	target string // target of a link
}

// writeGenTree creates the entries below root (which may exist).
func writeGenTree(t *testing.T, root string, entries []genEntry) {
	t.Helper()
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		p := filepath.Join(root, filepath.FromSlash(e.path))
		if e.kind == KindDir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		switch e.kind {
		case KindLink:
			if err := os.Symlink(e.target, p); err != nil {
				t.Fatal(err)
			}
		case KindFile, KindExec:
			mode := os.FileMode(0o644)
			if e.kind == KindExec {
				mode = 0o755
			}
			if err := os.WriteFile(p, e.data, mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, mode); err != nil { // whatever the umask
				t.Fatal(err)
			}
		default:
			t.Fatalf("writeGenTree: %q has kind %v", e.path, e.kind)
		}
	}
}

// fsNode is what snapshotDir records of one path.
type fsNode struct {
	kind   Kind
	data   []byte
	target string
}

// snapshotDir records every path below root (not root itself) by its
// slash-separated relative name, without following symlinks.
func snapshotDir(t *testing.T, root string) map[string]fsNode {
	t.Helper()
	out, err := snapshotDirE(root)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// compareSnapshots reports every difference between two snapshots.
func compareSnapshots(t *testing.T, got, want map[string]fsNode) {
	t.Helper()
	for name, w := range want {
		g, ok := got[name]
		switch {
		case !ok:
			t.Errorf("%q: missing, want a %v", name, w.kind)
		case g.kind != w.kind:
			t.Errorf("%q: got a %v, want a %v", name, g.kind, w.kind)
		case g.target != w.target:
			t.Errorf("%q: got link target %q, want %q", name, g.target, w.target)
		case !bytes.Equal(g.data, w.data):
			t.Errorf("%q: got %d bytes (%s), want %d bytes (%s)", name, len(g.data), digest.Of(g.data).Short(), len(w.data), digest.Of(w.data).Short())
		}
	}
	for name, g := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%q: got an unexpected %v", name, g.kind)
		}
	}
}

// hashPath returns the digest Hash computes for path without a store.
func hashPath(t *testing.T, path string) digest.Digest {
	t.Helper()
	h, err := Hash(t.Context(), nil, []string{path}, PushOptions{})
	if err != nil {
		t.Fatalf("Hash(%s): %v", path, err)
	}
	return h.Digest
}

// listDir returns the sorted names in dir.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	return names
}

// awkwardTree is a tree with every kind of entry and name push must keep.
func awkwardTree() []genEntry {
	es := []genEntry{
		{path: "plain.txt", kind: KindFile, data: []byte("hello\n")},
		{path: "with space.txt", kind: KindFile, data: []byte("space\n")},
		{path: "new\nline", kind: KindFile, data: []byte("newline\n")},
		{path: "non-utf8-\xff\xfe", kind: KindFile, data: []byte("latin1\n")},
		{path: strings.Repeat("n", 251) + ".bin", kind: KindFile, data: []byte("long name\n")},
		{path: "dir with space/\xff/inner.txt", kind: KindFile, data: []byte("inner\n")},
		{path: "empty", kind: KindFile, data: nil},
		{path: "emptydir", kind: KindDir},
		{path: "nested/emptydir", kind: KindDir},
		{path: "bin/run.sh", kind: KindExec, data: []byte("#!/bin/sh\necho hi\n")},
		{path: "links/relative", kind: KindLink, target: "../plain.txt"},
		{path: "links/absolute", kind: KindLink, target: "/etc/hostname"},
		{path: "links/dangling", kind: KindLink, target: "does/not/exist"},
		{path: "links/to-dir", kind: KindLink, target: "../nested"},
		{path: "big.bin", kind: KindFile, data: pseudoRandom(5<<20+123, 1)},
	}
	for i := range 300 {
		seed := i % 250 // some contents repeat
		es = append(es, genEntry{
			path: fmt.Sprintf("small/d%d/f%03d", i%10, i),
			kind: KindFile,
			data: pseudoRandom(100+(seed*37)%4000, uint64(1000+seed)),
		})
	}
	return es
}

func TestPushRestoreRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	r := newStoreForTest(t, 64<<10)
	src := filepath.Join(t.TempDir(), "src")
	entries := awkwardTree()
	writeGenTree(t, src, entries)
	want := snapshotDir(t, src)

	res, err := r.Push(ctx, []string{src}, PushOptions{})
	if err != nil {
		t.Fatalf("Push: %v", err)
	}
	var files, bytesWant int64
	for _, e := range entries {
		switch e.kind {
		case KindFile, KindExec:
			files++
			bytesWant += int64(len(e.data))
		case KindLink:
			bytesWant += int64(len(e.target))
		}
	}
	if res.Kind != KindDir {
		t.Errorf("Push kind: got %v, want %v", res.Kind, KindDir)
	}
	if res.Files != files {
		t.Errorf("Push files: got %d, want %d", res.Files, files)
	}
	if res.Bytes != bytesWant {
		t.Errorf("Push bytes: got %d, want %d", res.Bytes, bytesWant)
	}
	if len(res.Skipped) != 0 {
		t.Errorf("Push skipped: got %q, want none", res.Skipped)
	}
	if h := hashPath(t, src); h != res.Digest {
		t.Errorf("Hash of the source: got %s, want the pushed digest %s", h, res.Digest)
	}

	// The big file is a multi-chunk file whose digest is its BLAKE3.
	big, err := r.Resolve(ctx, res.Digest.String()+":big.bin")
	if err != nil {
		t.Fatalf("Resolve big.bin: %v", err)
	}
	bigData := want["big.bin"].data
	if big.Digest != digest.Of(bigData) || big.Size != int64(len(bigData)) {
		t.Errorf("big.bin: got %s (%d bytes), want %s (%d bytes)", big.Digest, big.Size, digest.Of(bigData), len(bigData))
	}
	chunks, ok, err := r.Index.FileChunks(big.Digest)
	if err != nil || !ok || len(chunks) < 8 {
		t.Errorf("big.bin chunks: got %d (recorded %v, err %v), want at least 8", len(chunks), ok, err)
	}

	// The links directory's digest, recomputed from docs/FORMAT.md by hand.
	var enc strings.Builder
	enc.WriteString("cas-tree-v1\n")
	for _, name := range []string{"absolute", "dangling", "relative", "to-dir"} {
		target := want["links/"+name].target
		fmt.Fprintf(&enc, "link %s %d %d %s\n", digest.Of([]byte(target)).Hex(), len(target), len(name), name)
	}
	links, err := r.Resolve(ctx, res.Digest.String()+":links")
	if err != nil {
		t.Fatalf("Resolve links: %v", err)
	}
	if wantLinks := digest.Of([]byte(enc.String())); links.Digest != wantLinks {
		t.Errorf("links digest: got %s, want %s", links.Digest, wantLinks)
	}

	obj, err := r.Resolve(ctx, res.Digest.String())
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	dest := filepath.Join(t.TempDir(), "restored")
	rr, err := r.Restore(ctx, obj, dest, RestoreOptions{})
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if rr.Files != files {
		t.Errorf("Restore files: got %d, want %d", rr.Files, files)
	}
	compareSnapshots(t, snapshotDir(t, dest), want)
	if h := hashPath(t, dest); h != res.Digest {
		t.Errorf("Hash of the restored tree: got %s, want %s", h, res.Digest)
	}
	if rep, err := r.Verify(ctx, obj, "root", nil); err != nil || !rep.OK() {
		t.Errorf("Verify: got %+v, %v; want no problems", rep, err)
	}
}

// TestRepushUsesStatCache pushes a tree twice. Files modified within the
// racy window before a push are never trusted to the stat cache. The clock
// and mtimes are moved instead of sleeping (ctime cannot be faked, so the
// clock goes forward past it).
func TestRepushUsesStatCache(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// clock returns the start of the first push given the mtime all
		// files were set to.
		clock         func(mtime time.Time) time.Time
		change        func(t *testing.T, src string)
		wantUnchanged func(files int64) int64
		wantNew       int64
	}{
		{
			name:          "files older than the racy window",
			clock:         func(time.Time) time.Time { return time.Now().Add(ingest.RacyWindowCoarse + time.Second) },
			wantUnchanged: func(files int64) int64 { return files },
		},
		{
			name:          "files modified within the racy window",
			clock:         func(mtime time.Time) time.Time { return mtime.Add(ingest.RacyWindow / 2) },
			wantUnchanged: func(int64) int64 { return 0 },
		},
		{
			name:  "one file rewritten",
			clock: func(time.Time) time.Time { return time.Now().Add(ingest.RacyWindowCoarse + time.Second) },
			change: func(t *testing.T, src string) {
				if err := os.WriteFile(filepath.Join(src, "plain.txt"), pseudoRandom(3000, 77), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			wantUnchanged: func(files int64) int64 { return files - 1 },
			wantNew:       3000,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			r := newStoreForTest(t, 64<<10)
			src := filepath.Join(t.TempDir(), "src")
			entries := awkwardTree()
			writeGenTree(t, src, entries)
			mtime := time.Now().Truncate(time.Millisecond).Add(123 * time.Microsecond)
			for _, e := range entries {
				if e.kind.IsFile() {
					if err := os.Chtimes(filepath.Join(src, e.path), mtime, mtime); err != nil {
						t.Fatal(err)
					}
				}
			}
			start := tt.clock(mtime)
			r.Clock = clock.NewFake(start)
			first, err := r.Push(ctx, []string{src}, PushOptions{})
			if err != nil {
				t.Fatalf("first Push: %v", err)
			}
			r.Clock = clock.Real()
			if tt.change != nil {
				tt.change(t, src)
			}
			second, err := r.Push(ctx, []string{src}, PushOptions{})
			if err != nil {
				t.Fatalf("second Push: %v", err)
			}
			if second.NewBytes != tt.wantNew {
				t.Errorf("second Push NewBytes: got %d, want %d", second.NewBytes, tt.wantNew)
			}
			if want := tt.wantUnchanged(first.Files); second.Unchanged != want {
				t.Errorf("second Push Unchanged: got %d, want %d of %d files", second.Unchanged, want, second.Files)
			}
			if h := hashPath(t, src); second.Digest != h {
				t.Errorf("second Push digest: got %s, want Hash %s", second.Digest, h)
			}
			if tt.change == nil && second.Digest != first.Digest {
				t.Errorf("second Push digest: got %s, want the first %s", second.Digest, first.Digest)
			}
		})
	}
}

// chunkIDs returns the chunk IDs and sizes push stores for data.
func chunkIDs(c *Chunker, data []byte) map[digest.Digest]int {
	out := map[digest.Digest]int{}
	off := 0
	for _, n := range c.Cuts(data) {
		out[digest.Of(data[off:off+n])] = n
		off += n
	}
	return out
}

// TestPushDedup pushes a tree, then a copy with one change elsewhere on
// disk: only the chunks of the changed file that the store lacks are new.
func TestPushDedup(t *testing.T) {
	t.Parallel()
	base := func() map[string][]byte {
		m := map[string][]byte{
			"large.bin": pseudoRandom(4<<20, 10),
			"mid.bin":   pseudoRandom(1<<20, 11),
		}
		for i := range 50 {
			m["small/"+string(rune('a'+i%26))+string(rune('a'+i/26))] = pseudoRandom(2048, uint64(100+i))
		}
		return m
	}
	tests := []struct {
		name   string
		file   string
		change func(old []byte) []byte // nil: the file is removed
	}{
		{"unchanged copy", "", nil},
		{"bytes overwritten in the middle of a large file", "large.bin", func(b []byte) []byte {
			b = slices.Clone(b)
			copy(b[2<<20:], "sixteen new byte")
			return b
		}},
		{"bytes inserted near the start of a large file", "large.bin", func(b []byte) []byte {
			return slices.Concat(b[:10000], pseudoRandom(100, 5), b[10000:])
		}},
		{"bytes appended to a large file", "large.bin", func(b []byte) []byte {
			return slices.Concat(b, pseudoRandom(1000, 6))
		}},
		{"small file rewritten", "small/aa", func(b []byte) []byte { return pseudoRandom(len(b), 7) }},
		{"file added", "added.bin", func([]byte) []byte { return pseudoRandom(20000, 8) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			r := newStoreForTest(t, 64<<10)
			c := r.Chunker()
			files := base()
			write := func(root string, files map[string][]byte) {
				t.Helper()
				var es []genEntry
				for p, d := range files {
					es = append(es, genEntry{path: p, kind: KindFile, data: d})
				}
				writeGenTree(t, root, es)
			}
			srcA := filepath.Join(t.TempDir(), "a")
			write(srcA, files)
			if _, err := r.Push(ctx, []string{srcA}, PushOptions{}); err != nil {
				t.Fatalf("Push A: %v", err)
			}
			known := map[digest.Digest]int{}
			for _, d := range files {
				for id, n := range chunkIDs(c, d) {
					known[id] = n
				}
			}
			var wantNew int64
			if tt.file != "" {
				files[tt.file] = tt.change(files[tt.file])
				for id, n := range chunkIDs(c, files[tt.file]) {
					if _, ok := known[id]; !ok {
						wantNew += int64(n)
					}
				}
			}
			srcB := filepath.Join(t.TempDir(), "b")
			write(srcB, files)
			res, err := r.Push(ctx, []string{srcB}, PushOptions{})
			if err != nil {
				t.Fatalf("Push B: %v", err)
			}
			if res.NewBytes != wantNew {
				t.Errorf("NewBytes: got %d, want %d (the changed file's new chunks)", res.NewBytes, wantNew)
			}
			// Content-defined chunking confines a local edit to a few chunks.
			if limit := int64(3 * c.Params().Max); res.NewBytes > limit {
				t.Errorf("NewBytes: got %d, want at most %d", res.NewBytes, limit)
			}
			// Beside the new chunks, only trees, a pack trailer and an index segment.
			if limit := res.NewBytes + 32<<10; res.StoredBytes > limit {
				t.Errorf("StoredBytes: got %d, want at most %d", res.StoredBytes, limit)
			}
			if h := hashPath(t, srcB); res.Digest != h {
				t.Errorf("digest: got %s, want Hash %s", res.Digest, h)
			}
		})
	}
}

// pushWithin runs Push and fails the test if it does not return in time
// (reading a FIFO or a socket would block forever).
func pushWithin(t *testing.T, r *Repo, paths []string, opts PushOptions) (*PushResult, error) {
	t.Helper()
	type result struct {
		res *PushResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := r.Push(t.Context(), paths, opts)
		done <- result{res, err}
	}()
	select {
	case got := <-done:
		return got.res, got.err
	case <-time.After(30 * time.Second):
		t.Fatalf("Push(%q) did not return within 30s", paths)
		return nil, nil
	}
}

func TestPushMissingPath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.Symlink("nowhere", filepath.Join(dir, "dangling")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
	}{
		{"missing file", filepath.Join(dir, "missing")},
		{"missing parent", filepath.Join(dir, "no", "such", "file")},
		{"dangling symlink", filepath.Join(dir, "dangling")},
	}
	r := newStoreForTest(t, 64<<10)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := pushWithin(t, r, []string{tt.path}, PushOptions{})
			if !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Push: got %v, want an error wrapping fs.ErrNotExist", err)
			}
			var pe *fs.PathError
			if errors.As(err, &pe) && pe.Path != tt.path {
				t.Errorf("Push error path: got %q, want %q", pe.Path, tt.path)
			}
			if _, err := Hash(t.Context(), nil, []string{tt.path}, PushOptions{}); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Hash: got %v, want an error wrapping fs.ErrNotExist", err)
			}
		})
	}
}

// TestPushSkipsSpecialFiles: FIFOs, sockets and devices inside a tree are
// reported and skipped, never read (which would hang).
func TestPushSkipsSpecialFiles(t *testing.T) {
	t.Parallel()
	r := newStoreForTest(t, 64<<10)
	src := filepath.Join(t.TempDir(), "src")
	writeGenTree(t, src, []genEntry{
		{path: "keep.txt", kind: KindFile, data: []byte("kept\n")},
		{path: "sub/keep2.txt", kind: KindFile, data: []byte("kept too\n")},
	})
	plain := filepath.Join(t.TempDir(), "plain")
	writeGenTree(t, plain, []genEntry{
		{path: "keep.txt", kind: KindFile, data: []byte("kept\n")},
		{path: "sub/keep2.txt", kind: KindFile, data: []byte("kept too\n")},
	})
	var special []string
	fifo := filepath.Join(src, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	special = append(special, fifo)
	sock := filepath.Join(src, "sub", "sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	special = append(special, sock)
	if os.Geteuid() == 0 {
		dev := filepath.Join(src, "null-dev")
		if err := unix.Mknod(dev, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))); err == nil {
			special = append(special, dev)
		} else {
			t.Logf("no device node (%v); testing FIFO and socket only", err)
		}
	}
	slices.Sort(special)

	var mu sync.Mutex
	var warned []string
	opts := PushOptions{Warn: func(path string, err error) {
		mu.Lock()
		defer mu.Unlock()
		warned = append(warned, path)
		if !errors.Is(err, ErrSpecialFile) {
			t.Errorf("Warn(%s): got %v, want ErrSpecialFile", path, err)
		}
	}}
	res, err := pushWithin(t, r, []string{src}, opts)
	if err != nil {
		t.Fatalf("Push: %v", err)
	}
	skipped := slices.Sorted(slices.Values(res.Skipped))
	if !slices.Equal(skipped, special) {
		t.Errorf("Skipped: got %q, want %q", skipped, special)
	}
	slices.Sort(warned)
	if !slices.Equal(warned, special) {
		t.Errorf("warned about: got %q, want %q", warned, special)
	}
	if res.Files != 2 {
		t.Errorf("Files: got %d, want 2", res.Files)
	}
	if want := hashPath(t, plain); res.Digest != want {
		t.Errorf("digest: got %s, want %s (the tree without special files)", res.Digest, want)
	}

	t.Run("top-level FIFO", func(t *testing.T) {
		_, err := pushWithin(t, r, []string{fifo}, PushOptions{})
		if !errors.Is(err, ErrSpecialFile) {
			t.Errorf("Push: got %v, want ErrSpecialFile", err)
		}
	})
}

func TestPushSymlinkLoops(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	r := newStoreForTest(t, 64<<10)
	src := filepath.Join(t.TempDir(), "src")
	writeGenTree(t, src, []genEntry{
		{path: "self", kind: KindLink, target: "self"},
		{path: "a", kind: KindLink, target: "b"},
		{path: "b", kind: KindLink, target: "a"},
		{path: "up", kind: KindLink, target: "."},
		{path: "file.txt", kind: KindFile, data: []byte("x\n")},
	})
	want := snapshotDir(t, src)

	t.Run("inside the tree, stored as links", func(t *testing.T) {
		res, err := pushWithin(t, r, []string{src}, PushOptions{})
		if err != nil {
			t.Fatalf("Push: %v", err)
		}
		for _, name := range []string{"self", "a", "b", "up"} {
			obj, err := r.Resolve(ctx, res.Digest.String()+":"+name)
			if err != nil {
				t.Fatalf("Resolve %s: %v", name, err)
			}
			if obj.Kind != KindLink || obj.Digest != digest.Of([]byte(want[name].target)) {
				t.Errorf("%s: got %v %s, want a link to %q", name, obj.Kind, obj.Digest.Short(), want[name].target)
			}
		}
		obj, err := r.Resolve(ctx, res.Digest.String())
		if err != nil {
			t.Fatal(err)
		}
		dest := filepath.Join(t.TempDir(), "out")
		if _, err := r.Restore(ctx, obj, dest, RestoreOptions{}); err != nil {
			t.Fatalf("Restore: %v", err)
		}
		compareSnapshots(t, snapshotDir(t, dest), want)
	})

	for _, name := range []string{"self", "a"} {
		t.Run("top-level loop "+name, func(t *testing.T) {
			_, err := pushWithin(t, r, []string{filepath.Join(src, name)}, PushOptions{})
			if !errors.Is(err, syscall.ELOOP) {
				t.Errorf("Push: got %v, want an error wrapping ELOOP", err)
			}
		})
	}
}

// TestPushFileChangingWhileRead pushes a large file that another goroutine
// keeps writing. Push may give up with ErrFileChanged; if it succeeds, the
// digest it reports must be that of the bytes it stored.
func TestPushFileChangingWhileRead(t *testing.T) {
	t.Parallel()
	size := 50 << 20
	if testing.Short() {
		size = 8 << 20
	}
	const block = 4 << 10
	appendBlock := func(f *os.File, i int) error {
		_, err := f.Write(bytes.Repeat([]byte{byte(i)}, block))
		return err
	}
	overwriteBlock := func(f *os.File, i int) error {
		_, err := f.WriteAt(bytes.Repeat([]byte{byte(i)}, block), int64(i*7919*block%(4<<20)))
		return err
	}
	tests := []struct {
		name      string
		size      int
		flags     int
		write     func(f *os.File, i int) error
		maxWrites int // 0: until Push returns
	}{
		{"appended to", size, os.O_WRONLY | os.O_APPEND, appendBlock, 0},
		{"overwritten in place", 8 << 20, os.O_WRONLY, overwriteBlock, 0},
		// A file that settles while Push retries: Push should succeed.
		{"appended to briefly", 8 << 20, os.O_WRONLY | os.O_APPEND, appendBlock, 10},
		{"overwritten in place briefly", 8 << 20, os.O_WRONLY, overwriteBlock, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			r := newStoreForTest(t, DefaultChunkAvg)
			src := filepath.Join(t.TempDir(), "src")
			writeGenTree(t, src, []genEntry{
				{path: "moving.bin", kind: KindFile, data: pseudoRandom(tt.size, 3)},
				{path: "still.txt", kind: KindFile, data: []byte("still\n")},
			})
			f, err := os.OpenFile(filepath.Join(src, "moving.bin"), tt.flags, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var writes int
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						writes = i
						return
					default:
					}
					if tt.maxWrites > 0 && i >= tt.maxWrites {
						writes = i
						<-stop
						return
					}
					if err := tt.write(f, i); err != nil {
						t.Errorf("writer: %v", err)
						return
					}
					time.Sleep(time.Millisecond)
				}
			}()
			time.Sleep(3 * time.Millisecond) // let the writer start
			res, err := pushWithin(t, r, []string{src}, PushOptions{})
			close(stop)
			wg.Wait()
			t.Logf("writer made %d writes during the push", writes)
			if err != nil {
				if !errors.Is(err, ErrFileChanged) {
					t.Fatalf("Push: got %v, want success or ErrFileChanged", err)
				}
				t.Logf("Push gave up: %v", err)
			} else {
				t.Logf("Push succeeded: %s", res.Digest)
				obj, err := r.Resolve(ctx, res.Digest.String()+":moving.bin")
				if err != nil {
					t.Fatalf("Resolve: %v", err)
				}
				var buf bytes.Buffer
				if err := r.WriteFile(ctx, obj, &buf); err != nil {
					t.Fatalf("WriteFile: %v", err)
				}
				if got := digest.Of(buf.Bytes()); got != obj.Digest || int64(buf.Len()) != obj.Size {
					t.Errorf("stored bytes: got %s (%d bytes), want the pushed %s (%d bytes)", got, buf.Len(), obj.Digest, obj.Size)
				}
				dest := filepath.Join(t.TempDir(), "out")
				if _, err := r.Restore(ctx, obj, dest, RestoreOptions{}); err != nil {
					t.Fatalf("Restore: %v", err)
				}
				got, err := os.ReadFile(dest)
				if err != nil {
					t.Fatal(err)
				}
				if digest.Of(got) != obj.Digest {
					t.Errorf("restored bytes: got %s, want %s", digest.Of(got), obj.Digest)
				}
			}
			rep, err := r.VerifyAll(ctx, nil)
			if err != nil || !rep.OK() {
				t.Errorf("VerifyAll: got %+v, %v; want no problems", rep, err)
			}
		})
	}
}

// The progress totals of a push, counted ahead of it or as it goes, come
// to what it pushed: every file and its bytes, excluded paths and the
// store's own directory left out as the push leaves them out.
func TestPushProgressTotals(t *testing.T) {
	t.Parallel()
	for _, ahead := range []bool{false, true} {
		t.Run(fmt.Sprintf("CountAhead=%v", ahead), func(t *testing.T) {
			t.Parallel()
			r := newStoreForTest(t, 64<<10)
			src := filepath.Join(t.TempDir(), "src")
			writeGenTree(t, src, append(awkwardTree(),
				genEntry{path: "skip.tmp", kind: KindFile, data: []byte("excluded\n")},
				genEntry{path: "small/.casignore", kind: KindFile, data: []byte("d3/\n")},
				genEntry{path: DirName + "/config", kind: KindFile, data: []byte("another store\n")}))
			prog := &Progress{CountAhead: ahead}
			res, err := r.Push(t.Context(), []string{src}, PushOptions{Progress: prog, Excludes: []string{"*.tmp"}})
			if err != nil {
				t.Fatal(err)
			}
			want, err := Hash(t.Context(), nil, []string{src}, PushOptions{Excludes: []string{"*.tmp"}})
			if err != nil {
				t.Fatal(err)
			}
			if res.Digest != want.Digest {
				t.Fatalf("digest %s, want %s", res.Digest, want.Digest)
			}
			for _, c := range []struct {
				what      string
				got, want int64
			}{
				{"TotalFiles", prog.TotalFiles.Load(), res.Files},
				{"Files", prog.Files.Load(), res.Files},
				{"TotalBytes", prog.TotalBytes.Load(), res.Bytes - 48}, // not the links' 48 bytes
				{"Bytes", prog.Bytes.Load(), res.Bytes - 48},
			} {
				if c.got != c.want {
					t.Errorf("%s: got %d, want %d", c.what, c.got, c.want)
				}
			}
			// awkwardTree's 309 files and small/.casignore, less d3's 30.
			if res.Files != 280 {
				t.Errorf("pushed %d files, want 280", res.Files)
			}
		})
	}
}

// A ref is written only with a target a reader would accept: the same
// check as a ref read back (the offline sync replays refs from files
// under .cas/pending/, which anything may have edited).
func TestSetRefRefusesInvalidTarget(t *testing.T) {
	t.Parallel()
	r := newStoreForTest(t, 64<<10)
	ctx := t.Context()
	ids, err := r.PutObjects(ctx, []byte("some data"))
	if err != nil {
		t.Fatal(err)
	}
	obj := Object{Digest: ids[0], Kind: KindFile, Size: 9}
	if _, err := r.SetRef(ctx, "good", obj); err != nil {
		t.Fatalf("a valid target: %v", err)
	}
	for _, bad := range []Object{
		{Digest: obj.Digest, Kind: KindLink, Size: obj.Size},
		{Digest: obj.Digest, Kind: obj.Kind, Size: obj.Size, Type: "bogus"},
		{Digest: obj.Digest, Kind: obj.Kind, Size: -1},
		{Kind: obj.Kind, Size: obj.Size},
	} {
		if _, err := r.SetRef(ctx, "evil", bad); !errors.Is(err, ErrInvalidObject) {
			t.Errorf("SetRef(%+v): got %v, want ErrInvalidObject", bad, err)
		}
	}
	if _, err := r.GetRef(ctx, "evil"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the ref was written: %v", err)
	}
}

// Publish without a ref reports an object as published only once the
// remote is checked to hold its closure: an upload owed since an offline
// push whose data a gc took meanwhile is an error, not a success.
func TestPublishWithoutRefChecksTheClosure(t *testing.T) {
	t.Parallel()
	r := newStoreForTest(t, 64<<10)
	ctx := t.Context()
	ids, err := r.PutObjects(ctx, []byte("kept"))
	if err != nil {
		t.Fatal(err)
	}
	mem := remote.NewMem()
	if _, err := r.Publish(ctx, mem, "", Object{Digest: ids[0], Kind: KindFile, Size: 4}, nil); err != nil {
		t.Fatalf("a stored object: %v", err)
	}
	gone := Object{Digest: digest.Of([]byte("collected")), Kind: KindFile, Size: 9}
	if _, err := r.Publish(ctx, mem, "", gone, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("an object the store no longer holds: got %v, want ErrNotFound", err)
	}
}
