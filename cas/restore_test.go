package cas

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
	"github.com/cas-ml/cas/remote"
)

// rawEntry is a tree entry written without any validation.
type rawEntry struct {
	kind string
	id   digest.Digest
	size int64
	name string
}

// rawTree encodes entries in the tree format as given: unsorted,
// repeated or invalid names stay as they are.
func rawTree(entries ...rawEntry) []byte {
	var b bytes.Buffer
	b.WriteString(format.TreeMagic)
	for _, e := range entries {
		fmt.Fprintf(&b, "%s %s %d %d %s\n", e.kind, e.id.Hex(), e.size, len(e.name), e.name)
	}
	return b.Bytes()
}

// rawBlob is a blob to store as is.
type rawBlob struct {
	typ  uint8
	data []byte
}

// putRawBlobs writes blobs into a new pack, bypassing every check push
// makes, and records them in the index. It returns their IDs.
func putRawBlobs(t *testing.T, r *Repo, blobs ...rawBlob) []digest.Digest {
	t.Helper()
	pb := format.NewPackBuilder()
	ids := make([]digest.Digest, len(blobs))
	for i, b := range blobs {
		ids[i] = digest.Of(b.data)
		pb.Add(index.Blob{ID: ids[i], RawLen: uint32(len(b.data)), Codec: index.CodecNone, Type: b.typ}, b.data)
	}
	data, id, recs := pb.Finish()
	err := r.Backend.Put(t.Context(), format.PackKey(id), bytes.NewReader(data), int64(len(data)), remote.PutOptions{})
	if err != nil {
		t.Fatalf("put pack: %v", err)
	}
	// The index learns blobs from segments only, as a push does.
	if _, err := r.writeSegment(t.Context(), recs, nil); err != nil {
		t.Fatalf("write segment: %v", err)
	}
	return ids
}

// validTree encodes a valid tree.
func validTree(t *testing.T, entries ...TreeEntry) []byte {
	t.Helper()
	tr := &Tree{Entries: entries}
	tr.Sort()
	enc, err := tr.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

// TestRestoreRefusesBadTrees restores stored trees that name "..", "/abs",
// "a/b" and other entries Encode never writes: Restore must refuse them
// and write nothing outside DEST.
func TestRestoreRefusesBadTrees(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	r := newStoreForTest(t, 64<<10)
	payload := []byte("escaped\n")
	ids := putRawBlobs(t, r, rawBlob{index.TypeData, payload})
	fileID, fileSize := ids[0], int64(len(payload))
	// A valid tree holding a file "escaped": the bait behind a ".." entry.
	bait := validTree(t, TreeEntry{Name: "escaped", Kind: KindFile, Size: fileSize, Digest: fileID})
	baitID := putRawBlobs(t, r, rawBlob{index.TypeTree, bait})[0]
	empty := putRawBlobs(t, r, rawBlob{index.TypeTree, validTree(t)})[0]

	// absName is filled in per subtest: the absolute path of a file
	// beside DEST.
	tests := []struct {
		name    string
		entries func(absName string) []rawEntry
		garbage []byte // instead of entries
		want    error
	}{
		{"dotdot dir", func(string) []rawEntry {
			return []rawEntry{{"dir", baitID, fileSize, ".."}}
		}, nil, ErrBadName},
		{"dot dir", func(string) []rawEntry {
			return []rawEntry{{"dir", baitID, fileSize, "."}}
		}, nil, ErrBadName},
		{"dotdot slash name", func(string) []rawEntry {
			return []rawEntry{{"file", fileID, fileSize, "../escaped"}}
		}, nil, ErrBadName},
		{"name with a slash", func(string) []rawEntry {
			return []rawEntry{{"dir", empty, 0, "a"}, {"file", fileID, fileSize, "a/b"}}
		}, nil, ErrBadName},
		{"absolute name", func(abs string) []rawEntry {
			return []rawEntry{{"file", fileID, fileSize, abs}}
		}, nil, ErrBadName},
		{"absolute link name", func(abs string) []rawEntry {
			return []rawEntry{{"link", fileID, fileSize, abs}}
		}, nil, ErrBadName},
		{"empty name", func(string) []rawEntry {
			return []rawEntry{{"file", fileID, fileSize, ""}}
		}, nil, ErrBadName},
		{"NUL in name", func(string) []rawEntry {
			return []rawEntry{{"file", fileID, fileSize, "a\x00b"}}
		}, nil, ErrBadName},
		{"repeated name", func(string) []rawEntry {
			return []rawEntry{{"file", fileID, fileSize, "x"}, {"dir", baitID, fileSize, "x"}}
		}, nil, ErrBadTree},
		{"unsorted names", func(string) []rawEntry {
			return []rawEntry{{"file", fileID, fileSize, "b"}, {"file", fileID, fileSize, "a"}}
		}, nil, ErrBadTree},
		{"unknown kind", func(string) []rawEntry {
			return []rawEntry{{"fifo", fileID, fileSize, "p"}}
		}, nil, ErrBadTree},
		{"no header", nil, []byte("file " + fileID.Hex() + " 8 1 x\n"), ErrBadTree},
	}
	for _, tt := range tests {
		for _, nested := range []bool{false, true} {
			for _, force := range []bool{false, true} {
				name := fmt.Sprintf("%s/nested=%v/force=%v", tt.name, nested, force)
				t.Run(name, func(t *testing.T) {
					parent := t.TempDir()
					dest := filepath.Join(parent, "dest")
					abs := filepath.Join(parent, "escaped")
					enc := tt.garbage
					if enc == nil {
						enc = rawTree(tt.entries(abs)...)
					}
					bad := putRawBlobs(t, r, rawBlob{index.TypeTree, enc})[0]
					obj := &Object{Digest: bad, Kind: KindDir, Size: fileSize}
					wantPath := "."
					if nested {
						top := validTree(t,
							TreeEntry{Name: "ok.txt", Kind: KindFile, Size: fileSize, Digest: fileID},
							TreeEntry{Name: "sub", Kind: KindDir, Size: fileSize, Digest: bad})
						obj.Digest = putRawBlobs(t, r, rawBlob{index.TypeTree, top})[0]
						obj.Size = 2 * fileSize
						wantPath = "sub"
					}
					if force {
						writeGenTree(t, dest, []genEntry{{path: "existing.txt", kind: KindFile, data: []byte("keep\n")}})
					}
					before := listDir(t, parent)

					_, err := r.Restore(ctx, obj, dest, RestoreOptions{Force: force})
					if !errors.Is(err, tt.want) {
						t.Errorf("Restore: got %v, want %v", err, tt.want)
					}
					if after := listDir(t, parent); !slices.Equal(after, before) {
						t.Errorf("beside DEST: got %q, want %q", after, before)
					}
					if force {
						got, err := os.ReadFile(filepath.Join(dest, "existing.txt"))
						if err != nil || string(got) != "keep\n" {
							t.Errorf("existing.txt: got %q, %v; want %q", got, err, "keep\n")
						}
					} else if _, err := os.Lstat(dest); !errors.Is(err, fs.ErrNotExist) {
						t.Errorf("DEST after a failed restore: got %v, want it absent", err)
					}

					rep, err := r.Verify(ctx, obj, "bad", nil)
					if err != nil {
						t.Fatalf("Verify: %v", err)
					}
					if len(rep.Problems) != 1 || rep.Problems[0].Path != wantPath {
						t.Errorf("Verify problems: got %+v, want one at %q", rep.Problems, wantPath)
					}
				})
			}
		}
	}
}

// pushTree writes entries below a new directory and pushes it.
func pushTree(t *testing.T, r *Repo, entries []genEntry) (string, *Object) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	writeGenTree(t, src, entries)
	res, err := r.Push(t.Context(), []string{src}, PushOptions{})
	if err != nil {
		t.Fatalf("Push: %v", err)
	}
	return src, &Object{Digest: res.Digest, Kind: res.Kind, Size: res.Bytes}
}

func TestRestoreDestNotEmpty(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	r := newStoreForTest(t, 64<<10)
	tree := []genEntry{
		{path: "a.txt", kind: KindFile, data: []byte("a\n")},
		{path: "sub/b.txt", kind: KindFile, data: []byte("b\n")},
	}
	src, obj := pushTree(t, r, tree)
	want := snapshotDir(t, src)
	fileObj, err := r.Resolve(ctx, obj.Digest.String()+":a.txt")
	if err != nil {
		t.Fatal(err)
	}
	existing := []genEntry{{path: "mine.txt", kind: KindFile, data: []byte("mine\n")}}

	tests := []struct {
		name    string
		obj     *Object
		prepare func(t *testing.T, dest string)
		force   bool
		fails   bool  // Restore must fail
		want    error // and its error wrap this, if set
		// after lists what DEST holds beside the restored tree.
		after []genEntry
	}{
		{name: "missing", obj: obj, prepare: func(*testing.T, string) {}},
		{name: "empty directory", obj: obj, prepare: func(t *testing.T, dest string) {
			writeGenTree(t, dest, nil)
		}},
		{name: "non-empty directory", obj: obj, prepare: func(t *testing.T, dest string) {
			writeGenTree(t, dest, existing)
		}, fails: true, want: ErrDestNotEmpty, after: existing},
		{name: "non-empty directory with force", obj: obj, force: true, prepare: func(t *testing.T, dest string) {
			writeGenTree(t, dest, existing)
		}, after: existing},
		{name: "directory holding only an empty directory", obj: obj, prepare: func(t *testing.T, dest string) {
			writeGenTree(t, dest, []genEntry{{path: "d", kind: KindDir}})
		}, fails: true, want: ErrDestNotEmpty, after: []genEntry{{path: "d", kind: KindDir}}},
		{name: "regular file", obj: obj, force: true, prepare: func(t *testing.T, dest string) {
			if err := os.WriteFile(dest, []byte("mine\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, fails: true},
		{name: "symlink to an empty directory", obj: obj, force: true, prepare: func(t *testing.T, dest string) {
			target := filepath.Join(filepath.Dir(dest), "elsewhere")
			writeGenTree(t, target, nil)
			if err := os.Symlink(target, dest); err != nil {
				t.Fatal(err)
			}
		}, fails: true},
		{name: "file over an existing file", obj: fileObj, prepare: func(t *testing.T, dest string) {
			if err := os.WriteFile(dest, []byte("mine\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, fails: true, want: ErrDestExists},
		{name: "file into a directory where its name is taken", obj: fileObj, prepare: func(t *testing.T, dest string) {
			writeGenTree(t, dest, []genEntry{{path: "a.txt", kind: KindFile, data: []byte("mine\n")}})
		}, fails: true, want: ErrDestExists},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := t.TempDir()
			dest := filepath.Join(parent, "dest")
			tt.prepare(t, dest)
			beforeParent := snapshotDir(t, parent)

			_, err := r.Restore(ctx, tt.obj, dest, RestoreOptions{Force: tt.force})
			switch {
			case !tt.fails && err != nil:
				t.Fatalf("Restore: got %v, want success", err)
			case tt.fails && err == nil:
				t.Fatalf("Restore: got success, want an error")
			case tt.want != nil && !errors.Is(err, tt.want):
				t.Fatalf("Restore: got %v, want %v", err, tt.want)
			}
			var de *DestError
			if tt.want != nil && (!errors.As(err, &de) || !strings.HasPrefix(de.Path, dest)) {
				t.Fatalf("Restore: got %v, want a DestError at or under %s", err, dest)
			}
			if err != nil {
				// Refused: nothing changed, DEST included.
				compareSnapshots(t, snapshotDir(t, parent), beforeParent)
				return
			}
			wantDest := snapshotDir(t, func() string {
				d := filepath.Join(t.TempDir(), "want")
				writeGenTree(t, d, tt.after)
				return d
			}())
			for k, v := range want {
				wantDest[k] = v
			}
			compareSnapshots(t, snapshotDir(t, dest), wantDest)
		})
	}
}

// TestRestoreForceDoesNotFollowSymlinks restores with Force into a DEST
// where symlinks pointing outside stand in place of the tree's entries:
// Restore replaces them and never writes through them.
func TestRestoreForceDoesNotFollowSymlinks(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	r := newStoreForTest(t, 64<<10)
	tree := []genEntry{
		{path: "data/f.txt", kind: KindFile, data: []byte("f\n")},
		{path: "data/big.bin", kind: KindFile, data: pseudoRandom(1<<20, 9)},
		{path: "top.txt", kind: KindFile, data: []byte("top\n")},
		{path: "link", kind: KindLink, target: "top.txt"},
		{path: "a/b/c.txt", kind: KindFile, data: []byte("c\n")},
		{path: "e/empty", kind: KindDir},
	}
	src, obj := pushTree(t, r, tree)
	want := snapshotDir(t, src)

	tests := []struct {
		name    string
		realDir string // made before the symlink, "" for none
		link    string // the symlink planted in DEST
		toFile  bool   // it points at the outside file, else the outside dir
	}{
		{name: "directory", link: "data", toFile: false},
		{name: "nested directory", realDir: "a", link: "a/b", toFile: false},
		{name: "empty directory", realDir: "e", link: "e/empty", toFile: false},
		{name: "file", link: "top.txt", toFile: true},
		{name: "file inside a directory", realDir: "data", link: "data/f.txt", toFile: true},
		{name: "large file inside a directory", realDir: "data", link: "data/big.bin", toFile: true},
		{name: "link", link: "link", toFile: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			outDir := filepath.Join(base, "outside")
			outFile := filepath.Join(base, "outside.txt")
			writeGenTree(t, outDir, nil)
			if err := os.WriteFile(outFile, []byte("outside\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			dest := filepath.Join(base, "dest")
			writeGenTree(t, dest, []genEntry{{path: "unrelated.txt", kind: KindFile, data: []byte("u\n")}})
			if tt.realDir != "" {
				writeGenTree(t, filepath.Join(dest, tt.realDir), nil)
			}
			target := outDir
			if tt.toFile {
				target = outFile
			}
			if err := os.Symlink(target, filepath.Join(dest, filepath.FromSlash(tt.link))); err != nil {
				t.Fatal(err)
			}

			if _, err := r.Restore(ctx, obj, dest, RestoreOptions{Force: true}); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			if got := listDir(t, outDir); len(got) != 0 {
				t.Errorf("outside directory: got %q, want it empty", got)
			}
			if got, err := os.ReadFile(outFile); err != nil || string(got) != "outside\n" {
				t.Errorf("outside file: got %q, %v; want %q", got, err, "outside\n")
			}
			wantDest := map[string]fsNode{"unrelated.txt": {kind: KindFile, data: []byte("u\n")}}
			for k, v := range want {
				wantDest[k] = v
			}
			compareSnapshots(t, snapshotDir(t, dest), wantDest)
		})
	}

	t.Run("single file over a symlink", func(t *testing.T) {
		base := t.TempDir()
		outFile := filepath.Join(base, "outside.txt")
		if err := os.WriteFile(outFile, []byte("outside\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		dest := filepath.Join(base, "top.txt")
		if err := os.Symlink(outFile, dest); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Restore(ctx, lookup(t, r, obj, "top.txt"), dest, RestoreOptions{Force: true}); err != nil {
			t.Fatalf("Restore: %v", err)
		}
		if got, err := os.ReadFile(outFile); err != nil || string(got) != "outside\n" {
			t.Errorf("outside file: got %q, %v; want %q", got, err, "outside\n")
		}
		compareSnapshots(t, snapshotDir(t, base), map[string]fsNode{
			"outside.txt": {kind: KindFile, data: []byte("outside\n")},
			"top.txt":     want["top.txt"],
		})
	})
}

// flipStoredByte inverts one byte in the middle of a blob's stored bytes.
func flipStoredByte(t *testing.T, r *Repo, b index.Blob) {
	t.Helper()
	pt, ok := r.Backend.(pather)
	if !ok {
		t.Fatalf("backend %T has no file paths", r.Backend)
	}
	path, err := pt.Path(format.PackKey(b.Pack))
	if err != nil {
		t.Fatal(err)
	}
	flipAt(t, path, int64(b.Offset)+int64(b.Length)/2)
}

// TestRestoreDetectsCorruption flips a byte in a pack: Restore refuses to
// write wrong bytes and leaves no DEST; Verify names the damaged path;
// VerifyAll names the pack.
func TestRestoreDetectsCorruption(t *testing.T) {
	t.Parallel()
	text := []byte(strings.Repeat("the quick brown fox jumps over the lazy dog\n", 5000))
	tree := []genEntry{
		{path: "small.bin", kind: KindFile, data: pseudoRandom(20000, 21)},
		{path: "large.bin", kind: KindFile, data: pseudoRandom(2<<20, 22)},
		{path: "text.txt", kind: KindFile, data: text},
		{path: "sub/deep.txt", kind: KindFile, data: []byte("deep\n")},
		{path: "ok.bin", kind: KindFile, data: pseudoRandom(30000, 23)},
		{path: "model.safetensors", kind: KindFile, data: bf16Safetensors(t, 1<<20, 24)},
	}
	tests := []struct {
		name string
		path string // the damaged file or directory
		// blob picks the blob to damage.
		blob func(t *testing.T, r *Repo, obj *Object) index.Blob
	}{
		{"single-chunk file", "small.bin", func(t *testing.T, r *Repo, obj *Object) index.Blob {
			return blobOf(t, r, lookup(t, r, obj, "small.bin").Digest)
		}},
		{"chunk of a multi-chunk file", "large.bin", func(t *testing.T, r *Repo, obj *Object) index.Blob {
			chunks, ok, err := r.Index.FileChunks(lookup(t, r, obj, "large.bin").Digest)
			if err != nil || !ok || len(chunks) < 2 {
				t.Fatalf("large.bin chunks: got %d, %v, %v; want several", len(chunks), ok, err)
			}
			return blobOf(t, r, chunks[len(chunks)/2])
		}},
		{"compressed chunk", "text.txt", func(t *testing.T, r *Repo, obj *Object) index.Blob {
			d := lookup(t, r, obj, "text.txt").Digest
			chunks, ok, err := r.Index.FileChunks(d)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				chunks = []digest.Digest{d}
			}
			for _, c := range chunks {
				if b := blobOf(t, r, c); b.Codec == index.CodecZstd {
					return b
				}
			}
			t.Fatal("text.txt has no compressed chunk")
			return index.Blob{}
		}},
		{"float-coded chunk", "model.safetensors", func(t *testing.T, r *Repo, obj *Object) index.Blob {
			chunks, ok, err := r.Index.FileChunks(lookup(t, r, obj, "model.safetensors").Digest)
			if err != nil || !ok {
				t.Fatalf("model.safetensors chunks: %v, %v", ok, err)
			}
			for _, c := range chunks[len(chunks)/2:] {
				if b := blobOf(t, r, c); b.Codec == index.CodecFloat {
					return b
				}
			}
			t.Fatal("model.safetensors has no float-coded chunk")
			return index.Blob{}
		}},
		{"tree", "sub", func(t *testing.T, r *Repo, obj *Object) index.Blob {
			return blobOf(t, r, lookup(t, r, obj, "sub").Digest)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			r := newStoreForTest(t, 64<<10)
			_, obj := pushTree(t, r, tree)
			if _, err := r.SetRef(ctx, "data", *obj); err != nil {
				t.Fatal(err)
			}
			damaged := tt.blob(t, r, obj)
			flipStoredByte(t, r, damaged)

			parent := t.TempDir()
			dest := filepath.Join(parent, "dest")
			_, err := r.Restore(ctx, obj, dest, RestoreOptions{})
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("Restore: got %v, want a *CorruptError", err)
			}
			if ce.Path != tt.path {
				t.Errorf("CorruptError.Path: got %q, want %q", ce.Path, tt.path)
			}
			if got := listDir(t, parent); len(got) != 0 {
				t.Errorf("after a failed restore: got %q beside DEST, want nothing (not even DEST)", got)
			}
			// Into an existing empty DEST: it stays, empty.
			if err := os.Mkdir(dest, 0o755); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Restore(ctx, obj, dest, RestoreOptions{}); !errors.As(err, &ce) {
				t.Errorf("Restore into an empty DEST: got %v, want a *CorruptError", err)
			}
			if got := listDir(t, dest); len(got) != 0 {
				t.Errorf("empty DEST after a failed restore: got %q, want it empty", got)
			}
			if err := os.Remove(dest); err != nil {
				t.Fatal(err)
			}

			if tt.path != "sub" { // a single file, restored and streamed alone
				file := lookup(t, r, obj, tt.path)
				fdest := filepath.Join(parent, "file")
				if _, err := r.Restore(ctx, file, fdest, RestoreOptions{}); !errors.As(err, &ce) {
					t.Errorf("Restore of %s alone: got %v, want a *CorruptError", tt.path, err)
				}
				if got := listDir(t, parent); len(got) != 0 {
					t.Errorf("after a failed file restore: got %q, want nothing", got)
				}
				if err := r.WriteFile(ctx, file, &bytes.Buffer{}); !errors.As(err, &ce) {
					t.Errorf("WriteFile of %s: got %v, want a *CorruptError", tt.path, err)
				}
			}

			rep, err := r.Verify(ctx, obj, "data", nil)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got := problemPaths(rep); !slices.Equal(got, []string{tt.path}) {
				t.Errorf("Verify problems: got %q, want %q", got, []string{tt.path})
			}
			all, err := r.VerifyAll(ctx, nil)
			if err != nil {
				t.Fatalf("VerifyAll: %v", err)
			}
			wantAll := []string{"data:" + tt.path, format.PackKey(damaged.Pack)}
			slices.Sort(wantAll)
			if got := problemPaths(all); !slices.Equal(got, wantAll) {
				t.Errorf("VerifyAll problems: got %q, want %q", got, wantAll)
			}
		})
	}
}

func lookup(t *testing.T, r *Repo, obj *Object, path string) *Object {
	t.Helper()
	o, err := r.Lookup(t.Context(), obj, path)
	if err != nil {
		t.Fatalf("Lookup %s: %v", path, err)
	}
	return o
}

func blobOf(t *testing.T, r *Repo, id digest.Digest) index.Blob {
	t.Helper()
	b, ok, err := r.Index.Blob(id)
	if err != nil || !ok {
		t.Fatalf("blob %s: got %v, %v; want it indexed", id.Short(), ok, err)
	}
	return b
}

func problemPaths(rep *VerifyReport) []string {
	var out []string
	for _, p := range rep.Problems {
		out = append(out, p.Path)
	}
	return out
}

// mountTmpfs mounts a tmpfs of the given size ("2m") on a new directory,
// unmounted when the test ends. It needs root: it skips otherwise, except
// in CI (CI=true), where the test must run.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	ci := os.Getenv("CI") == "true"
	if os.Geteuid() != 0 {
		if ci {
			t.Fatal("this test mounts a tmpfs: run it as root in CI")
		}
		t.Skip("needs root to mount a tmpfs")
	}
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		if ci {
			t.Fatalf("mount tmpfs: %v", err)
		}
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// TestRestoreFullDisk restores a 4 MiB file into a 2 MiB filesystem: the
// error wraps ENOSPC and neither a short file nor a temporary one remains.
func TestRestoreFullDisk(t *testing.T) {
	t.Parallel()
	big := pseudoRandom(4<<20, 31)
	tree := []genEntry{
		{path: "a.txt", kind: KindFile, data: []byte("a\n")},
		{path: "big.bin", kind: KindFile, data: big},
	}
	tests := []struct {
		name  string
		avg   int  // chunk average: 1 MiB keeps big.bin in one chunk
		file  bool // restore big.bin alone, else the tree
		dest  string
		force bool
	}{
		{name: "multi-chunk file", avg: 64 << 10, file: true, dest: "big.bin"},
		{name: "single-chunk file", avg: 1 << 20, file: true, dest: "big.bin"},
		{name: "file into a directory", avg: 64 << 10, file: true, dest: "./"},
		{name: "tree", avg: 64 << 10, dest: "out"},
		{name: "tree into the empty mount point", avg: 64 << 10, dest: ""},
		{name: "tree in place", avg: 64 << 10, dest: "out", force: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			mnt := mountTmpfs(t, "2m")
			r := newStoreForTest(t, tt.avg)
			_, obj := pushTree(t, r, tree)
			if tt.file {
				obj = lookup(t, r, obj, "big.bin")
			}
			if tt.force {
				writeGenTree(t, filepath.Join(mnt, tt.dest), []genEntry{{path: "keep.txt", kind: KindFile, data: []byte("keep\n")}})
			}
			dest := filepath.Join(mnt, tt.dest)
			if strings.HasSuffix(tt.dest, "/") {
				dest += "/" // DEST names the directory to put the file in
			}
			_, err := r.Restore(ctx, obj, dest, RestoreOptions{Force: tt.force})
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("Restore: got %v, want an error wrapping ENOSPC", err)
			}
			var left []string
			err = filepath.WalkDir(mnt, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if p != mnt {
					rel, _ := filepath.Rel(mnt, p)
					left = append(left, rel)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			if tt.force {
				// In place, files restored before the disk filled may stay.
				want = []string{"out", "out/keep.txt"}
				left = slices.DeleteFunc(left, func(p string) bool { return p == "out/a.txt" })
			}
			if !slices.Equal(left, want) {
				t.Errorf("left on the full disk: got %q, want %q", left, want)
			}
		})
	}
}

// TestRestoreIntoEmptyMountPoint restores a tree into an empty directory
// that is the root of another filesystem (a freshly mounted volume).
func TestRestoreIntoEmptyMountPoint(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	mnt := mountTmpfs(t, "16m")
	r := newStoreForTest(t, 64<<10)
	src, obj := pushTree(t, r, []genEntry{
		{path: "a.txt", kind: KindFile, data: []byte("a\n")},
		{path: "sub/b.bin", kind: KindFile, data: pseudoRandom(1<<20, 41)},
	})
	if _, err := r.Restore(ctx, obj, mnt, RestoreOptions{}); err != nil {
		t.Fatalf("Restore into the empty mount point %s: %v", mnt, err)
	}
	compareSnapshots(t, snapshotDir(t, mnt), snapshotDir(t, src))
	if got := listDir(t, filepath.Dir(mnt)); !slices.Equal(got, []string{"mnt"}) {
		t.Errorf("beside the mount point: got %q, want only %q", got, "mnt")
	}
}

// bf16Safetensors returns a safetensors file of one BF16 tensor of n
// elements drawn like trained weights (normal, std 0.02).
func bf16Safetensors(t testing.TB, n int, seed uint64) []byte {
	t.Helper()
	hdr := fmt.Sprintf(`{"w":{"dtype":"BF16","shape":[%d],"data_offsets":[0,%d]}}`, n, 2*n)
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(hdr)))
	out = append(out, hdr...)
	r := rand.New(rand.NewPCG(seed, 1))
	for range n {
		out = binary.LittleEndian.AppendUint16(out, uint16(math.Float32bits(float32(0.02*r.NormFloat64()))>>16))
	}
	return out
}
