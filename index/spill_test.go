package index

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cas-ml/cas/digest"
)

// TestSpillAnswersAsMemory applies one random sequence of AddBlobs (copies
// of a blob in several packs, the same pack again), ForgetBlobs and
// AddFiles to a Memory and to Spills with buffers small enough to write
// many runs and merge them, and compares every answer.
func TestSpillAnswersAsMemory(t *testing.T) {
	t.Parallel()
	// Prefer the copy in the pack whose first byte is even.
	prefer := func(old, new Blob) Blob {
		if new.Pack[0]%2 == 0 {
			return new
		}
		return old
	}
	rng := rand.New(rand.NewPCG(1, 2))
	ids := make([]digest.Digest, 3000)
	for i := range ids {
		ids[i] = digest.Of([]byte{byte(i), byte(i >> 8), 'b'})
	}
	packs := make([]digest.Digest, 7)
	for i := range packs {
		packs[i] = digest.Of([]byte{byte(i), 'p'})
	}
	type op struct {
		pack   digest.Digest
		blobs  []Blob
		forget []digest.Digest
		files  map[digest.Digest][]digest.Digest
	}
	var ops []op
	for range 400 {
		switch rng.IntN(10) {
		case 0:
			var f []digest.Digest
			for range 1 + rng.IntN(5) {
				f = append(f, ids[rng.IntN(len(ids))])
			}
			ops = append(ops, op{forget: f})
		case 1:
			files := map[digest.Digest][]digest.Digest{}
			for range 1 + rng.IntN(20) {
				files[ids[rng.IntN(len(ids))]] = []digest.Digest{ids[rng.IntN(len(ids))], ids[rng.IntN(len(ids))]}
			}
			ops = append(ops, op{files: files})
		default:
			p := packs[rng.IntN(len(packs))]
			var bs []Blob
			for range 1 + rng.IntN(40) {
				bs = append(bs, Blob{ID: ids[rng.IntN(len(ids))], Pack: p, Offset: rng.Uint64N(1 << 40),
					Length: rng.Uint32(), RawLen: rng.Uint32(), Codec: uint8(rng.IntN(2)), Type: uint8(rng.IntN(2))})
			}
			ops = append(ops, op{pack: p, blobs: bs})
		}
	}
	for _, buf := range []int{1, 4 << 10, 64 << 10, 64 << 20} {
		mem := NewMemory()
		mem.Prefer = prefer
		sp := newSpill(buf)
		sp.Prefer = prefer
		defer sp.Close()
		for i, o := range ops {
			for _, x := range []Index{mem, sp} {
				var err error
				switch {
				case o.forget != nil:
					err = x.ForgetBlobs(o.forget)
				case o.files != nil:
					err = x.AddFiles(o.files)
				default:
					err = x.AddBlobs(o.pack, o.blobs)
				}
				if err != nil {
					t.Fatalf("buffer %d, op %d on %T: %v", buf, i, x, err)
				}
			}
			if i == len(ops)/2 && buf == 4<<10 {
				if err := sp.Compact(); err != nil {
					t.Fatal(err)
				}
			}
		}
		for _, id := range ids {
			wb, wok, _ := mem.Blob(id)
			gb, gok, err := sp.Blob(id)
			if err != nil || gok != wok || gb != wb {
				t.Fatalf("buffer %d: Blob(%s) = %+v, %v, %v; want %+v, %v", buf, id.Short(), gb, gok, err, wb, wok)
			}
			if got, want := sp.Alternatives(id), mem.Alternatives(id); !slices.Equal(got, want) {
				t.Fatalf("buffer %d: Alternatives(%s) = %v; want %v", buf, id.Short(), got, want)
			}
			wc, wok, _ := mem.FileChunks(id)
			gc, gok, err := sp.FileChunks(id)
			if err != nil || gok != wok || !slices.Equal(gc, wc) {
				t.Fatalf("buffer %d: FileChunks(%s) = %v, %v, %v; want %v, %v", buf, id.Short(), gc, gok, err, wc, wok)
			}
		}
		for _, p := range packs {
			if got, want := must(sp.HasPack(p)), must(mem.HasPack(p)); got != want {
				t.Errorf("buffer %d: HasPack = %v, want %v", buf, got, want)
			}
		}
		if got, want := collectBlobs(t, sp), collectBlobs(t, mem); !slices.Equal(got, want) {
			t.Errorf("buffer %d: Blobs gave %d blobs, want %d (or they differ)", buf, len(got), len(want))
		}
		var gotFiles, wantFiles []digest.Digest
		_ = sp.Files(func(f digest.Digest) error { gotFiles = append(gotFiles, f); return nil })
		_ = mem.Files(func(f digest.Digest) error { wantFiles = append(wantFiles, f); return nil })
		slices.SortFunc(wantFiles, compareDigest)
		if !slices.Equal(gotFiles, wantFiles) {
			t.Errorf("buffer %d: Files = %d files, want %d (or they differ)", buf, len(gotFiles), len(wantFiles))
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func compareDigest(a, b digest.Digest) int { return slices.Compare(a[:], b[:]) }

func collectBlobs(t *testing.T, x Index) []Blob {
	t.Helper()
	var out []Blob
	if err := x.Blobs(func(b Blob) error { out = append(out, b); return nil }); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(out, func(a, b Blob) int { return compareDigest(a.ID, b.ID) })
	return out
}

// TestSpillWritesRuns checks that a Spill holds no more than its buffer
// in memory: past it, entries go to runs, merged by level, and Compact
// leaves one run.
func TestSpillWritesRuns(t *testing.T) {
	t.Parallel()
	sp := newSpill(16 << 10)
	defer sp.Close()
	pack := digest.Of([]byte("p"))
	for i := range 20000 {
		b := Blob{ID: digest.Of([]byte{byte(i), byte(i >> 8), byte(i >> 16)}), Pack: pack, Offset: uint64(i)}
		if err := sp.AddBlobs(pack, []Blob{b}); err != nil {
			t.Fatal(err)
		}
		if sp.blobs.bufBytes >= 16<<10 {
			t.Fatalf("after %d blobs: %d bytes buffered, want under %d", i+1, sp.blobs.bufBytes, 16<<10)
		}
	}
	n := 0
	levels := map[int]int{}
	for _, r := range sp.blobs.runs {
		n += r.n
		levels[r.level]++
	}
	if n == 0 || len(sp.blobs.runs) > 2*(mergeWidth-1) {
		t.Errorf("runs: %d holding %d records; want records in at most %d runs", len(sp.blobs.runs), n, 2*(mergeWidth-1))
	}
	for l, k := range levels {
		if k >= mergeWidth {
			t.Errorf("level %d holds %d runs, want fewer than %d", l, k, mergeWidth)
		}
	}
	if err := sp.Compact(); err != nil {
		t.Fatal(err)
	}
	if len(sp.blobs.runs) != 1 || sp.blobs.runs[0].n != 20000 || len(sp.blobs.buf) != 0 {
		t.Fatalf("after Compact: %d runs, buffer %d; want one run of 20000 records", len(sp.blobs.runs), len(sp.blobs.buf))
	}
	for i := range 20000 {
		id := digest.Of([]byte{byte(i), byte(i >> 8), byte(i >> 16)})
		if b, ok, err := sp.Blob(id); !ok || err != nil || b.Offset != uint64(i) {
			t.Fatalf("Blob %d after Compact = %+v, %v, %v", i, b, ok, err)
		}
	}
}

func TestDigestSet(t *testing.T) {
	t.Parallel()
	s := NewDigestSet()
	s.s.maxBuf = 4 << 10
	defer s.Close()
	var in, out []digest.Digest
	for i := range 5000 {
		d := digest.Of([]byte{byte(i), byte(i >> 8), 's'})
		if i%3 == 0 {
			out = append(out, d)
			continue
		}
		in = append(in, d)
		if err := s.Add(d); err != nil {
			t.Fatal(err)
		}
		if i%7 == 0 { // added twice: still once in Each
			if err := s.Add(d); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(s.s.runs) == 0 {
		t.Fatal("the set wrote no run; the test needs some")
	}
	for _, d := range in {
		if ok, err := s.Has(d); !ok || err != nil {
			t.Fatalf("Has(added %s) = %v, %v", d.Short(), ok, err)
		}
	}
	for _, d := range out {
		if ok, err := s.Has(d); ok || err != nil {
			t.Fatalf("Has(not added %s) = %v, %v", d.Short(), ok, err)
		}
	}
	var got []digest.Digest
	if err := s.Each(func(d digest.Digest) error { got = append(got, d); return nil }); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(in, compareDigest)
	if !slices.Equal(got, in) {
		t.Errorf("Each gave %d digests, want the %d added, sorted, once each", len(got), len(in))
	}
}

func TestDigestMultimap(t *testing.T) {
	t.Parallel()
	m := NewDigestMultimap()
	m.s.maxBuf = 2 << 10
	defer m.Close()
	want := map[digest.Digest][][]byte{}
	for i := range 3000 {
		k := digest.Of([]byte{byte(i % 700), byte(i % 700 >> 8)})
		v := []byte{byte(i), byte(i >> 8)}
		if err := m.Add(k, v); err != nil {
			t.Fatal(err)
		}
		want[k] = append(want[k], v)
	}
	if len(m.s.runs) == 0 {
		t.Fatal("the map wrote no run; the test needs some")
	}
	n := 0
	var prev digest.Digest
	err := m.Each(func(k digest.Digest, vals [][]byte) error {
		if n > 0 && compareDigest(prev, k) >= 0 {
			t.Errorf("Each: %s after %s", k.Short(), prev.Short())
		}
		prev = k
		n++
		if !slices.EqualFunc(vals, want[k], slices.Equal) {
			t.Errorf("Each(%s) = %v, want %v", k.Short(), vals, want[k])
		}
		if got, err := m.Get(k); err != nil || !slices.EqualFunc(got, want[k], slices.Equal) {
			t.Errorf("Get(%s) = %v, %v; want %v", k.Short(), got, err, want[k])
		}
		return nil
	})
	if err != nil || n != len(want) {
		t.Errorf("Each gave %d keys (%v), want %d", n, err, len(want))
	}
}
