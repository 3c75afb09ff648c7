package cas

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/clock"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
	"github.com/cas-ml/cas/remote"
)

// BenchmarkAttackRepushSmallFiles measures a push of 20,000 unchanged
// small files already stored: the stat cache and the stored trees should
// make it cost little more than the directory walk.
func BenchmarkAttackRepushSmallFiles(b *testing.B) {
	dir := filepath.Join(b.TempDir(), DirName)
	params, _ := NewChunkParams(64 << 10)
	if err := Init(dir, params, time.Now()); err != nil {
		b.Fatal(err)
	}
	src := filepath.Join(b.TempDir(), "src")
	old := time.Now().Add(-2 * time.Hour)
	for d := range 40 {
		sub := filepath.Join(src, fmt.Sprintf("d%03d", d))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := range 500 {
			p := filepath.Join(sub, fmt.Sprintf("f%04d.txt", f))
			if err := os.WriteFile(p, fmt.Appendf(nil, "file %d %d\n", d, f), 0o644); err != nil {
				b.Fatal(err)
			}
			if err := os.Chtimes(p, old, old); err != nil {
				b.Fatal(err)
			}
		}
	}
	r, err := Open(b.Context(), dir)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Push(b.Context(), []string{src}, PushOptions{}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := r.Push(b.Context(), []string{src}, PushOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// countingIndex counts the per-blob lookups a push makes.
type countingIndex struct {
	index.Index
	lookups atomic.Int64
}

func (c *countingIndex) Blob(id digest.Digest) (index.Blob, bool, error) {
	c.lookups.Add(1)
	return c.Index.Blob(id)
}

func (c *countingIndex) FileChunks(id digest.Digest) ([]digest.Digest, bool, error) {
	c.lookups.Add(1)
	return c.Index.FileChunks(id)
}

func (c *countingIndex) Damaged(id digest.Digest) (digest.Digest, bool, error) {
	c.lookups.Add(1)
	return c.Index.Damaged(id)
}

// A push of an unchanged tree that is stored whole, in packs all present,
// must not look up every file below it in the index: before the fixes of
// issue 10 it asked about the root tree alone; checkTrusted now asks three
// questions per file, which makes a re-push of 50,000 small files about
// four times slower (0.25 s → 1.0 s) although nothing is missing.
func TestAttackRepushLooksUpEveryFile(t *testing.T) {
	t.Parallel()
	r := newStoreForTest(t, 64<<10)
	// The pushes happen an hour on: no file is too fresh for the stat
	// cache, whatever its ctime (which Chtimes cannot set).
	r.Clock = clock.Func(func() time.Time { return time.Now().Add(time.Hour) })
	src := filepath.Join(t.TempDir(), "src")
	old := time.Now().Add(-2 * time.Hour)
	const dirs, files = 4, 250
	for d := range dirs {
		sub := filepath.Join(src, fmt.Sprintf("d%d", d))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		for f := range files {
			p := filepath.Join(sub, fmt.Sprintf("f%d.txt", f))
			if err := os.WriteFile(p, fmt.Appendf(nil, "file %d %d\n", d, f), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(p, old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := r.Push(t.Context(), []string{src}, PushOptions{}); err != nil {
		t.Fatal(err)
	}
	ci := &countingIndex{Index: r.Index}
	r.Index = ci
	defer func() { r.Index = ci.Index }()
	res, err := r.Push(t.Context(), []string{src}, PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.NewBytes != 0 {
		t.Fatalf("re-push stored %d new bytes, want 0", res.NewBytes)
	}
	// A few lookups per directory at most; never one per file.
	if got, limit := ci.lookups.Load(), int64(4*(dirs+1)); got > limit {
		t.Errorf("re-push of %d unchanged files: got %d index lookups, want at most %d", dirs*files, got, limit)
	}
}

// BenchmarkAttackAdoptOrphansNone measures what every push now pays
// first: listing every pack of the store and asking the index about each,
// with no orphan to adopt.
func BenchmarkAttackAdoptOrphansNone(b *testing.B) {
	dir := filepath.Join(b.TempDir(), DirName)
	params, _ := NewChunkParams(64 << 10)
	if err := Init(dir, params, time.Now()); err != nil {
		b.Fatal(err)
	}
	r, err := Open(b.Context(), dir)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	const packs = 2000
	var recs []index.Blob
	for i := range packs {
		pb := format.NewPackBuilder()
		raw := fmt.Appendf(nil, "blob %d", i)
		pb.Add(index.Blob{ID: digest.Of(raw), RawLen: uint32(len(raw)), Codec: index.CodecNone, Type: index.TypeData}, raw)
		data, id, blobs := pb.Finish()
		if err := r.Backend.Put(b.Context(), format.PackKey(id), bytes.NewReader(data), int64(len(data)), remote.PutOptions{}); err != nil {
			b.Fatal(err)
		}
		recs = append(recs, blobs...)
	}
	if _, err := r.writeSegment(b.Context(), recs, nil); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		n, _, err := r.adoptOrphans(b.Context())
		if err != nil || n != 0 {
			b.Fatalf("adoptOrphans: %d, %v", n, err)
		}
	}
}
