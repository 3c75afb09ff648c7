package index

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/cas-ml/cas/digest"
)

// empty reports whether the table has never held a record since it was
// made or reset (deletions count as records).
func (t *table) empty() bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.mem) == 0 && len(t.runs) == 0
}

func tkey(i int) digest.Digest { return digest.Of(fmt.Appendf(nil, "key %d", i)) }

// checkTableModel compares every lookup and the iteration of tb with model.
func checkTableModel(t *testing.T, tb *table, model map[digest.Digest][]byte, keys int) {
	t.Helper()
	for i := range keys {
		k := tkey(i)
		v, ok, err := tb.get(k)
		want, wok := model[k]
		if err != nil || ok != wok || !bytes.Equal(v, want) {
			t.Fatalf("get key %d: %x %v %v; want %x %v", i, v, ok, err, want, wok)
		}
	}
	var got []digest.Digest
	err := tb.each(func(k digest.Digest, v []byte) error {
		if !bytes.Equal(v, model[k]) {
			return fmt.Errorf("each: key %s: %x, want %x", k.Short(), v, model[k])
		}
		got = append(got, k)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := make([]digest.Digest, 0, len(model))
	for k := range model {
		want = append(want, k)
	}
	slices.SortFunc(want, func(a, b digest.Digest) int { return bytes.Compare(a[:], b[:]) })
	if !slices.Equal(got, want) {
		t.Fatalf("each yielded %d keys, want %d in order", len(got), len(want))
	}
}

// A table answers as a map does, across flushes, background merges,
// deletions and reopening, its memory small enough to write dozens of
// runs and merge them over two levels.
func TestTableLikeAMap(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "t")
	tb, err := openTable(dir, 2<<10)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	model := map[digest.Digest][]byte{}
	const keys = 3000
	for round := range 40 {
		var recs []kv
		for range 1 + rng.IntN(60) {
			k := tkey(rng.IntN(keys))
			var v []byte
			if rng.IntN(5) > 0 {
				v = fmt.Appendf(nil, "value %d of round %d", rng.Uint32(), round)
			}
			recs = append(recs, kv{k, v})
			if len(v) == 0 {
				delete(model, k)
			} else {
				model[k] = v
			}
		}
		if err := tb.put(recs); err != nil {
			t.Fatal(err)
		}
		if round%10 == 9 {
			checkTableModel(t, tb, model, keys)
		}
	}
	tb.waitMerges()
	nruns, levels := len(tb.runs), map[int]int{}
	for _, r := range tb.runs {
		levels[r.level]++
	}
	tb.mu.Unlock()
	if levels[1] == 0 {
		t.Fatalf("runs by level %v: the test wants merges", levels)
	}
	if err := tb.close(); err != nil {
		t.Fatal(err)
	}
	if tb, err = openTable(dir, 2<<10); err != nil {
		t.Fatal(err)
	}
	defer tb.close()
	if len(tb.runs) != nruns {
		t.Errorf("reopened with %d runs, want %d", len(tb.runs), nruns)
	}
	checkTableModel(t, tb, model, keys)
	// Reset forgets everything, and the table takes writes again.
	if err := tb.reset(); err != nil {
		t.Fatal(err)
	}
	if !tb.empty() {
		t.Fatal("not empty after reset")
	}
	checkTableModel(t, tb, map[digest.Digest][]byte{}, keys)
	if err := tb.put([]kv{{tkey(1), []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	checkTableModel(t, tb, map[digest.Digest][]byte{tkey(1): []byte("x")}, keys)
}

// What a write returned for is found after the process dies at any
// point: its log is replayed. A write cut short (the last frame of the
// log incomplete or not matching its checksum) is dropped, and nothing
// before it.
func TestTableLogReplay(t *testing.T) {
	t.Parallel()
	for _, cut := range []string{"none", "short", "crc"} {
		t.Run(cut, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "t")
			tb, err := openTable(dir, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 10 {
				if err := tb.put([]kv{{tkey(i), []byte{byte(i), 1}}}); err != nil {
					t.Fatal(err)
				}
			}
			log := tb.log.Name()
			// No close: as if killed.
			tb.log.Close()
			b, err := os.ReadFile(log)
			if err != nil {
				t.Fatal(err)
			}
			switch cut {
			case "short":
				b = b[:len(b)-3]
			case "crc":
				b[len(b)-1] ^= 1
			}
			if err := os.WriteFile(log, b, 0o644); err != nil {
				t.Fatal(err)
			}
			// A run a flush or merge was killed writing, and a manifest's
			// temporary file, are removed.
			for _, name := range []string{runName(99), tableManifest + ".tmp"} {
				if err := os.WriteFile(filepath.Join(dir, name), []byte("left"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			tb2, err := openTable(dir, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			defer tb2.close()
			want := 10
			if cut != "none" {
				want = 9
			}
			for i := range 10 {
				v, ok, err := tb2.get(tkey(i))
				if err != nil || ok != (i < want) || ok && !bytes.Equal(v, []byte{byte(i), 1}) {
					t.Errorf("key %d: %x %v %v", i, v, ok, err)
				}
			}
			for _, name := range []string{runName(99), tableManifest + ".tmp"} {
				if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s left: %v", name, err)
				}
			}
		})
	}
}

// Damage is found: a run whose footer fails its checksum refuses to
// open, a bucket that fails its checksum fails its lookup, and both wrap
// ErrCorrupt.
func TestTableDamage(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "t")
	tb, err := openTable(dir, 1<<10)
	if err != nil {
		t.Fatal(err)
	}
	var recs []kv
	for i := range 40 {
		recs = append(recs, kv{tkey(i), bytes.Repeat([]byte{byte(i)}, 50)})
	}
	if err := tb.put(recs); err != nil { // over 1 KiB: written to a run
		t.Fatal(err)
	}
	if len(tb.runs) != 1 {
		t.Fatalf("%d runs, want 1", len(tb.runs))
	}
	run := tb.runs[0].path
	tb.close()
	orig, err := os.ReadFile(run)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(at int) {
		b := slices.Clone(orig)
		b[at] ^= 0x40
		if err := os.WriteFile(run, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	flip(len(orig) - 20) // in the trailer
	if _, err := openTable(dir, 1<<10); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open with a damaged footer: %v, want ErrCorrupt", err)
	}
	flip(digest.Size + 5) // in the first record's value
	tb, err = openTable(dir, 1<<10)
	if err != nil {
		t.Fatal(err)
	}
	defer tb.close()
	var first digest.Digest
	for _, r := range recs {
		if first == (digest.Digest{}) || bytes.Compare(r.k[:], first[:]) < 0 {
			first = r.k
		}
	}
	if _, _, err := tb.get(first); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("get from a damaged bucket: %v, want ErrCorrupt", err)
	}
}

// A damaged table in an index is started afresh together with the marks
// that vouched for it, so the store's segments are read again; an index
// written before the tables (blobs and files in badger) is dropped the
// same way.
func TestBadgerTablesDamagedOrLegacy(t *testing.T) {
	t.Parallel()
	seg := digest.Of([]byte("segment"))
	blob := Blob{ID: digest.Of([]byte("blob")), Pack: digest.Of([]byte("pack")), RawLen: 3}
	setup := func(t *testing.T) string {
		dir := filepath.Join(t.TempDir(), "idx")
		x, err := OpenBadger(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := x.AddBlobs(blob.Pack, []Blob{blob}); err != nil {
			t.Fatal(err)
		}
		if err := x.MarkStoreSegment(seg); err != nil {
			t.Fatal(err)
		}
		if err := x.MarkDamaged([]Blob{blob}); err != nil {
			t.Fatal(err)
		}
		x.blobs.mu.Lock()
		err = x.blobs.flushLocked()
		x.blobs.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		if err := x.Close(); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	check := func(t *testing.T, dir string, kept bool) {
		t.Helper()
		x, err := OpenBadger(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer x.Close()
		_, okBlob, err1 := x.Blob(blob.ID)
		okSeg, err2 := x.HasSegment(seg)
		okPack, err3 := x.HasPack(blob.Pack)
		_, okBad, err4 := x.Damaged(blob.ID)
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			t.Fatal(err)
		}
		if okBlob != kept || okSeg != kept || okPack != kept || !okBad {
			t.Fatalf("blob %v segment %v pack %v damage mark %v; want %v %v %v true", okBlob, okSeg, okPack, okBad, kept, kept, kept)
		}
	}
	t.Run("sound", func(t *testing.T) {
		t.Parallel()
		check(t, setup(t), true)
	})
	t.Run("damaged run", func(t *testing.T) {
		t.Parallel()
		dir := setup(t)
		runs, _ := filepath.Glob(filepath.Join(dir, blobsDir, "run-*"))
		if len(runs) != 1 {
			t.Fatalf("runs %v", runs)
		}
		if err := os.Truncate(runs[0], 10); err != nil {
			t.Fatal(err)
		}
		check(t, dir, false)
	})
	t.Run("table of format 1", func(t *testing.T) {
		t.Parallel()
		dir := setup(t)
		m := filepath.Join(dir, blobsDir, tableManifest)
		b, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		old := strings.Replace(string(b), manifestHeader, "cas index table 1", 1)
		if old == string(b) {
			t.Fatal("no header to replace")
		}
		if err := os.WriteFile(m, []byte(old), 0o644); err != nil {
			t.Fatal(err)
		}
		check(t, dir, false)
	})
	t.Run("table gone", func(t *testing.T) {
		t.Parallel()
		dir := setup(t)
		if err := os.RemoveAll(filepath.Join(dir, blobsDir)); err != nil {
			t.Fatal(err)
		}
		check(t, dir, false)
	})
	t.Run("legacy keys", func(t *testing.T) {
		t.Parallel()
		dir := setup(t)
		db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
		if err != nil {
			t.Fatal(err)
		}
		err = db.Update(func(txn *badger.Txn) error {
			return txn.Set(append([]byte{'b'}, blob.ID[:]...), blob.encodeValue())
		})
		if cerr := db.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
		check(t, dir, false)
		x, err := OpenBadger(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer x.Close()
		if any, err := x.anyKey('b'); err != nil || any {
			t.Fatalf("legacy keys left: %v %v", any, err)
		}
	})
}

// Lookups, writes and iterations run together while merges run in the
// background (run with -race).
func TestTableConcurrent(t *testing.T) {
	t.Parallel()
	tb, err := openTable(filepath.Join(t.TempDir(), "t"), 4<<10)
	if err != nil {
		t.Fatal(err)
	}
	defer tb.close()
	const writers, per = 2, 400
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range per {
				k := w*per + i
				if err := tb.put([]kv{{tkey(k), fmt.Appendf(nil, "v%d", k)}}); err != nil {
					t.Error(err)
					return
				}
				// What a write returned for is seen at once.
				if v, ok, err := tb.get(tkey(k)); err != nil || !ok || string(v) != fmt.Sprintf("v%d", k) {
					t.Errorf("key %d after its write: %q %v %v", k, v, ok, err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			if err := tb.each(func(k digest.Digest, v []byte) error { return nil }); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
	model := map[digest.Digest][]byte{}
	for k := range writers * per {
		model[tkey(k)] = fmt.Appendf(nil, "v%d", k)
	}
	checkTableModel(t, tb, model, writers*per)
}

// The bytes of a run file are a format (FORMAT.md §9b): a run of three
// records, one of them a deletion, written by a flush over an older run
// (so the deletion is kept), hashes to a pinned digest.
func TestTableRunGolden(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "t")
	tb, err := openTable(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer tb.close()
	flush := func() {
		t.Helper()
		tb.mu.Lock()
		defer tb.mu.Unlock()
		if err := tb.flushLocked(); err != nil {
			t.Fatal(err)
		}
	}
	if err := tb.put([]kv{{tkey(0), []byte("old")}}); err != nil {
		t.Fatal(err)
	}
	flush()
	if err := tb.put([]kv{{tkey(1), []byte("one")}, {tkey(2), bytes.Repeat([]byte{7}, 50)}, {k: tkey(0)}}); err != nil {
		t.Fatal(err)
	}
	flush()
	b, err := os.ReadFile(tb.runs[1].path)
	if err != nil {
		t.Fatal(err)
	}
	const want = "blake3:f5c89eaa8867a4a9cc6d502bc6d73fe959595723d0051c8a0515e97f14f6e386"
	if got := digest.Of(b).String(); got != want || len(b) != 3*digest.Size+3+3+50+0+16+4+8+runTrailerLen {
		t.Errorf("run file: %d bytes, %s; want %s", len(b), got, want)
	}
}
