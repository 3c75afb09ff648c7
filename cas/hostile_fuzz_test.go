package cas

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cas-ml/cas/cas/gc"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/remote"
)

// Fuzz targets of the hostile-store kit. Run one with
//
//	go test ./cas -run XXX -fuzz FuzzPushRestore -fuzztime 1m

// FuzzPushRestore pushes a file (data repeated, so that some inputs span
// many chunks) under a fuzzed name, alone and in a directory, restores
// both, and compares every byte and digest; cat must give the same bytes.
func FuzzPushRestore(f *testing.F) {
	f.Add([]byte("hello\n"), "a.txt", uint8(0))
	f.Add([]byte{}, "empty", uint8(0))
	f.Add(pseudoRandom(5000, 1), "b.bin", uint8(9))
	f.Add([]byte("abc"), "x y\tz", uint8(200))
	f.Add([]byte("\x00\xff"), "\xff\xfe", uint8(1))
	dir := filepath.Join(f.TempDir(), DirName)
	params, err := NewChunkParams(4 << 10)
	if err != nil {
		f.Fatal(err)
	}
	if err := Init(dir, params, time.Now()); err != nil {
		f.Fatal(err)
	}
	// One store for all inputs: opening badger for each would cost more
	// than the push; pushes into a store that holds other data are the
	// common case anyway.
	r, err := Open(f.Context(), dir)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = r.Close() })
	f.Fuzz(func(t *testing.T, data []byte, name string, repeat uint8) {
		if !ValidName(name) || len(name) > 200 || strings.HasPrefix(name, ".cas") {
			t.Skip("not a name push takes as a plain file")
		}
		content := bytes.Repeat(data, int(repeat)+1)
		if len(content) > 1<<20 {
			content = content[:1<<20]
		}
		ctx := t.Context()
		src := t.TempDir()
		p := filepath.Join(src, name)
		if err := os.WriteFile(p, content, 0o644); err != nil {
			t.Skipf("the filesystem refuses %q: %v", name, err)
		}
		res, err := r.Push(ctx, []string{p}, PushOptions{})
		if err != nil {
			t.Fatalf("push %q: %v", name, err)
		}
		if want := digest.Of(content); res.Digest != want || res.Kind != KindFile || res.Bytes != int64(len(content)) {
			t.Fatalf("push %q: got %s %v %d bytes, want %s file %d bytes", name, res.Digest.Short(), res.Kind, res.Bytes, want.Short(), len(content))
		}
		obj := &Object{Digest: res.Digest, Kind: KindFile, Size: res.Bytes, Name: name}
		dest := t.TempDir() // exists: the file lands at dest/name, as in restore REF .
		if _, err := r.Restore(ctx, obj, dest, RestoreOptions{}); err != nil {
			t.Fatalf("restore %q: %v", name, err)
		}
		if got, err := os.ReadFile(filepath.Join(dest, name)); err != nil || !bytes.Equal(got, content) {
			t.Fatalf("restore %q: got %d bytes (%v), want %d", name, len(got), err, len(content))
		}
		var buf bytes.Buffer
		if err := r.WriteFile(ctx, obj, &buf); err != nil || !bytes.Equal(buf.Bytes(), content) {
			t.Fatalf("cat %q: got %d bytes (%v), want %d", name, buf.Len(), err, len(content))
		}
		tres, err := r.Push(ctx, []string{src}, PushOptions{})
		if err != nil {
			t.Fatalf("push the directory of %q: %v", name, err)
		}
		tobj := &Object{Digest: tres.Digest, Kind: tres.Kind, Size: tres.Bytes}
		tdest := filepath.Join(t.TempDir(), "tree")
		if _, err := r.Restore(ctx, tobj, tdest, RestoreOptions{}); err != nil {
			t.Fatalf("restore the directory of %q: %v", name, err)
		}
		entries, err := os.ReadDir(tdest)
		if err != nil || len(entries) != 1 || entries[0].Name() != name {
			t.Fatalf("restored directory holds %v (%v), want just %q", entries, err, name)
		}
		if got, err := os.ReadFile(filepath.Join(tdest, name)); err != nil || !bytes.Equal(got, content) {
			t.Fatalf("restore the directory of %q: got %d bytes (%v), want %d", name, len(got), err, len(content))
		}
		if again := hashPathForFuzz(t, tdest); again != tres.Digest {
			t.Fatalf("restored directory hashes to %s, want %s", again.Short(), tres.Digest.Short())
		}
	})
}

// hashPathForFuzz is the digest Hash computes for path, without a store.
func hashPathForFuzz(t *testing.T, path string) digest.Digest {
	t.Helper()
	res, err := Hash(t.Context(), nil, []string{path}, PushOptions{})
	if err != nil {
		t.Fatalf("hash %s: %v", path, err)
	}
	return res.Digest
}

// bucketView is an empty bucket and a store that lives only on it.
func bucketView(f *testing.F) (*remote.Mem, *Repo) {
	f.Helper()
	mem := remote.NewMem()
	r, err := OpenRemoteOnly(f.Context(), mem)
	if err != nil {
		f.Fatal(err)
	}
	return mem, r
}

// putRaw writes data at key of be.
func putRaw(t *testing.T, be remote.Backend, key string, data []byte) {
	t.Helper()
	if err := be.Put(t.Context(), key, bytes.NewReader(data), int64(len(data)), remote.PutOptions{}); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

// seedRefJSON adds the JSON of honest refs and pins to a fuzzer's corpus
// (the hostile variants are cases of TestHostileStore).
func seedRefJSON(f *testing.F) {
	d := digest.Of([]byte("x"))
	honest := hostileRefFields("fz", Object{Digest: d, Kind: KindFile, Size: 1, Name: "x.bin"})
	for _, m := range []map[string]any{
		honest,
		hostileRefFields("fz", Object{Digest: d, Kind: KindDir, Size: 10}),
		hostileWith(honest, "previous", []string{d.String()}, "type", "manifest"),
		hostileWith(honest, "roots", []map[string]any{{"digest": d.String(), "kind": "file", "size": 1}}, "message", "m"),
	} {
		b, _ := json.Marshal(m)
		f.Add(b)
	}
}

// FuzzStoredRef puts fuzzed bytes at refs/fz in a bucket and reads them
// as every reader does: GetRef, Refs and Resolve. None may panic, and a
// ref any of them accepts obeys the rules of a ref (validRefLike).
func FuzzStoredRef(f *testing.F) {
	seedRefJSON(f)
	mem, r := bucketView(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := t.Context()
		putRaw(t, mem, refPrefix+"fz", data)
		if ref, err := r.GetRef(ctx, "fz"); err == nil {
			if err := validRefLike(ref.Name, "fz", ref.Target, ref.Kind, ref.Size, ref.File); err != nil {
				t.Fatalf("GetRef accepted %q: %v", data, err)
			}
		}
		if refs, err := r.Refs(ctx); err == nil {
			for _, ref := range refs {
				if err := validRefLike(ref.Name, "fz", ref.Target, ref.Kind, ref.Size, ref.File); err != nil {
					t.Fatalf("Refs accepted %q: %v", data, err)
				}
			}
		}
		if obj, err := r.Resolve(ctx, "fz"); err == nil {
			if err := validRefLike("fz", "fz", obj.Digest, obj.Kind, obj.Size, obj.Name); err != nil {
				t.Fatalf("Resolve accepted %q: %v", data, err)
			}
		}
	})
}

// FuzzStoredPin does for pins/fz what FuzzStoredRef does for refs.
func FuzzStoredPin(f *testing.F) {
	seedRefJSON(f)
	mem, r := bucketView(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := t.Context()
		putRaw(t, mem, PinPrefix+"fz", data)
		if p, err := r.GetPin(ctx, nil, "fz"); err == nil {
			if err := validRefLike(p.Name, "fz", p.Target, p.Kind, p.Size, p.File); err != nil {
				t.Fatalf("GetPin accepted %q: %v", data, err)
			}
			for _, root := range p.Roots {
				if root.Digest.IsZero() || root.Size < 0 || (!root.Kind.IsFile() && root.Kind != KindDir) {
					t.Fatalf("GetPin accepted %q: root %+v", data, root)
				}
			}
		}
		if pins, err := r.Pins(ctx, nil); err == nil {
			for _, p := range pins {
				if err := validRefLike(p.Name, "fz", p.Target, p.Kind, p.Size, p.File); err != nil {
					t.Fatalf("Pins accepted %q: %v", data, err)
				}
			}
		}
		if obj, err := r.Resolve(ctx, PinPrefix+"fz"); err == nil {
			if err := validRefLike("fz", "fz", obj.Digest, obj.Kind, obj.Size, obj.Name); err != nil {
				t.Fatalf("Resolve accepted %q: %v", data, err)
			}
		}
	})
}

// FuzzStoredGCRecord puts fuzzed bytes at one gc record of a bucket (a
// plan, a keep marker, a sweep marker or a done record, by which) and
// runs every reader of them: readGCState, gc as a dry run, the guard a
// push runs before its ref, and the sync that reads done records. None
// may panic; an unreadable record is reported by its key; a plan read is
// known by its key.
func FuzzStoredGCRecord(f *testing.F) {
	d := digest.Of([]byte("x"))
	for _, v := range []any{
		gc.Plan{ID: "20000101T000000.000Z-00000000", Created: time.Unix(0, 0).UTC(), Packs: []digest.Digest{d}, Bytes: 1},
		gc.Keep{Created: time.Unix(0, 0).UTC(), Packs: []digest.Digest{d}},
		gc.Done{ID: "x", Packs: []digest.Digest{d}},
		gc.SweepMarker{Plan: "x"},
	} {
		b, _ := json.Marshal(v)
		for which := range uint8(4) {
			f.Add(b, which)
		}
	}
	f.Add([]byte("{\"packs\": ["), uint8(0))
	f.Add([]byte("null"), uint8(2))
	mem := remote.NewMem()
	id := "20000101T000000.000Z-0badc0de"
	prefixes := []string{gc.PlansPrefix, gc.KeepPrefix, gc.SweepPrefix, gc.DonePrefix}
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		ctx := t.Context()
		key := prefixes[int(which)%len(prefixes)] + id
		// A fresh reader each time: the index remembers done records seen.
		r, err := OpenRemoteOnly(ctx, mem)
		if err != nil {
			t.Fatal(err)
		}
		putRaw(t, mem, key, data)
		defer func() {
			if err := mem.Delete(ctx, key); err != nil {
				t.Fatal(err)
			}
		}()
		st, err := gc.ReadState(ctx, mem)
		if err != nil && !strings.Contains(err.Error(), key) {
			t.Fatalf("readGCState: %v does not name %s", err, key)
		}
		if err == nil {
			for _, p := range st.Plans {
				if gc.PlansPrefix+p.ID != key {
					t.Fatalf("plan read from %s has ID %q", key, p.ID)
				}
			}
		}
		if _, err := r.GC(ctx, mem, GCOptions{DryRun: true, Grace: NoGrace}); err != nil && !strings.Contains(err.Error(), key) {
			t.Fatalf("gc dry run: %v does not name %s", err, key)
		}
		if err := r.GuardGC(ctx, mem); err != nil && !strings.Contains(err.Error(), key) {
			t.Fatalf("gc guard: %v does not name %s", err, key)
		}
		if err := r.syncIndexFrom(ctx, mem); err != nil && !strings.Contains(err.Error(), key) {
			t.Fatalf("sync: %v does not name %s", err, key)
		}
	})
}
