package index

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cas-ml/cas/digest"
)

// Both implementations keep the same contract.
func forEachIndex(t *testing.T, fn func(t *testing.T, x Index)) {
	t.Helper()
	t.Run("memory", func(t *testing.T) { fn(t, NewMemory()) })
	t.Run("spill", func(t *testing.T) {
		x := newSpill(256) // a run every few entries
		t.Cleanup(func() { x.Close() })
		fn(t, x)
	})
	t.Run("badger", func(t *testing.T) {
		x, err := OpenBadger(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { x.Close() })
		fn(t, x)
	})
}

func d(s string) digest.Digest { return digest.Of([]byte(s)) }

func TestBlobs(t *testing.T) {
	t.Parallel()
	forEachIndex(t, func(t *testing.T, x Index) {
		pack := d("pack")
		want := Blob{ID: d("a"), Pack: pack, Offset: 8, Length: 100, RawLen: 120, Codec: CodecZstd, Type: TypeTree}
		if _, ok, err := x.Blob(want.ID); ok || err != nil {
			t.Fatalf("Blob before add: got ok=%v err=%v, want false nil", ok, err)
		}
		if err := x.AddBlobs(pack, []Blob{want, {ID: d("b"), Pack: pack, Offset: 108, Length: 5, RawLen: 5}}); err != nil {
			t.Fatal(err)
		}
		got, ok, err := x.Blob(want.ID)
		if !ok || err != nil || got != want {
			t.Errorf("Blob = %+v, %v, %v; want %+v", got, ok, err, want)
		}
		if ok, _ := x.HasPack(pack); !ok {
			t.Error("HasPack after AddBlobs = false")
		}
		var n int
		if err := x.Blobs(func(Blob) error { n++; return nil }); err != nil || n != 2 {
			t.Errorf("Blobs visited %d (%v), want 2", n, err)
		}
		stop := errors.New("stop")
		if err := x.Packs(func(digest.Digest) error { return stop }); !errors.Is(err, stop) {
			t.Errorf("Packs: got %v, want the callback's error", err)
		}
	})
}

// A later record of a blob in the same pack replaces the earlier one in
// every index: a pull writes the record it checked over the one a bucket's
// segment gave before, which may lie about the blob's place or length.
func TestBlobLaterRecordInSamePackWins(t *testing.T) {
	t.Parallel()
	forEachIndex(t, func(t *testing.T, x Index) {
		pack := d("pack")
		lie := Blob{ID: d("a"), Pack: pack, Offset: 8, Length: 100, RawLen: 99}
		truth := Blob{ID: d("a"), Pack: pack, Offset: 8, Length: 100, RawLen: 120}
		if err := x.AddRemoteBlobs(pack, []Blob{lie}, []digest.Digest{pack}); err != nil {
			t.Fatal(err)
		}
		if err := x.AddBlobs(pack, []Blob{truth}); err != nil {
			t.Fatal(err)
		}
		if got, ok, err := x.Blob(truth.ID); !ok || err != nil || got != truth {
			t.Errorf("Blob = %+v, %v, %v; want the later record %+v", got, ok, err, truth)
		}
		var all []Blob
		if err := x.Blobs(func(b Blob) error { all = append(all, b); return nil }); err != nil || !slices.Equal(all, []Blob{truth}) {
			t.Errorf("Blobs = %+v (%v); want only %+v", all, err, truth)
		}
		if a, ok := x.(interface{ Alternatives(digest.Digest) []Blob }); ok && len(a.Alternatives(truth.ID)) != 0 {
			t.Errorf("Alternatives = %+v; want none (one pack)", a.Alternatives(truth.ID))
		}
	})
}

func TestFilesAndSegments(t *testing.T) {
	t.Parallel()
	forEachIndex(t, func(t *testing.T, x Index) {
		f := d("file")
		chunks := []digest.Digest{d("c1"), d("c2"), d("c3")}
		if err := x.AddFiles(map[digest.Digest][]digest.Digest{f: chunks}); err != nil {
			t.Fatal(err)
		}
		got, ok, err := x.FileChunks(f)
		if !ok || err != nil || !slices.Equal(got, chunks) {
			t.Errorf("FileChunks = %v, %v, %v; want %v", got, ok, err, chunks)
		}
		if _, ok, _ := x.FileChunks(d("other")); ok {
			t.Error("FileChunks of an unknown file: ok")
		}
		var files []digest.Digest
		_ = x.Files(func(f digest.Digest) error { files = append(files, f); return nil })
		if !slices.Equal(files, []digest.Digest{f}) {
			t.Errorf("Files = %v, want [%v]", files, f)
		}
		seg := d("seg")
		if ok, _ := x.HasSegment(seg); ok {
			t.Error("HasSegment before MarkSegment: true")
		}
		if err := x.MarkSegment(seg); err != nil {
			t.Fatal(err)
		}
		if ok, _ := x.HasSegment(seg); !ok {
			t.Error("HasSegment after MarkSegment: false")
		}
		if err := x.Reset(); err != nil {
			t.Fatal(err)
		}
		if ok, _ := x.HasSegment(seg); ok {
			t.Error("HasSegment after Reset: true")
		}
	})
}

func TestStatDir(t *testing.T) {
	t.Parallel()
	forEachIndex(t, func(t *testing.T, x Index) {
		e := StatEntry{Name: "a\nb \xff", Dev: 1, Ino: 2, Size: 3, Mtime: -4, Ctime: 5e18, Mode: 0o100755, Digest: d("x")}
		// Children first, as a push saves them. "a-b" sorts between "a"
		// and "a/x"; "\x00last" is the caller's own record; "/roo" and
		// "/root/a" are other roots.
		for _, k := range [][3]string{{"/root", "a/x/y"}, {"/root", "a/x", "y"}, {"/root", "a", "x"}, {"/root", "a-b"},
			{"/root", "b/c"}, {"/root", "b", "c"}, {"/root", "\x00last"}, {"/roo", ""}, {"/root/a", ""}} {
			var subdirs []string
			if k[2] != "" {
				subdirs = []string{k[2]}
			}
			if err := x.PutStatDir(k[0], k[1], []StatEntry{{Name: "f"}}, subdirs); err != nil {
				t.Fatal(err)
			}
		}
		steps := []struct {
			dir     string
			entries []StatEntry
			subdirs []string
			gone    []string // directories of /root whose entries are forgotten
		}{
			{"", []StatEntry{e}, []string{"a", "b"}, []string{"a-b"}},
			{"", []StatEntry{e}, []string{"a"}, []string{"a-b", "b", "b/c"}},
			{"", []StatEntry{e}, []string{"a"}, []string{"a-b", "b", "b/c"}}, // again: no change
			{"a", nil, nil, []string{"a-b", "b", "b/c", "a", "a/x", "a/x/y"}},
		}
		for i, st := range steps {
			if err := x.PutStatDir("/root", st.dir, st.entries, st.subdirs); err != nil {
				t.Fatal(err)
			}
			for _, k := range [][2]string{{"/root", "a/x/y"}, {"/root", "a/x"}, {"/root", "a"}, {"/root", "a-b"},
				{"/root", "b/c"}, {"/root", "b"}, {"/root", "\x00last"}, {"/roo", ""}, {"/root/a", ""}} {
				got, err := x.StatDir(k[0], k[1])
				if err != nil {
					t.Fatal(err)
				}
				want := k[0] != "/root" || !slices.Contains(st.gone, k[1])
				if (len(got) > 0) != want {
					t.Errorf("step %d: StatDir(%q, %q) has entries: got %v, want %v", i, k[0], k[1], len(got) > 0, want)
				}
			}
			if got, err := x.StatDir("/root", ""); err != nil || len(got) != 1 || got[e.Name] != e {
				t.Errorf("step %d: StatDir = %+v, %v; want %+v", i, got, err, e)
			}
		}
	})
}

func TestBadgerBusyAndPersistent(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "idx")
	x, err := OpenBadger(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenBadger(dir); !errors.Is(err, ErrBusy) {
		t.Errorf("second open: got %v, want ErrBusy", err)
	}
	b := Blob{ID: d("a"), Pack: d("p"), Offset: 8, Length: 1, RawLen: 1}
	if err := x.AddBlobs(b.Pack, []Blob{b}); err != nil {
		t.Fatal(err)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	y, err := OpenBadger(dir)
	if err != nil {
		t.Fatalf("reopen after close: %v", err)
	}
	defer y.Close()
	if got, ok, _ := y.Blob(b.ID); !ok || got != b {
		t.Errorf("after reopen Blob = %+v, %v; want %+v", got, ok, b)
	}
	if !y.Persistent() || NewMemory().Persistent() {
		t.Error("Persistent: want badger true, memory false")
	}
}

func TestDecodeStatEntriesRejectsGarbage(t *testing.T) {
	t.Parallel()
	good := encodeStatEntries([]StatEntry{{Name: "x", Size: 1, Digest: d("x")}})
	for n := 0; n < len(good); n++ {
		if _, err := decodeStatEntries(good[:n]); n > 0 && err == nil {
			t.Errorf("decode of %d of %d bytes succeeded", n, len(good))
		}
	}
	if _, err := decodeBlobValue(d("x"), make([]byte, 10)); err == nil {
		t.Error("decodeBlobValue of a short record succeeded")
	}
}

// A badger directory left damaged (here: a memtable file that cannot be
// opened) is started afresh: the index is a cache.
func TestBadgerDamagedStartsAfresh(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b, err := OpenBadger(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// A directory where badger expects its memtable file 00001.mem makes
	// badger.Open fail.
	if err := os.Mkdir(filepath.Join(dir, "00001.mem"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "00001.mem", "x"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err = OpenBadger(dir)
	if err != nil {
		t.Fatalf("OpenBadger over a damaged directory: %v", err)
	}
	defer b.Close()
	if fi, err := os.Stat(filepath.Join(dir, "00001.mem")); err == nil && fi.IsDir() {
		t.Error("the damaged memtable directory is still there")
	}
	if err := b.MarkSegment(digest.Of([]byte("s"))); err != nil {
		t.Fatalf("write to the fresh index: %v", err)
	}
	if ok, err := b.HasSegment(digest.Of([]byte("s"))); !ok || err != nil {
		t.Errorf("HasSegment after MarkSegment = %v, %v", ok, err)
	}
}

// A table file cut short (a disk that lost its tail, or a copy stopped
// half way) makes badger panic when it reads the table; the index is a
// cache, so it must start afresh instead of failing every command.
func TestBadgerTruncatedTableStartsAfresh(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b, err := OpenBadger(dir)
	if err != nil {
		t.Fatal(err)
	}
	var blobs []Blob
	for i := range 200000 {
		blobs = append(blobs, Blob{ID: digest.Of([]byte{byte(i), byte(i >> 8), byte(i >> 16)}), RawLen: 1})
	}
	pack := digest.Of([]byte("pack"))
	if err := b.AddBlobs(pack, blobs); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	ssts, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	if len(ssts) == 0 {
		t.Fatal("badger wrote no table file; the test needs one")
	}
	for _, f := range ssts {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(f, fi.Size()/2); err != nil {
			t.Fatal(err)
		}
	}
	b, err = OpenBadger(dir)
	if err != nil {
		t.Fatalf("OpenBadger over a truncated table: %v", err)
	}
	defer b.Close()
	// Whatever survived, reading must not panic, and writing must work.
	_, _, _ = b.Blob(blobs[0].ID)
	if err := b.MarkSegment(digest.Of([]byte("s"))); err != nil {
		t.Fatalf("write to the index: %v", err)
	}
	if ok, err := b.HasSegment(digest.Of([]byte("s"))); !ok || err != nil {
		t.Errorf("HasSegment after MarkSegment = %v, %v", ok, err)
	}
}
