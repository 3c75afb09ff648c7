package index

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/cas-ml/cas/digest"
)

// A panic inside badger becomes an error wrapping ErrCorrupt that keeps
// what badger said.
func TestRecoverDamage(t *testing.T) {
	t.Parallel()
	err := func() (err error) {
		defer recoverDamage(&err)
		panic("table 000001.sst: index out of range")
	}()
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "table 000001.sst: index out of range") {
		t.Errorf("got %v, want ErrCorrupt with badger's words", err)
	}
	err = func() (err error) {
		defer recoverDamage(&err)
		return nil
	}()
	if err != nil {
		t.Errorf("without a panic: got %v, want nil", err)
	}
}

// The stat cache's entries live in files of their own beside badger's,
// named from their keys; badger keeps the keys, and a value that still
// holds entries (an index of an earlier version) is read as before.
func TestBadgerStatFiles(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "idx")
	x, err := OpenBadger(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { x.Close() }()
	e := StatEntry{Name: "f", Dev: 1, Ino: 2, Size: 3, Mtime: 4, Ctime: 5, Mode: 0o100644, Digest: d("f")}
	files := func() []string {
		t.Helper()
		names, err := filepath.Glob(filepath.Join(dir, statDir, "*"))
		if err != nil {
			t.Fatal(err)
		}
		for i, n := range names {
			names[i] = filepath.Base(n)
		}
		return names
	}
	want := func(dir string, es ...StatEntry) {
		t.Helper()
		got, err := x.StatDir("/r", dir)
		if err != nil {
			t.Fatalf("StatDir %q: %v", dir, err)
		}
		if len(got) != len(es) {
			t.Fatalf("StatDir %q: got %d entries, want %d", dir, len(got), len(es))
		}
		for _, e := range es {
			if got[e.Name] != e {
				t.Errorf("StatDir %q: got %+v, want %+v", dir, got[e.Name], e)
			}
		}
	}
	if err := x.PutStatDir("/r", "d/x", []StatEntry{e}, nil); err != nil {
		t.Fatal(err)
	}
	if err := x.PutStatDir("/r", "d", []StatEntry{e}, []string{"x"}); err != nil {
		t.Fatal(err)
	}
	fileD, fileX := digest.Of(statKey("/r", "d")).Hex(), digest.Of(statKey("/r", "d/x")).Hex()
	if got := files(); !slices.Equal(got, slices.Sorted(slices.Values([]string{fileD, fileX}))) {
		t.Fatalf("stat files %v, want those of d and d/x", got)
	}
	if v, ok, err := x.get(statKey("/r", "d")); err != nil || !ok || len(v) != 0 {
		t.Fatalf("badger's value of d: %q, %v, %v; want an empty value", v, ok, err)
	}
	want("d", e)

	// An earlier version's value, entries and all.
	old := e
	old.Name = "old"
	if err := x.write(func(wb *badger.WriteBatch) error {
		return wb.Set(statKey("/r", "legacy"), encodeStatEntries([]StatEntry{old}))
	}); err != nil {
		t.Fatal(err)
	}
	want("legacy", old)
	// Saved again unchanged, the entries move to their file.
	if err := x.PutStatDir("/r", "legacy", []StatEntry{old}, nil); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := x.get(statKey("/r", "legacy")); err != nil || !ok || len(v) != 0 {
		t.Fatalf("badger's value of legacy after a save: %q, %v, %v; want an empty value", v, ok, err)
	}
	want("legacy", old)
	if err := x.PutStatDir("/r", "legacy", []StatEntry{e}, nil); err != nil {
		t.Fatal(err)
	}
	want("legacy", e)

	// A key whose file is missing (a push killed between the two) holds
	// nothing, and is written again whole.
	if err := os.Remove(filepath.Join(dir, statDir, fileX)); err != nil {
		t.Fatal(err)
	}
	want("d/x")
	if err := x.PutStatDir("/r", "d/x", []StatEntry{e}, nil); err != nil {
		t.Fatal(err)
	}
	want("d/x", e)

	// d/x gone from d: its key and file go; d without entries goes too.
	if err := x.PutStatDir("/r", "d", nil, nil); err != nil {
		t.Fatal(err)
	}
	want("d/x")
	want("d")
	if got := files(); len(got) != 1 || slices.Contains(got, fileD) || slices.Contains(got, fileX) {
		t.Errorf("stat files %v, want only legacy's", got)
	}
	if _, ok, _ := x.get(statKey("/r", "d")); ok {
		t.Error("d's key outlived its entries")
	}

	// What was saved outlives the process; Reset forgets it.
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	if x, err = OpenBadger(dir); err != nil {
		t.Fatal(err)
	}
	want("legacy", e)
	if err := x.Reset(); err != nil {
		t.Fatal(err)
	}
	want("legacy")
	if got := files(); len(got) != 0 {
		t.Errorf("stat files after Reset: %v", got)
	}
}

// Lookups share a read transaction until the next write: a lookup that
// starts after a write returns sees it, whatever lookups run meanwhile,
// and one that ran before it does not keep the next from seeing it.
func TestBadgerLookupsSeeEachWrite(t *testing.T) {
	t.Parallel()
	x, err := OpenBadger(filepath.Join(t.TempDir(), "index"))
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	const n = 300
	stop := make(chan struct{})
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				if _, _, err := x.Blob(d(fmt.Sprint("blob ", (i*7+g)%n))); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	pack := d("pack")
	for i := range n {
		id := d(fmt.Sprint("blob ", i))
		if _, ok, err := x.Blob(id); err != nil || ok {
			t.Fatalf("blob %d before it is added: found %v, %v; want not found", i, ok, err)
		}
		if err := x.AddBlobs(pack, []Blob{{ID: id, Pack: pack, Offset: uint64(i), Length: 1, RawLen: 1}}); err != nil {
			t.Fatal(err)
		}
		b, ok, err := x.Blob(id)
		if err != nil || !ok || b.Offset != uint64(i) {
			t.Fatalf("blob %d just added: got %+v, %v, %v; want it at offset %d", i, b, ok, err, i)
		}
	}
	close(stop)
	for range 4 {
		if err := <-errs; err != nil {
			t.Errorf("concurrent lookup: %v", err)
		}
	}
}
