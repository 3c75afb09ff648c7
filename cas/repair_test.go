package cas

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/remote"
)

// Damage done to a store behind cas's back (a pack deleted or flipped, an
// index segment deleted) is never reported as intact, and pushing the
// intact source again repairs it: the index is a cache, never the proof
// that data is stored.
func TestRepairByPushingAgain(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// damage harms the store at dir; the store is closed meanwhile.
		damage func(t *testing.T, dir string)
		// restored: the data itself was lost, so pushing again stores
		// bytes anew (a lost segment only costs the chunk lists, which
		// the push writes again over the chunks the packs still hold).
		restored bool
	}{
		{"pack deleted", func(t *testing.T, dir string) {
			for _, p := range storeFiles(t, dir, format.PackPrefix) {
				mustRemove(t, p)
			}
		}, true},
		{"pack damaged", func(t *testing.T, dir string) {
			for _, p := range storeFiles(t, dir, format.PackPrefix) {
				flipAt(t, p, 20000)
			}
		}, true},
		{"index segment deleted", func(t *testing.T, dir string) {
			for _, p := range storeFiles(t, dir, format.SegmentPrefix) {
				mustRemove(t, p)
			}
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			dir := filepath.Join(t.TempDir(), DirName)
			params, _ := NewChunkParams(64 << 10)
			if err := Init(dir, params, time.Now()); err != nil {
				t.Fatal(err)
			}
			src := filepath.Join(t.TempDir(), "src")
			big := pseudoRandom(500<<10, 7)
			writeGenTree(t, src, []genEntry{
				{path: "big.bin", kind: KindFile, data: big},
				{path: "small.txt", kind: KindFile, data: []byte("small\n")},
			})
			// The files must look old, so the stat cache trusts them.
			old := time.Now().Add(-time.Hour)
			for _, f := range []string{"big.bin", "small.txt"} {
				if err := os.Chtimes(filepath.Join(src, f), old, old); err != nil {
					t.Fatal(err)
				}
			}
			r := mustOpen(t, dir)
			first, err := r.Push(ctx, []string{src}, PushOptions{})
			if err != nil {
				t.Fatal(err)
			}
			obj := &Object{Digest: first.Digest, Kind: first.Kind, Size: first.Bytes}
			if _, err := r.SetRef(ctx, "data", *obj); err != nil {
				t.Fatal(err)
			}
			mustClose(t, r)

			tt.damage(t, dir)

			r = mustOpen(t, dir)
			defer mustClose(t, r)
			rep, err := r.Verify(ctx, obj, "data", nil)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() {
				t.Fatalf("verify after the damage: ok, want problems")
			}
			if all, err := r.VerifyAll(ctx, nil); err != nil || all.OK() {
				t.Fatalf("verify of the whole store after the damage: %v, ok=%v; want problems", err, all != nil && all.OK())
			}
			again, err := r.Push(ctx, []string{src}, PushOptions{})
			if err != nil {
				t.Fatalf("push again: %v", err)
			}
			if again.Digest != first.Digest {
				t.Fatalf("push again: digest %s, want %s", again.Digest, first.Digest)
			}
			if tt.restored && again.NewBytes == 0 {
				t.Errorf("push again stored nothing new; want the lost data stored again")
			}
			if rep, err := r.Verify(ctx, obj, "data", nil); err != nil || !rep.OK() {
				t.Fatalf("verify after pushing again: %v %+v", err, rep)
			}
			out := filepath.Join(t.TempDir(), "out")
			if _, err := r.Restore(ctx, obj, out, RestoreOptions{}); err != nil {
				t.Fatalf("restore after pushing again: %v", err)
			}
			if got, _ := os.ReadFile(filepath.Join(out, "big.bin")); !bytes.Equal(got, big) {
				t.Errorf("big.bin restored: %d bytes differ from the source", len(got))
			}
			// A store opened on its own objects alone (as a reader of a
			// bucket would) serves it too.
			alone, err := OpenRemoteOnly(ctx, r.Backend)
			if err != nil {
				t.Fatal(err)
			}
			if rep, err := alone.Verify(ctx, obj, "data", nil); err != nil || !rep.OK() {
				t.Errorf("verify without the cache: %v %+v", err, rep)
			}
		})
	}
}

// A push killed after writing packs but before its segment, pushed again
// and then uploaded: a reader of the bucket alone restores every byte.
func TestInterruptedPushThenUpload(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	r := newStoreForTest(t, 64<<10)
	src := filepath.Join(t.TempDir(), "src")
	data := pseudoRandom(3<<20, 9)
	writeGenTree(t, src, []genEntry{{path: "part1.bin", kind: KindFile, data: data}})

	pushKilledBeforeSegment(t, r, src)
	res, err := r.Push(ctx, []string{src}, PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	obj := Object{Digest: res.Digest, Kind: res.Kind, Size: res.Bytes}
	bucket := remote.NewMem()
	if _, err := r.Upload(ctx, bucket, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SetRefOn(ctx, bucket, "data", obj); err != nil {
		t.Fatal(err)
	}
	reader, err := OpenRemoteOnly(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	file, err := reader.Resolve(ctx, "data:part1.bin")
	if err != nil {
		t.Fatal(err)
	}
	if err := reader.WriteFile(ctx, file, &buf); err != nil {
		t.Fatalf("read from the bucket alone: %v", err)
	}
	if !bytes.Equal(buf.Bytes(), data) || digest.Of(buf.Bytes()) != file.Digest {
		t.Error("the bucket served other bytes")
	}
}

// pushKilledBeforeSegment pushes src as a push killed after writing its
// packs and before its index segment would.
func pushKilledBeforeSegment(t *testing.T, r *Repo, src string) {
	t.Helper()
	local := r.Backend
	fault := remote.NewFault(local)
	fault.FailPut = func(key string) error {
		if strings.HasPrefix(key, format.SegmentPrefix) {
			return context.Canceled // the push dies before its segment
		}
		return nil
	}
	r.Backend = fault
	defer func() { r.Backend = local }()
	if _, err := r.Push(t.Context(), []string{src}, PushOptions{}); err == nil {
		t.Fatal("push with its segment refused: no error")
	}
}

func mustOpen(t *testing.T, dir string) *Repo {
	t.Helper()
	r, err := Open(t.Context(), dir)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return r
}

func mustClose(t *testing.T, r *Repo) {
	t.Helper()
	if err := r.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func mustRemove(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

// storeFiles lists the files of a store directory under a key prefix.
func storeFiles(t *testing.T, dir, prefix string) []string {
	t.Helper()
	var out []string
	root := filepath.Join(dir, storeDir, prefix)
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			out = append(out, p)
		}
		return err
	})
	if err != nil || len(out) == 0 {
		t.Fatalf("no files under %s: %v", root, err)
	}
	return out
}

func flipAt(t *testing.T, path string, off int64) {
	t.Helper()
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := f.WriteAt(b[:], off); err != nil {
		t.Fatal(err)
	}
}

// A file with long runs of zeros is restored with holes where its zeros
// were: its bytes are the same and it takes less room than its size.
func TestRestoreSparse(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	r := newStoreForTest(t, 64<<10)
	data := append(append(pseudoRandom(100<<10, 3), make([]byte, 8<<20)...), pseudoRandom(100<<10, 4)...)
	data = append(data, make([]byte, 1<<20)...) // zeros at the end too
	_, obj := pushTree(t, r, []genEntry{{path: "sparse.bin", kind: KindFile, data: data}})
	out := filepath.Join(t.TempDir(), "out")
	if _, err := r.Restore(ctx, obj, out, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(out, "sparse.bin")
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("restored bytes differ (%d bytes, want %d)", len(got), len(data))
	}
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	if used := st.Blocks * 512; used >= int64(len(data))/2 {
		t.Errorf("restored file takes %d bytes on disk for %d bytes of which 9 MiB are zeros; want holes", used, len(data))
	}
}

// TestVerifyAllKeepsMissing: data only missing from the store (its pack
// gone, nothing read wrong) is reported by VerifyAll as missing, as
// Verify of the ref alone reports it, not as damage.
func TestVerifyAllKeepsMissing(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	r := newStoreForTest(t, 64<<10)
	_, obj := pushTree(t, r, []genEntry{{path: "a.bin", kind: KindFile, data: pseudoRandom(100<<10, 5)}})
	mustRef(t, r, "data", obj)
	for _, p := range storeFiles(t, r.Dir, format.PackPrefix) {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := r.VerifyAll(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || rep.Damaged() {
		t.Errorf("VerifyAll of a store whose only pack is gone: ok %v, damaged %v, want missing data only: %+v", rep.OK(), rep.Damaged(), rep.Problems)
	}
}
